"""Every server answer, read through the official Huawei SDK's own response models.

A real ``ecsd serve`` (``tests/sdk_server.py``; the simulated driver spends 0.3 s per step, so a
change OS stays in REBUILD long enough to be read) holds servers in every status a client meets:
ACTIVE with two NICs, SHUTOFF, ERROR (a change OS whose image does not boot) and REBUILD (a change OS
under way). Each response of the ECS client is walked against the raw JSON the server sent with
:func:`tests.sdk_models.check_response`: every field the model declares must be there with the
declared type, except the ones listed in ``OPTIONAL`` with the reason the reference gives. The
SDK's own conversion warnings are errors here.

Calls: v1 ``list_servers_details`` and ``show_server``, Nova ``nova_list_servers``,
``nova_list_servers_details`` and ``nova_show_server``, ``update_server``, ``update_server_metadata``,
``list_server_interfaces``, ``nova_show_server_interface``, ``list_server_block_devices``,
``show_server_block_device``, ``list_server_volume_attachments``, ``show_server_console_output``,
``show_server_limits``, ``show_job``, ``nova_list_keypairs``, ``nova_show_keypair`` and
``nova_list_availability_zones``.
"""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("huaweicloudsdkcore", reason="the Huawei Cloud SDK is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkecs", reason="huaweicloudsdkecs is not installed: pip install -e '.[test]'")

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkecs.v2 import (
    EcsClient,
    ListServerBlockDevicesRequest,
    ListServerInterfacesRequest,
    ListServersDetailsRequest,
    ListServerVolumeAttachmentsRequest,
    NovaListAvailabilityZonesRequest,
    NovaListKeypairsRequest,
    NovaListServersDetailsRequest,
    NovaListServersRequest,
    NovaShowKeypairRequest,
    NovaShowServerInterfaceRequest,
    NovaShowServerRequest,
    ShowJobRequest,
    ShowServerBlockDeviceRequest,
    ShowServerConsoleOutputRequest,
    ShowServerLimitsRequest,
    ShowServerRequest,
    UpdateServerMetadataRequest,
    UpdateServerRequest,
)
from huaweicloudsdkecs.v2.model import (
    UpdateServerMetadataRequestBody,
    UpdateServerOption,
    UpdateServerRequestBody,
)

from tests import support as s
from tests.reference_fields import PAGES
from tests.sdk_models import check_response
from tests.sdk_server import start_ecsd

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:Method 'nova_\w+' of EcsClient is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning"),
]

SUBNET2 = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def reference_fields(*pages: str) -> set[str]:
    """The parameter names of the response tables of these reference pages (tests/reference_fields.py)."""
    return set().union(*(PAGES[page] for page in pages))


def beyond(model: type, defined: set[str], *also: str) -> set[str]:
    """The JSON keys ``model`` declares that the reference does not define, plus ``also``."""
    return {key for key in model.attribute_map.values() if key not in defined} | set(also)


V1_SERVER = reference_fields("apis_recommended/lifecycle_management/querying_details_about_an_ecs.rst",
                             "data_structure/data_structure_for_querying_details_about_ecss.rst")
NICS = reference_fields("apis_recommended/nic_management/querying_nics_of_an_ecs.rst")
LIMITS = reference_fields("apis_recommended/tenant_quota_management/querying_tenant_quotas.rst")
NOVA_SERVER = reference_fields("native_openstack_nova_apis/lifecycle_management/querying_details_about_an_ecs.rst")


def _optional() -> dict[str, set[str]]:
    from huaweicloudsdkecs.v2 import model as m

    return {
        # Null where the reference's own example has null: no fault unless ERROR, no task unless one runs,
        # no user data or key pair unless given, not terminated.
        "ServerDetail": beyond(m.ServerDetail, V1_SERVER, "fault", "OS-EXT-STS:task_state",
                               "OS-EXT-SRV-ATTR:user_data", "key_name"),
        "ServerAddress": beyond(m.ServerAddress, V1_SERVER),
        "ServerFlavor": beyond(m.ServerFlavor, V1_SERVER),
        "ServerSchedulerHints": {"*"},          # {} in the reference's example
        # ... and Nova's null for the time of a deletion that has not happened; scheduler hints: DeH only.
        "NovaServer": beyond(m.NovaServer, NOVA_SERVER, "fault", "OS-EXT-STS:task_state",
                             "OS-EXT-SRV-ATTR:user_data", "key_name", "OS-SRV-USG:terminated_at",
                             "os:scheduler_hints", "tags"),      # tags: only from microversion 2.26 on
        "NovaServerFlavor": beyond(m.NovaServerFlavor, NOVA_SERVER),
        "NovaNetwork": beyond(m.NovaNetwork, NOVA_SERVER),
        "InterfaceAttachment": beyond(m.InterfaceAttachment, NICS),
        "ListServerInterfacesResponse": beyond(m.ListServerInterfacesResponse, NICS),
        "ServerInterfaceFixedIp": beyond(m.ServerInterfaceFixedIp, NICS),
        "ServerLimits": beyond(m.ServerLimits, LIMITS),
        # Each only where the reference says: code and message when the query itself fails, end_time once
        # finished, error_code and fail_reason once failed, nic_id for NIC tasks, sub_jobs for batches.
        "ShowJobResponse": {"code", "message", "end_time", "error_code", "fail_reason"},
        "JobEntities": {"nic_id", "sub_jobs", "sub_jobs_total", "server_id"},
        "SubJob": {"end_time", "error_code", "fail_reason"},
        "SubJobEntities": {"errorcode_message", "nic_id"},
        "NovaKeypairDetail": {"deleted_at", "updated_at"},      # null in the reference's own example
        "NovaAvailabilityZone": {"hosts"},                      # "The parameter is set to null."
    }


OPTIONAL = _optional()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = start_ecsd(str(tmp_path_factory.mktemp("models") / "data"), env={"ECSD_SIM_DELAY": "0.3"})
    try:
        base, creds = server
        http = httpx.Client(base_url=base, timeout=30)
        token = http.post("/v3/auth/tokens", json=s.token_request(creds)).headers["X-Subject-Token"]
        http.headers["X-Auth-Token"] = token
        pid = creds["project_id"]

        def wait(job_id: str) -> dict:
            for _ in range(600):
                job = http.get(f"/v1/{pid}/jobs/{job_id}").json()
                if job["status"] in ("SUCCESS", "FAIL"):
                    return job
                time.sleep(0.05)
            raise AssertionError(f"job {job_id} did not end")

        http.post(f"/v2.1/{pid}/os-keypairs", json={"keypair": {"name": "models-kp"}})
        body = {"server": {"name": "models", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                           "nics": [{"subnet_id": s.SUBNET}, {"subnet_id": SUBNET2}], "key_name": "models-kp",
                           "root_volume": {"volumetype": "SSD"}, "data_volumes": [{"volumetype": "SAS", "size": 10}],
                           "count": 4}}
        create = wait(http.post(f"/v1/{pid}/cloudservers", json=body).json()["job_id"])
        assert create["status"] == "SUCCESS", create
        active, stopped, failed, rebuilding = [sub["entities"]["server_id"] for sub in create["entities"]["sub_jobs"]]
        for sid in (stopped, failed, rebuilding):
            stop = {"os-stop": {"type": "SOFT", "servers": [{"id": sid}]}}
            assert wait(http.post(f"/v1/{pid}/cloudservers/action", json=stop).json()["job_id"])["status"] == "SUCCESS"
        bad = http.post(f"/v1/{pid}/cloudservers/{failed}/changeos", json={"os-change": {"imageid": s.FAULTY_BOOT}})
        assert wait(bad.json()["job_id"])["status"] == "FAIL"
        running = http.post(f"/v1/{pid}/cloudservers/{rebuilding}/changeos", json={"os-change": {"imageid": s.DEBIAN}})
        job_id = running.json()["job_id"]

        cfg = HttpConfig.get_default_config()
        cfg.timeout = (5, 30)
        ecs = (EcsClient.new_builder().with_http_config(cfg)
               .with_credentials(BasicCredentials(creds["ak"], creds["sk"], pid)).with_endpoint(base).build())
        yield {"ecs": ecs, "http": http, "pid": pid, "job": job_id, "jobs": [create["job_id"], job_id], "servers": {
            "ACTIVE": active, "SHUTOFF": stopped, "ERROR": failed, "REBUILD": rebuilding}}
        wait(job_id)
    finally:
        server.proc.terminate()
        server.proc.wait(10)


def _clean(resp, optional=None) -> None:
    problems = check_response(resp, optional={**OPTIONAL, **(optional or {})})
    assert problems == [], "\n".join(problems[:40]) + (f"\n... {len(problems)} in all" if len(problems) > 40 else "")


def test_the_servers_are_in_every_status(world):
    ecs = world["ecs"]
    statuses = {sid: ecs.show_server(ShowServerRequest(server_id=sid)).server.status
                for sid in world["servers"].values()}
    assert sorted(statuses.values()) == sorted(world["servers"]), statuses


def test_v1_list_and_show(world):
    ecs = world["ecs"]
    listed = ecs.list_servers_details(ListServersDetailsRequest(limit=50))
    _clean(listed)
    assert listed.count == 4
    for status, sid in world["servers"].items():
        shown = ecs.show_server(ShowServerRequest(server_id=sid))
        _clean(shown)
        server = shown.server
        assert server.status == status
        nics = [a for addrs in server.addresses.values() for a in addrs]
        assert len(nics) == 2
        if status == "ERROR":
            assert server.fault is not None and server.fault["code"] == "Ecs.0226"
        if status == "REBUILD":
            assert server.os_ext_st_stask_state is not None


def test_nova_list_and_show_read_every_status_including_error(world):
    ecs = world["ecs"]
    _clean(ecs.nova_list_servers(NovaListServersRequest(limit=50)), optional={"NovaListServersResponse": {"servers_links"}})
    details = ecs.nova_list_servers_details(NovaListServersDetailsRequest(limit=50))
    _clean(details, optional={"NovaListServersDetailsResponse": {"servers_links"}})
    assert len(details.servers) == 4
    for status, sid in world["servers"].items():
        shown = ecs.nova_show_server(NovaShowServerRequest(server_id=sid))
        _clean(shown)
        assert shown.server.status == status
        if status == "ERROR":
            assert shown.server.fault.code == 500 and shown.server.fault.message.startswith("Ecs.0226")


def test_update_server_answers_the_reduced_view(world):
    ecs = world["ecs"]
    sid = world["servers"]["ACTIVE"]
    resp = ecs.update_server(UpdateServerRequest(server_id=sid, body=UpdateServerRequestBody(
        server=UpdateServerOption(name="models-renamed", description="models"))))
    _clean(resp)
    assert resp.server.image == ecs.show_server(ShowServerRequest(server_id=sid)).server.image.id
    assert resp.server.name == "models-renamed"
    assert all(isinstance(a.version, int) for addrs in resp.server.addresses.values() for a in addrs)


def test_metadata_update_round_trip(world):
    ecs = world["ecs"]
    sid = world["servers"]["ACTIVE"]
    current = ecs.show_server(ShowServerRequest(server_id=sid)).server.metadata
    resp = ecs.update_server_metadata(UpdateServerMetadataRequest(
        server_id=sid, body=UpdateServerMetadataRequestBody(metadata={**current, "owner": "sdk"})))
    _clean(resp)
    assert resp.metadata == {**current, "owner": "sdk"}


def test_nics_are_distinct_and_typed(world):
    ecs = world["ecs"]
    sid = world["servers"]["ACTIVE"]
    nics = ecs.list_server_interfaces(ListServerInterfacesRequest(server_id=sid))
    _clean(nics)
    assert len(nics.interface_attachments) == 2
    ports = {n.port_id for n in nics.interface_attachments}
    macs = {n.mac_addr for n in nics.interface_attachments}
    assert len(ports) == 2 and len(macs) == 2
    one = ecs.nova_show_server_interface(NovaShowServerInterfaceRequest(
        server_id=sid, port_id=nics.interface_attachments[0].port_id))
    _clean(one)


def test_disks_console_limits_job_keypairs_zones(world):
    ecs = world["ecs"]
    for sid in world["servers"].values():
        devices = ecs.list_server_block_devices(ListServerBlockDevicesRequest(server_id=sid))
        _clean(devices)
        for att in devices.volume_attachments:
            _clean(ecs.show_server_block_device(ShowServerBlockDeviceRequest(server_id=sid, volume_id=att.volume_id)))
        _clean(ecs.list_server_volume_attachments(ListServerVolumeAttachmentsRequest(server_id=sid)))
    console = ecs.show_server_console_output(ShowServerConsoleOutputRequest(server_id=world["servers"]["ACTIVE"],
                                                                            length=2))
    _clean(console)
    assert len(console.output.splitlines()) == 2
    _clean(ecs.show_server_limits(ShowServerLimitsRequest()))
    for job_id in world["jobs"]:             # a finished batch (with sub-jobs) and a change OS under way
        _clean(ecs.show_job(ShowJobRequest(job_id=job_id)))
    keypairs = ecs.nova_list_keypairs(NovaListKeypairsRequest())
    _clean(keypairs)
    _clean(ecs.nova_show_keypair(NovaShowKeypairRequest(keypair_name="models-kp")))
    _clean(ecs.nova_list_availability_zones(NovaListAvailabilityZonesRequest()))


def _job(ecs, job_id: str) -> object:
    for _ in range(600):
        job = ecs.show_job(ShowJobRequest(job_id=job_id))
        if job.status in ("SUCCESS", "FAIL"):
            _clean(job)
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def test_every_change_answers_as_its_model_says(world):
    """Create, stop, change OS, reinstall, start, reboot, key pairs, the Nova create/delete and versions."""
    from huaweicloudsdkecs.v2 import (
        BatchRebootServersRequest,
        BatchStartServersRequest,
        BatchStopServersRequest,
        ChangeServerOsWithoutCloudInitRequest,
        CreatePostPaidServersRequest,
        DeleteServersRequest,
        NovaCreateKeypairRequest,
        NovaCreateServersRequest,
        NovaDeleteKeypairRequest,
        NovaDeleteServerRequest,
        NovaListServerSecurityGroupsRequest,
        NovaListVersionsRequest,
        NovaShowVersionRequest,
        ReinstallServerWithoutCloudInitRequest,
    )
    from huaweicloudsdkecs.v2 import model as m

    ecs = world["ecs"]
    created = ecs.create_post_paid_servers(CreatePostPaidServersRequest(body=m.CreatePostPaidServersRequestBody(
        server=m.PostPaidServer(name="models-sdk", image_ref=s.UBUNTU, flavor_ref="s3.small.1", vpcid=s.VPC,
                                nics=[m.PostPaidServerNic(subnet_id=s.SUBNET)],
                                root_volume=m.PostPaidServerRootVolume(volumetype="SSD")))))
    _clean(created)
    sid = created.server_ids[0]
    assert _job(ecs, created.job_id).status == "SUCCESS"
    ref = [m.ServerId(id=sid)]
    stop = ecs.batch_stop_servers(BatchStopServersRequest(body=m.BatchStopServersRequestBody(
        os_stop=m.BatchStopServersOption(servers=ref, type="SOFT"))))
    _clean(stop)
    assert _job(ecs, stop.job_id).status == "SUCCESS"
    change = ecs.change_server_os_without_cloud_init(ChangeServerOsWithoutCloudInitRequest(
        server_id=sid, body=m.ChangeServerOsWithoutCloudInitRequestBody(
            os_change=m.ChangeServerOsWithoutCloudInitOption(imageid=s.DEBIAN, adminpass="Secur3-Pass!"))))
    _clean(change)
    assert _job(ecs, change.job_id).status == "SUCCESS"
    stop = ecs.batch_stop_servers(BatchStopServersRequest(body=m.BatchStopServersRequestBody(
        os_stop=m.BatchStopServersOption(servers=ref, type="SOFT"))))
    _job(ecs, stop.job_id)
    again = ecs.reinstall_server_without_cloud_init(ReinstallServerWithoutCloudInitRequest(
        server_id=sid, body=m.ReinstallServerWithoutCloudInitRequestBody(
            os_reinstall=m.ReinstallServerWithoutCloudInitOption(adminpass="Secur3-Pass!"))))
    _clean(again)
    assert _job(ecs, again.job_id).status == "SUCCESS"
    ud = "IyEvYmluL3NoCmVjaG8gaGkK"
    for call, option in ((ecs.change_server_os_with_cloud_init, m.ChangeServerOsWithCloudInitOption(
            imageid=s.UBUNTU, adminpass="Secur3-Pass!", metadata=m.ChangeSeversOsMetadata(user_data=ud))),
                         (ecs.reinstall_server_with_cloud_init, m.ReinstallServerWithCloudInitOption(
            adminpass="Secur3-Pass!", metadata=m.ReinstallSeverMetadata(user_data=ud)))):
        name = type(option).__name__.replace("Option", "")
        body_cls = getattr(m, name + "RequestBody")
        request_cls = getattr(m, name + "Request")
        key = "os_change" if "Change" in name else "os_reinstall"
        stop = ecs.batch_stop_servers(BatchStopServersRequest(body=m.BatchStopServersRequestBody(
            os_stop=m.BatchStopServersOption(servers=ref, type="SOFT"))))
        _job(ecs, stop.job_id)
        resp = call(request_cls(server_id=sid, body=body_cls(**{key: option})))
        _clean(resp)
        assert _job(ecs, resp.job_id).status == "SUCCESS"
    renamed = ecs.batch_update_servers_name(m.BatchUpdateServersNameRequest(body=m.BatchUpdateServersNameRequestBody(
        name="models-sdk-2", servers=ref)))
    _clean(renamed)
    ecs.update_server_metadata(UpdateServerMetadataRequest(server_id=sid, body=UpdateServerMetadataRequestBody(
        metadata={"k": "v"})))
    _clean(ecs.delete_server_metadata(m.DeleteServerMetadataRequest(server_id=sid, key="k")))
    start = ecs.batch_start_servers(BatchStartServersRequest(body=m.BatchStartServersRequestBody(
        os_start=m.BatchStartServersOption(servers=ref))))
    _clean(start)
    _job(ecs, start.job_id)
    reboot = ecs.batch_reboot_servers(BatchRebootServersRequest(body=m.BatchRebootServersRequestBody(
        reboot=m.BatchRebootSeversOption(servers=ref, type="SOFT"))))
    _clean(reboot)
    _job(ecs, reboot.job_id)

    keypair = ecs.nova_create_keypair(NovaCreateKeypairRequest(body=m.NovaCreateKeypairRequestBody(
        keypair=m.NovaCreateKeypairOption(name="models-sdk-kp"))))
    _clean(keypair, optional={"NovaKeypair": {"deleted_at", "updated_at"}})
    ecs.nova_delete_keypair(NovaDeleteKeypairRequest(keypair_name="models-sdk-kp"))

    nova = ecs.nova_create_servers(NovaCreateServersRequest(body=m.NovaCreateServersRequestBody(
        server=m.NovaCreateServersOption(name="models-nova", image_ref=s.UBUNTU, flavor_ref="s3.small.1",
                                         networks=[m.NovaServerNetwork(uuid=s.SUBNET)]))))
    _clean(nova, optional={type(nova.server).__name__: {"reservation_id"}})   # "when ECSs are created in a batch"
    nid = nova.server.id
    groups = ecs.nova_list_server_security_groups(NovaListServerSecurityGroupsRequest(server_id=nid))
    # The default group's rules admit its own members: ports, protocol and range are null / {} there,
    # as in the reference's own example.
    rule = type(groups.security_groups[0].rules[0]).__name__
    _clean(groups, optional={rule: {"from_port", "to_port", "ip_protocol"}, "NovaSecurityGroupCommonIpRange": {"cidr"}})
    for _ in range(600):
        if ecs.nova_show_server(NovaShowServerRequest(server_id=nid)).server.status == "ACTIVE":
            break
        time.sleep(0.05)
    ecs.nova_delete_server(NovaDeleteServerRequest(server_id=nid))
    deleted = ecs.delete_servers(DeleteServersRequest(body=m.DeleteServersRequestBody(
        servers=ref, delete_volume=True)))
    _clean(deleted)
    assert _job(ecs, deleted.job_id).status == "SUCCESS"
    _clean(ecs.nova_list_versions(NovaListVersionsRequest()))
    _clean(ecs.nova_show_version(NovaShowVersionRequest(api_version="v2.1")))
