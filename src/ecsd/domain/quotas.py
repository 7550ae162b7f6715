"""Quotas of a project: what it may use, what it uses, and the atomic charge that enforces them.

    GET /v1/{project_id}/cloudservers/limits          {"absolute": {...}}       querying_tenant_quotas.rst
    GET /v2.1/{project_id}/limits                     {"limits": {"rate": [], "absolute": {...}}}
                                                                                querying_tenant_quota_limits.rst
    GET /v2.1/{project_id}/os-quota-sets/{project_id}            {"quota_set": {...}}  (effective quotas)
    GET /v2.1/{project_id}/os-quota-sets/{project_id}/defaults   {"quota_set": {...}}  (the defaults)
    ecsd quotas show | set                            cli/quotas.py

Enforced per project: ``instances`` (live servers), ``cores`` (their flavors' vCPUs) and ``ram`` (their
flavors' memory, MB). Usage is kept in ``projects.server_count`` / ``cores_used`` / ``ram_used`` by the
transactions that create servers (:func:`charge`, at acceptance), change their flavor
(:func:`charge_flavor_change`, at a resize's acceptance) and finish deleting them
(``servers.release_server``, when the delete job ends, from the server's current flavor: a server
being deleted still holds its quota, as in Nova). Each quota is the project's override (``projects.quota_*``, set with ``ecsd quotas set``) or,
when that is NULL, :data:`DEFAULTS` (the reference example's numbers); -1 means unlimited. Key pairs
are limited per user (``keypairs.QUOTA``, refused there with 403 Ecs.0001) and reported here.

The check and the charge are one conditional UPDATE of the project row, so that concurrent creates
can never together pass a quota: PostgreSQL serialises them on the row lock (and re-checks the
condition on the row as the earlier transaction left it), SQLite on its write lock. Quotas are read
from the database at every acceptance (no cache): a change takes effect at the next create.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain.errors import EcsError
from ecsd.domain.keypairs import QUOTA as KEYPAIRS_PER_USER
from ecsd.domain.metadata import MAX_PAIRS
from ecsd.store.prepared import Prepared
from ecsd.store.schema import projects, server_groups

RESOURCES = ("instances", "cores", "ram")
DEFAULTS = {"instances": 2048, "cores": 20480, "ram": 25165824}   # querying_tenant_quotas.rst example
UNLIMITED = -1
MAX_QUOTA = 2**31 - 1          # as Nova: quota values are 32-bit integers
_UNITS = {"instances": "instances", "cores": "cores", "ram": "MB of RAM"}

# Limits reported but not enforced here (no security groups, floating IPs, server groups or file
# injection are modelled); metadata pairs are enforced by domain/metadata.py, key pairs per user.
FIXED_LIMITS = {
    "maxServerMeta": MAX_PAIRS, "maxPersonality": 5, "maxImageMeta": 128, "maxPersonalitySize": 10240,
    "maxSecurityGroupRules": 20, "maxTotalKeypairs": KEYPAIRS_PER_USER, "maxSecurityGroups": 10,
    "maxTotalFloatingIps": 10, "maxServerGroups": 10, "maxServerGroupMembers": 16,
}

_USED = {"instances": projects.c.server_count, "cores": projects.c.cores_used, "ram": projects.c.ram_used}
_OVERRIDE = {"instances": projects.c.quota_instances, "cores": projects.c.quota_cores, "ram": projects.c.quota_ram}


# --- the charge at acceptance (a hot path: one prepared statement) -------------------------------------

_ADD = {r: bindparam(f"add_{r}", type_=BigInteger) for r in RESOURCES}
_DEFAULT = {r: bindparam(f"default_{r}", type_=BigInteger) for r in RESOURCES}


def _fits(resource: str):
    """The quota of ``resource`` is unlimited, or usage plus the request stays within it."""
    limit = func.coalesce(_OVERRIDE[resource], _DEFAULT[resource])
    return or_(limit < 0, _USED[resource] + _ADD[resource] <= limit)


# UPDATE projects SET usage += request, list_gen += 1 WHERE id = :p AND <every quota still fits>.
# It replaces the counter update every create made anyway (servers.adjust_count), so the check costs
# no extra statement; a row count of 0 means over quota.
_CHARGE = Prepared(projects.update().where(and_(projects.c.id == bindparam("project_id"),
                                                *(_fits(r) for r in RESOURCES))).values(
    server_count=projects.c.server_count + _ADD["instances"], cores_used=projects.c.cores_used + _ADD["cores"],
    ram_used=projects.c.ram_used + _ADD["ram"], list_gen=projects.c.list_gen + 1))
_DEFAULT_PARAMS = {f"default_{r}": DEFAULTS[r] for r in RESOURCES}


def charge(conn: Connection, project_id: str, instances: int, cores: int, ram: int) -> None:
    """Count ``instances`` new servers with ``cores`` vCPUs and ``ram`` MB against the project's quotas,
    all or nothing, in the caller's transaction (which also bumps ``list_gen``, as every create must).

    Raises 400 Ecs.0001 naming each quota that would be exceeded, with its limit, usage and the request.
    """
    params = {"project_id": project_id, "add_instances": instances, "add_cores": cores, "add_ram": ram,
              **_DEFAULT_PARAMS}
    for _attempt in range(3):
        if _CHARGE.execute(conn, params) == 1:
            return
        _refuse_if_over(conn, project_id, dict(zip(RESOURCES, (instances, cores, ram), strict=True)))
        # PostgreSQL: servers were released between the refused UPDATE and this read; try again.
    raise EcsError("Ecs.0001", "the project's usage kept changing while the request was checked; try again")


def _refuse_if_over(conn: Connection, project_id: str, requested: dict[str, int]) -> None:
    """After a refused conditional charge: 400 Ecs.0001 naming each quota the request passes, with its
    limit, usage and the request (returns if none does any more: the caller tries again)."""
    current = project_quotas(conn, project_id)
    if current is None:
        raise EcsError("Ecs.0001", f"project {project_id} has no quota")
    over = [(r, n, current[r]) for r, n in requested.items()
            if n > 0 and current[r]["limit"] >= 0 and current[r]["in_use"] + n > current[r]["limit"]]
    if over:
        raise EcsError("Ecs.0001", "; ".join(
            f"Quota exceeded for {r}: requested {n}, but already used {q['in_use']} of {q['limit']} {_UNITS[r]}"
            for r, n, q in over))


# --- the charge of a flavor change (resize, revert resize) ---------------------------------------------
# Usage follows servers.flavor_id: a resize or revert is charged the difference between the flavor it
# goes to and the one the server has, at acceptance (a growing resource checked against its quota, a
# shrinking one given back whatever the quota says now); the job gives it back if it fails before it
# records the new flavor (domain/resize.py). A server in VERIFY_RESIZE therefore counts its new flavor,
# and its delete releases that (servers.release_server, from servers.flavor_id); a revert to a bigger
# flavor is checked against the quota again, as Nova checks it.

_FLAVOR_CHANGE = Prepared(projects.update().where(and_(
    projects.c.id == bindparam("project_id"),
    *(or_(_ADD[r] <= 0, _fits(r)) for r in ("cores", "ram")))).values(
    cores_used=projects.c.cores_used + _ADD["cores"], ram_used=projects.c.ram_used + _ADD["ram"]))


def charge_flavor_change(conn: Connection, project_id: str, cores: int, ram: int) -> None:
    """Move the project's usage by ``cores`` vCPUs and ``ram`` MB (either may be negative), all or
    nothing, in the caller's transaction: 400 Ecs.0001 if a growing one would pass its quota."""
    params = {"project_id": project_id, "add_cores": cores, "add_ram": ram, **_DEFAULT_PARAMS}
    for _attempt in range(3):
        if _FLAVOR_CHANGE.execute(conn, params) == 1:
            return
        _refuse_if_over(conn, project_id, {"cores": cores, "ram": ram})
    raise EcsError("Ecs.0001", "the project's usage kept changing while the request was checked; try again")


def refund_flavor_change(conn: Connection, project_id: str, cores: int, ram: int) -> None:
    """Give back what :func:`charge_flavor_change` charged (a resize or revert that failed before it
    changed the flavor)."""
    conn.execute(_REFUND, {"project_id": project_id, "cores": cores, "ram": ram})


_REFUND = projects.update().where(projects.c.id == bindparam("project_id")).values(
    cores_used=projects.c.cores_used - bindparam("cores", type_=BigInteger),
    ram_used=projects.c.ram_used - bindparam("ram", type_=BigInteger))


# --- reading and setting quotas -------------------------------------------------------------------------

_READ = select(projects.c.id, *_USED.values(), *_OVERRIDE.values()).where(projects.c.id == bindparam("project_id"))


def project_quotas(conn: Connection, project_id: str) -> dict[str, dict[str, Any]] | None:
    """``{resource: {"limit", "in_use", "override"}}`` for instances, cores and ram (MB), or None if
    there is no such project. ``limit`` is the effective quota (-1: unlimited), ``override`` the
    project's own value or None (the default applies)."""
    row = conn.execute(_READ, {"project_id": project_id}).first()
    if row is None:
        return None
    m = row._mapping
    out = {}
    for r in RESOURCES:
        override = m[_OVERRIDE[r].name]
        out[r] = {"limit": DEFAULTS[r] if override is None else int(override), "in_use": int(m[_USED[r].name]),
                  "override": None if override is None else int(override)}
    return out


def check_value(resource: str, value: int) -> int:
    """A quota value: -1 (unlimited) or 0 .. 2**31-1, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or not UNLIMITED <= value <= MAX_QUOTA:
        raise ValueError(f"the {resource} quota must be -1 (unlimited) or 0 to {MAX_QUOTA}")
    return value


def set_quotas(conn: Connection, project_id: str, values: dict[str, int | None]) -> dict[str, dict[str, Any]]:
    """Set the project's overrides: ``{resource: value}``, where None restores the default. Returns the
    project's quotas as :func:`project_quotas` does. Unknown resources or values: ValueError; an
    unknown project: LookupError. A running server applies the change at its next acceptance."""
    changes = {}
    for resource, value in values.items():
        if resource not in RESOURCES:
            raise ValueError(f"unknown quota {resource!r}: one of {', '.join(RESOURCES)}")
        changes[_OVERRIDE[resource].name] = None if value is None else check_value(resource, value)
    if changes:
        conn.execute(projects.update().where(projects.c.id == project_id).values(**changes))
    current = project_quotas(conn, project_id)
    if current is None:
        raise LookupError(f"no project {project_id}")
    return current


# --- the HTTP views ------------------------------------------------------------------------------------

def absolute(conn: Connection, project_id: str) -> dict[str, Any]:
    """The v1 / Nova ``absolute`` limits: the project's effective quotas and its usage (from the counters)."""
    q = project_quotas(conn, project_id) or {r: {"limit": DEFAULTS[r], "in_use": 0} for r in RESOURCES}
    return {**FIXED_LIMITS,
            "maxTotalInstances": q["instances"]["limit"], "maxTotalCores": q["cores"]["limit"],
            "maxTotalRAMSize": q["ram"]["limit"],
            "totalInstancesUsed": q["instances"]["in_use"], "totalCoresUsed": q["cores"]["in_use"],
            "totalRAMUsed": q["ram"]["in_use"],
            "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 1,
            "totalServerGroupsUsed": conn.execute(select(func.count()).select_from(server_groups).where(
                server_groups.c.project_id == project_id)).scalar_one()}


def _quota_set(project_id: str, instances: int, cores: int, ram: int) -> dict[str, Any]:
    f = FIXED_LIMITS
    return {
        "id": project_id, "cores": cores, "instances": instances, "ram": ram, "key_pairs": f["maxTotalKeypairs"],
        "metadata_items": f["maxServerMeta"], "floating_ips": f["maxTotalFloatingIps"], "fixed_ips": -1,
        "security_groups": f["maxSecurityGroups"], "security_group_rules": f["maxSecurityGroupRules"],
        "server_groups": f["maxServerGroups"], "server_group_members": f["maxServerGroupMembers"],
        "injected_files": f["maxPersonality"], "injected_file_content_bytes": f["maxPersonalitySize"],
        "injected_file_path_bytes": 255,
    }


def quota_set(conn: Connection, project_id: str) -> dict[str, Any]:
    """Nova's quota set of the project: its effective quotas under Nova's names (-1: unlimited)."""
    q = project_quotas(conn, project_id) or {r: {"limit": DEFAULTS[r]} for r in RESOURCES}
    return _quota_set(project_id, q["instances"]["limit"], q["cores"]["limit"], q["ram"]["limit"])


def default_quota_set(project_id: str) -> dict[str, Any]:
    """Nova's ``/defaults``: the quotas a project has without overrides."""
    return _quota_set(project_id, DEFAULTS["instances"], DEFAULTS["cores"], DEFAULTS["ram"])
