"""The project's limits and what it uses of them (querying_tenant_quotas.rst, Nova ``/limits``).

    GET /v1/{project_id}/cloudservers/limits      {"absolute": {...}}
    GET /v2.1/{project_id}/limits                 {"limits": {"rate": [], "absolute": {...}}}
    GET /v2.1/{project_id}/os-quota-sets/{project_id}[/defaults]   {"quota_set": {...}}

The limits are the reference example's defaults; usage is counted from the live servers and their
flavors. ecsd reports the limits and does not enforce them (docs/decisions.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from ecsd.domain.metadata import MAX_PAIRS
from ecsd.store.schema import flavors, servers

LIMITS = {
    "maxServerMeta": MAX_PAIRS, "maxPersonality": 5, "maxImageMeta": 128, "maxPersonalitySize": 10240,
    "maxSecurityGroupRules": 20, "maxTotalKeypairs": -1, "maxSecurityGroups": 10, "maxTotalFloatingIps": 10,
    "maxTotalCores": 20480, "maxTotalInstances": 2048, "maxTotalRAMSize": 25165824, "maxServerGroups": 10,
    "maxServerGroupMembers": 16,
}


def absolute(conn: Connection, project_id: str) -> dict[str, Any]:
    """The limits with the project's usage: servers, their vCPUs and RAM (MB)."""
    used = conn.execute(
        select(func.count(servers.c.id), func.coalesce(func.sum(flavors.c.vcpus), 0),
               func.coalesce(func.sum(flavors.c.ram), 0))
        .select_from(servers.outerjoin(flavors, flavors.c.id == servers.c.flavor_id))
        .where(and_(servers.c.project_id == project_id, servers.c.deleted.is_(False)))).one()
    return {**LIMITS, "totalInstancesUsed": used[0], "totalCoresUsed": int(used[1]), "totalRAMUsed": int(used[2]),
            "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 1, "totalServerGroupsUsed": 0}


def quota_set(project_id: str) -> dict[str, Any]:
    """Nova's quota set: the same limits under Nova's names (-1: unlimited)."""
    return {
        "id": project_id, "cores": LIMITS["maxTotalCores"], "instances": LIMITS["maxTotalInstances"],
        "ram": LIMITS["maxTotalRAMSize"], "key_pairs": LIMITS["maxTotalKeypairs"],
        "metadata_items": LIMITS["maxServerMeta"], "floating_ips": LIMITS["maxTotalFloatingIps"], "fixed_ips": -1,
        "security_groups": LIMITS["maxSecurityGroups"], "security_group_rules": LIMITS["maxSecurityGroupRules"],
        "server_groups": LIMITS["maxServerGroups"], "server_group_members": LIMITS["maxServerGroupMembers"],
        "injected_files": LIMITS["maxPersonality"], "injected_file_content_bytes": LIMITS["maxPersonalitySize"],
        "injected_file_path_bytes": 255,
    }
