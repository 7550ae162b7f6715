"""The response fields the API reference defines, per page, for the SDK model walks
(tests/test_sdk_models_servers.py): a field an SDK model declares beyond these may be absent.

Extracted from the reference (``../shared/reference/ecs-api-ref``, Apache-2.0) so that the suite needs
no copy of it; regenerate with ``.venv/bin/python tests/reference_fields.py [path/to/ecs-api-ref]``
and paste the output over PAGES.
"""

from __future__ import annotations

import os
import re
import sys

# Generated (see the docstring).
PAGES: dict[str, frozenset[str]] = {
    'apis_recommended/lifecycle_management/querying_details_about_an_ecs.rst': frozenset({
        'OS-DCF:diskConfig', 'OS-EXT-AZ:availability_zone', 'OS-EXT-SRV-ATTR:host',
        'OS-EXT-SRV-ATTR:hostname', 'OS-EXT-SRV-ATTR:hypervisor_hostname', 'OS-EXT-SRV-ATTR:instance_name',
        'OS-EXT-SRV-ATTR:kernel_id', 'OS-EXT-SRV-ATTR:launch_index', 'OS-EXT-SRV-ATTR:ramdisk_id',
        'OS-EXT-SRV-ATTR:reservation_id', 'OS-EXT-SRV-ATTR:root_device_name', 'OS-EXT-SRV-ATTR:user_data',
        'OS-EXT-STS:power_state', 'OS-EXT-STS:task_state', 'OS-EXT-STS:vm_state', 'OS-SRV-USG:launched_at',
        'OS-SRV-USG:terminated_at', 'Parameter', 'accessIPv4', 'accessIPv6', 'addresses', 'config_drive',
        'created', 'description', 'enterprise_project_id', 'fault', 'flavor', 'hostId', 'host_status', 'id',
        'image', 'key_name', 'locked', 'metadata', 'name', 'os-extended-volumes:volumes_attached',
        'os:scheduler_hints', 'progress', 'security_groups', 'server', 'status', 'sys_tags', 'tags',
        'tenant_id', 'updated', 'user_id',
    }),
    'data_structure/data_structure_for_querying_details_about_ecss.rst': frozenset({
        'EcmResStatus', 'OS-EXT-IPS-MAC:mac_addr', 'OS-EXT-IPS:port_id', 'OS-EXT-IPS:type', 'Parameter',
        'addr', 'agency_name', 'bootIndex', 'cascaded.instance_extrainfo', 'charging_mode',
        'delete_on_termination', 'device', 'disk', 'id', 'image_name', 'lockCheckEndpoint', 'lockScene',
        'lockSource', 'lockSourceId', 'metering.image_id', 'metering.imagetype',
        'metering.resourcespeccode', 'metering.resourcetype', 'name', 'os_bit', 'os_type', 'ram', 'vcpus',
        'version', 'virtual_env_type', 'vpc_id',
    }),
    'native_openstack_nova_apis/lifecycle_management/querying_details_about_an_ecs.rst': frozenset({
        'OS-DCF:diskConfig', 'OS-EXT-AZ:availability_zone', 'OS-EXT-IPS-MAC:mac_addr', 'OS-EXT-IPS:type',
        'OS-EXT-SRV-ATTR:host', 'OS-EXT-SRV-ATTR:hostname', 'OS-EXT-SRV-ATTR:hypervisor_hostname',
        'OS-EXT-SRV-ATTR:instance_name', 'OS-EXT-SRV-ATTR:kernel_id', 'OS-EXT-SRV-ATTR:launch_index',
        'OS-EXT-SRV-ATTR:ramdisk_id', 'OS-EXT-SRV-ATTR:reservation_id', 'OS-EXT-SRV-ATTR:root_device_name',
        'OS-EXT-SRV-ATTR:user_data', 'OS-EXT-STS:power_state', 'OS-EXT-STS:task_state',
        'OS-EXT-STS:vm_state', 'OS-SRV-USG:launched_at', 'OS-SRV-USG:terminated_at', 'Parameter',
        'accessIPv4', 'accessIPv6', 'addr', 'addresses', 'code', 'config_drive', 'created',
        'dedicated_host_id', 'delete_on_termination', 'description', 'details', 'disk', 'ephemeral',
        'extra_specs', 'fault', 'flavor', 'hostId', 'host_status', 'id', 'image', 'key_name', 'links',
        'locked', 'message', 'metadata', 'name', 'original_name', 'os-extended-volumes:volumes_attached',
        'os:scheduler_hints', 'progress', 'ram', 'security_groups', 'server', 'status', 'swap', 'tags',
        'tenancy', 'tenant_id', 'updated', 'user_id', 'vcpus', 'version',
    }),
    'apis_recommended/nic_management/querying_nics_of_an_ecs.rst': frozenset({
        'Parameter', 'fixed_ips', 'interfaceAttachments', 'mac_addr', 'net_id', 'port_id', 'port_state',
    }),
    'apis_recommended/tenant_quota_management/querying_tenant_quotas.rst': frozenset({
        'Parameter', 'absolute', 'maxImageMeta', 'maxPersonality', 'maxPersonalitySize',
        'maxSecurityGroupRules', 'maxSecurityGroups', 'maxServerGroupMembers', 'maxServerGroups',
        'maxServerMeta', 'maxTotalCores', 'maxTotalFloatingIps', 'maxTotalInstances', 'maxTotalKeypairs',
        'maxTotalRAMSize', 'totalCoresUsed', 'totalFloatingIpsUsed', 'totalInstancesUsed', 'totalRAMUsed',
        'totalSecurityGroupsUsed', 'totalServerGroupsUsed',
    }),
}


def extract(ref: str, page: str) -> set[str]:
    """The first-column names of the tables after the page's "Response" heading."""
    with open(os.path.join(ref, page), encoding="utf-8") as fh:
        text = fh.read()
    text = text.split("\nResponse\n", 1)[-1]
    return set(re.findall(r"^   \| ([A-Za-z][A-Za-z0-9:._-]*) +\|", text, re.MULTILINE))


WANTED = (
    "apis_recommended/lifecycle_management/querying_details_about_an_ecs.rst",
    "data_structure/data_structure_for_querying_details_about_ecss.rst",
    "native_openstack_nova_apis/lifecycle_management/querying_details_about_an_ecs.rst",
    "apis_recommended/nic_management/querying_nics_of_an_ecs.rst",
    "apis_recommended/tenant_quota_management/querying_tenant_quotas.rst",
)


if __name__ == "__main__":
    ref = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                             "reference", "ecs-api-ref")
    print("PAGES = {")
    for page in WANTED:
        names = sorted(extract(ref, page))
        print(f"    {page!r}: frozenset({{")
        line = "       "
        for name in names:
            item = f" {name!r},"
            if len(line) + len(item) > 108:
                print(line)
                line = "       "
            line += item
        print(line)
        print("    }),")
    print("}")
