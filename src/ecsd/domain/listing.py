"""Listing servers: the filters shared by both APIs, page-number paging (v1) and marker paging (Nova).

    GET /v1/{project_id}/cloudservers/detail     ?offset (page number) &limit, ``count`` = total
    GET /v2.1/{project_id}/servers[/detail]      ?marker (server id) &limit, a ``next`` link

Both walk the same order, newest first (``created_at`` desc, then ``id`` desc), the order the
index ``ix_servers_project_created`` serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain import states as st
from ecsd.domain.errors import invalid
from ecsd.domain.servers import decode, live_count
from ecsd.store.schema import servers

# Every status the list APIs accept as a filter (querying_details_about_ecss.rst, v1 and Nova).
FILTER_STATUSES = ("ACTIVE", "BUILD", "ERROR", "HARD_REBOOT", "MIGRATING", "REBOOT", "REBUILD", "RESIZE",
                   "REVERT_RESIZE", "SHUTOFF", "VERIFY_RESIZE", "DELETED", "SHELVED", "SHELVED_OFFLOADED",
                   "UNKNOWN")

# The stable statuses match on vm_state alone, so that a server in an intermediate state is still
# found under the state it is in (the reference: filter ACTIVE also returns REBOOT, HARD_REBOOT,
# REBUILD, MIGRATING servers; SHUTOFF also RESIZE and REBUILD; ERROR also REBUILD; VERIFY_RESIZE
# also REVERT_RESIZE). An intermediate status matches exactly the servers that show it.
_BY_VM_STATE: dict[str, tuple[str, ...]] = {
    "ACTIVE": (st.ACTIVE,), "SHUTOFF": (st.STOPPED,), "ERROR": (st.ERROR,), "BUILD": (st.BUILDING,),
    "DELETED": (st.DELETED,), "VERIFY_RESIZE": ("resized",), "SHELVED": ("shelved",),
    "SHELVED_OFFLOADED": ("shelved_offloaded",),
}
# The (vm_state, task_state) pairs this service ever writes; an intermediate status filter matches
# those of them that states.status_of names so.
_VM_STATES = (st.BUILDING, st.ACTIVE, st.STOPPED, st.ERROR)
_TASK_STATES = (st.SCHEDULING, st.BLOCK_DEVICE_MAPPING, st.SPAWNING, st.POWERING_OFF, st.POWERING_ON,
                st.REBOOTING, st.REBOOTING_HARD, st.REBUILDING, st.REBUILD_BDM, st.REBUILD_SPAWNING, st.DELETING)


def _status_condition(status: str):
    status = status.upper()     # Nova compares statuses case-insensitively
    if status not in FILTER_STATUSES:
        raise invalid(f"status {status} is not a server status; use one of {', '.join(FILTER_STATUSES)}")
    if status in _BY_VM_STATE:
        return servers.c.vm_state.in_(_BY_VM_STATE[status])
    pairs = [(vm, task) for vm in _VM_STATES for task in _TASK_STATES if st.status_of(vm, task) == status]
    if not pairs:
        return false()   # a status this service never produces (MIGRATING, RESIZE, UNKNOWN, ...)
    return or_(*(and_(servers.c.vm_state == vm, servers.c.task_state == task) for vm, task in pairs))


def _escape(fragment: str) -> str:
    """Literal text inside a LIKE pattern (ESCAPE '\\')."""
    return fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(fragment: str, dot_is_wildcard: bool) -> str:
    escaped = _escape(fragment)
    if dot_is_wildcard:
        escaped = escaped.replace(".", "_")   # the reference: '.' in a name filter matches any character
    return f"%{escaped}%"


def parse_changes_since(raw: str) -> float:
    """``changes-since`` (ISO 8601, e.g. ``2018-01-17T03:03:32Z``) as epoch seconds; else Ecs.0005."""
    try:
        dt = datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise invalid(f"changes-since {raw!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True)
class Filters:
    """What a list request may filter on; ``None`` (or empty) means "not filtered"."""

    name: str | None = None           # fuzzy, case-insensitive; '.' matches any one character
    status: str | None = None         # see FILTER_STATUSES
    flavor: str | None = None         # flavor id, exact
    reservation_id: str | None = None
    ip: str | None = None             # fuzzy: private IPv4 addresses starting with this text
    image: str | None = None          # image id, exact
    changes_since: float | None = None
    server_id: str | None = None      # exact (the SDK's server_id filter)
    ip_eq: str | None = None          # exact private IPv4 address
    tags: str | None = None           # servers carry no tags yet: any tags filter matches nothing
    not_tags: str | None = None       # ... and any not-tags filter matches everything

    def conditions(self, project_id: str) -> list:
        """The WHERE terms; an invalid status is Ecs.0005."""
        cond = [servers.c.project_id == project_id, servers.c.deleted.is_(False)]
        if self.name:
            cond.append(servers.c.name.ilike(_like(self.name, True), escape="\\"))
        if self.status:
            cond.append(_status_condition(self.status))
        if self.flavor:
            cond.append(servers.c.flavor_id == self.flavor)
        if self.reservation_id:
            cond.append(servers.c.reservation_id == self.reservation_id)
        if self.ip:
            # addresses is stored as compact JSON: {"<vpc>": [{"version":"4","addr":"10.0.0.5",...}]}
            prefix = _escape(self.ip.replace('"', ""))
            cond.append(servers.c.addresses.like(f'%"addr":"{prefix}%', escape="\\"))
        if self.image:
            cond.append(servers.c.image_id == self.image)
        if self.changes_since is not None:
            cond.append(servers.c.updated_at >= self.changes_since)
        if self.server_id:
            cond.append(servers.c.id == self.server_id)
        if self.ip_eq:
            exact = _escape(self.ip_eq.replace('"', ""))
            cond.append(servers.c.addresses.like(f'%"addr":"{exact}"%', escape="\\"))
        if self.tags:
            cond.append(false())
        return cond


def _id_column(conn: Connection):
    # Byte-wise order on every backend (SQLite compares byte-wise already), so that the ORDER BY and
    # the marker comparison agree whatever the database's locale.
    return servers.c.id.collate("C") if conn.dialect.name == "postgresql" else servers.c.id


def list_servers(conn: Connection, project_id: str, limit: int, page: int,
                 filters: Filters) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of server rows), newest first; ``page`` counts from 1."""
    where = and_(*filters.conditions(project_id))
    if filters == Filters():
        count = live_count(conn, project_id)   # kept by create/delete: no scan of every server
    else:
        count = conn.execute(select(func.count()).select_from(servers).where(where)).scalar_one()
    sid = _id_column(conn)
    rows = conn.execute(select(servers).where(where)
                        .order_by(servers.c.created_at.desc(), sid.desc())
                        .limit(limit).offset((page - 1) * limit)).all()
    return count, [decode(r) for r in rows]


def list_servers_after(conn: Connection, project_id: str, limit: int, marker: str | None,
                       filters: Filters) -> tuple[list[dict[str, Any]], bool]:
    """Nova paging: (up to ``limit`` rows after the server ``marker``, whether more follow).

    A marker that is not a live server of this project is Ecs.0005 (Nova: 400 "marker not found").
    """
    cond = filters.conditions(project_id)
    sid = _id_column(conn)
    if marker is not None:
        mark = conn.execute(select(servers.c.created_at, servers.c.id).where(and_(
            servers.c.id == marker, servers.c.project_id == project_id, servers.c.deleted.is_(False)))).first()
        if mark is None:
            raise invalid(f"marker [{marker}] not found")
        cond.append(or_(servers.c.created_at < mark.created_at,
                        and_(servers.c.created_at == mark.created_at, sid < mark.id)))
    rows = conn.execute(select(servers).where(and_(*cond))
                        .order_by(servers.c.created_at.desc(), sid.desc()).limit(limit + 1)).all()
    return [decode(r) for r in rows[:limit]], len(rows) > limit
