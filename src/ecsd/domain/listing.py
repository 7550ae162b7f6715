"""Listing servers: the filters shared by both APIs, page-number paging (v1) and marker paging (Nova).

    GET /v1/{project_id}/cloudservers/detail     ?offset (page number) &limit, ``count`` = total
    GET /v2.1/{project_id}/servers[/detail]      ?marker (server id) &limit, a ``next`` link

Both walk the same order, newest first (``created_at`` desc, then ``id`` desc), the order the
index ``ix_servers_project_created`` serves. An unfiltered v1 page is a slice of that order kept in
memory per project and checked against ``projects.list_gen`` (:func:`list_page`), so that the last
page costs what the first does.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.engine import Connection, Engine

from ecsd.domain import states as st
from ecsd.domain import tags as server_tags
from ecsd.domain.errors import invalid
from ecsd.domain.servers import decode
from ecsd.store import pages
from ecsd.store.db import sees_uncommitted
from ecsd.store.pages import DISK, PAGE_COLUMNS, Flavor, Volume
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


MAX_SERVER_NAME = 255     # no server name is longer (create allows 128)
MAX_ADDRESS = 45          # the longest textual IP address


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
    # Comma-separated tags as a server view shows them (``key=value`` or ``key``): ``tags`` all of them,
    # ``tags_any`` at least one, ``not_tags`` not all of them, ``not_tags_any`` none (domain/tags.py).
    tags: str | None = None
    not_tags: str | None = None
    tags_any: str | None = None
    not_tags_any: str | None = None

    def conditions(self, project_id: str) -> list:
        """The WHERE terms; an invalid status is Ecs.0005. A name or address longer than any there can
        be matches nothing (and never reaches the database's LIKE, whose patterns are bounded)."""
        cond = [servers.c.project_id == project_id, servers.c.deleted.is_(False)]
        if (self.name and len(self.name) > MAX_SERVER_NAME) or any(
                value and len(value) > MAX_ADDRESS for value in (self.ip, self.ip_eq)):
            return [*cond, false()]
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
        cond.extend(server_tags.list_conditions(self.tags, self.tags_any, self.not_tags, self.not_tags_any))
        return cond


def _id_column(conn: Connection):
    # Byte-wise order on every backend (SQLite compares byte-wise already), so that the ORDER BY and
    # the marker comparison agree whatever the database's locale.
    return servers.c.id.collate("C") if conn.dialect.name == "postgresql" else servers.c.id


# --- the v1 page: rows for the view, with their disks and flavors ----------------------------------------
#
# An unfiltered listing slices an in-memory order instead of walking OFFSET rows of the index (the
# last of 1000 pages skipped 99,900 index entries per request). Per process, the ids of a project's
# live servers in listing order are kept with the projects.list_gen they were read at. Every
# transaction that creates or deletes servers of a project bumps list_gen (servers.adjust_count), and
# created_at never changes, so the ordered set of live ids is a function of list_gen: a request that
# reads the same list_gen from the database (in its own transaction, so in any process, on either
# database) may use the ids kept for it. Only ids come from memory: the rows are read afresh, through
# store/pages.py.

_ID, _FLAVOR = PAGE_COLUMNS.index("id"), PAGE_COLUMNS.index("flavor_id")
_PAGE_SELECT = select(*(servers.c[name] for name in PAGE_COLUMNS))


@dataclass(frozen=True, slots=True)
class Page:
    """One v1 page: ``count`` matching servers in all; ``rows`` (PAGE_COLUMNS values) newest first, with
    what their views show besides: disks, flavors, tags and server groups (``os:scheduler_hints``)."""

    count: int
    rows: list[tuple]
    volumes: dict[str, list[Volume]]              # server id -> its attached disks, system disk first
    flavors: dict[str, Flavor | None]             # flavor id -> (name, vcpus, ram); None if unknown
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)   # server id -> its tags as shown
    groups: dict[str, str] = field(default_factory=dict)             # server id -> its server group


class _Orders:
    """project id -> (list_gen, server_count, ids, keys) for the projects listed last.

    ``ids`` are the project's live servers in listing order; ``keys`` what to fetch them by (their
    rowids on SQLite, else ``ids`` itself). Bounded by projects and by ids in all (a 100,000-server
    project keeps about 12 MB). Guarded by a lock: on PostgreSQL transactions run on a thread pool.
    """

    def __init__(self, projects: int = 16, ids: int = 1_000_000) -> None:
        self.max_projects, self.max_ids = projects, ids
        self._lru: OrderedDict[str, tuple[int, int, list[str], list]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project_id: str, gen: int, count: int) -> tuple[list[str], list] | None:
        with self._lock:
            entry = self._lru.get(project_id)
            if entry is None or entry[0] != gen or entry[1] != count:
                return None
            self._lru.move_to_end(project_id)
            return entry[2], entry[3]

    def put(self, project_id: str, gen: int, count: int, ids: list[str], keys: list) -> None:
        with self._lock:
            self._lru[project_id] = (gen, count, ids, keys)
            self._lru.move_to_end(project_id)
            total = sum(len(e[2]) for e in self._lru.values())
            while len(self._lru) > 1 and (len(self._lru) > self.max_projects or total > self.max_ids):
                total -= len(self._lru.popitem(last=False)[1][2])

    def drop(self, project_id: str) -> None:
        with self._lock:
            self._lru.pop(project_id, None)


# One cache per engine (per database): two databases may hold the same project id at the same list_gen.
_ORDERS: weakref.WeakKeyDictionary[Engine, _Orders] = weakref.WeakKeyDictionary()


def _orders(conn: Connection) -> _Orders:
    orders = _ORDERS.get(conn.engine)
    if orders is None:
        orders = _ORDERS.setdefault(conn.engine, _Orders())
    return orders


# A page within this many servers of the top is read from the index when the kept order is out of
# date, rather than ranking every server again: listing the newest servers right after creating or
# deleting some stays cheap.
_NEAR_TOP = 1000


def _ranked(conn: Connection, project_id: str, first: int, limit: int) -> tuple[int, list[str], list]:
    """(live servers, the ids at positions first .. first+limit-1 in listing order, their fetch keys)."""
    found = pages.counts(conn, project_id)
    if found is None:
        return 0, [], []
    count, gen = found
    orders = _orders(conn)
    kept = orders.get(project_id, gen, count)
    if kept is None:
        if first + limit <= _NEAR_TOP:
            ids, keys = pages.top(conn, project_id, limit, first)
            return count, ids, keys
        ids, keys = pages.ranked(conn, project_id)
        # Kept only if no create or delete committed meanwhile (PostgreSQL's READ COMMITTED gives each
        # statement its own snapshot), and only from committed data (an SQLite read inside a group
        # commit sees writes that a failed commit would take back): then these ids are exactly the
        # live servers at `gen`.
        again = pages.counts(conn, project_id)
        if again is not None and again[1] == gen and not sees_uncommitted(conn):
            orders.put(project_id, gen, count, ids, keys)
    else:
        ids, keys = kept
    return count, ids[first:first + limit], keys[first:first + limit]


def _disk_order(v: Volume) -> tuple:
    """The order of servers.attached_volumes: the system disk, the disks with a boot index, then by device."""
    return (v[1] is None, v[1] or 0, v[2] or "")


def _joined(conn: Connection, keys: list, ids: list[str], project_id: str, by_id: bool,
            volumes: dict[str, list[Volume]]) -> list[tuple]:
    """The live rows of the servers ``ids`` (fetched by ``keys``) in that order; disks into ``volumes``."""
    found: dict[str, tuple] = {}
    for r in pages.rows_with_disks(conn, keys, project_id, by_id=by_id):
        sid = r[_ID]
        if sid not in found:
            found[sid] = r[:DISK]
        if r[DISK] is not None:
            volumes.setdefault(sid, []).append(r[DISK:])
    several = [sid for sid, disks in volumes.items() if len(disks) > 1]
    if several:   # the join leaves the order of a server's disks open: ask for it
        volumes.update(pages.disks(conn, several))
    # a server deleted since its id was ranked (another process, same moment) is left out
    return [r for i in ids if (r := found.get(i)) is not None]


def list_page(conn: Connection, project_id: str, limit: int, page: int, filters: Filters) -> Page:
    """The v1 page ``page`` (from 1) of ``limit`` servers, newest first, with what their views need."""
    first = (page - 1) * limit
    volumes: dict[str, list[Volume]] = {}
    if filters == Filters():
        count, ids, keys = _ranked(conn, project_id, first, limit)
        rowids = pages.keys_are_rowids(conn)
        rows = _joined(conn, keys, ids, project_id, not rowids, volumes) if ids else []
        if len(rows) < len(ids) and rowids:
            # An SQLite transaction reads one snapshot, in which every ranked server is live: a rowid
            # no longer holds its server (VACUUM renumbers them). Forget the kept order; read by id.
            _orders(conn).drop(project_id)
            volumes.clear()
            rows = _joined(conn, ids, ids, project_id, True, volumes)
    else:
        where = and_(*filters.conditions(project_id))
        count = conn.execute(select(func.count()).select_from(servers).where(where)).scalar_one()
        sid = _id_column(conn)
        rows = [tuple(r) for r in conn.execute(_PAGE_SELECT.where(where)
                                               .order_by(servers.c.created_at.desc(), sid.desc())
                                               .limit(limit).offset(first))]
        if rows:
            volumes = pages.disks(conn, [r[_ID] for r in rows])
    shown = [r[_ID] for r in rows]
    if shown:   # shared disks are attached through volume_attachments (domain/attachments.py)
        for sid, extra in pages.shared_disks(conn, shown).items():
            volumes[sid] = sorted([*volumes.get(sid, ()), *extra], key=_disk_order)
    flavors = pages.flavors(conn, list({r[_FLAVOR] for r in rows})) if rows else {}
    tags = pages.tags(conn, shown) if shown else {}
    groups = pages.groups(conn, shown) if shown else {}      # os:scheduler_hints: one query per page
    return Page(count, rows, volumes, flavors, tags, groups)


def page_server(row: tuple) -> dict[str, Any]:
    """A row of :attr:`Page.rows` as a server dict (JSON columns decoded), as servers.load gives it."""
    server = dict(zip(PAGE_COLUMNS, row, strict=True))
    for key in ("metadata", "addresses", "fault"):
        if server[key] is not None:
            server[key] = orjson.loads(server[key])
    return server


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


def forget(engine: Engine) -> None:
    """Drop every kept listing order of this database (the emulator replaced its rows)."""
    _ORDERS.pop(engine, None)
