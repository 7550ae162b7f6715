"""The reads behind a v1 list page, on the driver's cursor with SQL written once per dialect.

SQLAlchemy's per-execution work (expanding IN lists, result rows) cost more than these index lookups,
and the IN lists here change length with every page, which :mod:`ecsd.store.prepared` does not serve.
The rows of a page come with their disks in one join. On SQLite they are fetched by rowid (one index
lookup fewer per server); elsewhere by id. The project condition is written so that no index serves it
(``+column``, ``column || ''``): else a planner without statistics (SQLite always, PostgreSQL before its
first ANALYZE) walks the whole project index instead of looking the rows up by key.

What to keep and when is decided by the caller (``domain/listing.py``); this module only reads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

PAGE_COLUMNS = ("id", "name", "description", "vm_state", "task_state", "power_state", "image_id", "flavor_id",
                "key_name", "metadata", "addresses", "root_device_name", "reservation_id", "launch_index",
                "user_data", "availability_zone", "launched_at", "locked", "fault", "project_id", "user_id",
                "created_at", "updated_at")
"""The server columns a v1 view reads, in the order of the rows returned here."""
DISK = len(PAGE_COLUMNS)   # where a joined row's disk columns (id, boot_index, device) start

Volume = tuple[str, int | None, str | None]       # (id, boot_index, device)
Flavor = tuple[str, int, int]                    # (name, vcpus, ram)


@dataclass(frozen=True, slots=True)
class _Sql:
    values_in: Callable[[int], str]   # the condition text matching n values
    by_rowid: bool                    # ranked rows carry their rowid and are fetched by it (SQLite)
    counts: str
    ranked: str                       # id (, rowid) of the live servers in listing order
    top: str                          # ... one page of them
    joined: str                       # rows with their disks, by key (rowid or id)
    joined_by_id: str
    volumes: str
    flavors: str
    tags: str
    groups: str
    shared: str


def _sql(p: str, values_in: Callable[[int], str], by_rowid: bool, false: str, id_order: str,
         unindexed_project: str) -> _Sql:
    ranked = (f"SELECT id{', rowid' if by_rowid else ''} FROM servers WHERE project_id = {p} "
              f"AND deleted = {false} ORDER BY created_at DESC, {id_order} DESC")
    joined = (f"SELECT {', '.join('s.' + c for c in PAGE_COLUMNS)}, v.id, v.boot_index, v.device "
              f"FROM servers s LEFT JOIN volumes v ON v.server_id = s.id WHERE s.KEY {{values}} "
              f"AND {unindexed_project} = {p} AND s.deleted = {false}")
    return _Sql(
        values_in=values_in, by_rowid=by_rowid,
        counts=f"SELECT server_count, list_gen FROM projects WHERE id = {p}",
        ranked=ranked, top=f"{ranked} LIMIT {p} OFFSET {p}",
        joined=joined.replace("KEY", "rowid" if by_rowid else "id"), joined_by_id=joined.replace("KEY", "id"),
        # the order of servers.attached_volumes
        volumes=("SELECT server_id, id, boot_index, device FROM volumes WHERE server_id {values} "
                 "ORDER BY server_id, boot_index IS NULL, boot_index, device"),
        flavors="SELECT id, name, vcpus, ram FROM flavors WHERE id {values}",
        tags="SELECT server_id, key, value FROM server_tags WHERE server_id {values}",
        groups="SELECT server_id, group_id FROM server_group_members WHERE server_id {values}",
        shared="SELECT server_id, volume_id, NULL, device FROM volume_attachments WHERE server_id {values}")


@functools.lru_cache(maxsize=64)
def _qmarks(n: int) -> str:
    return f"IN ({', '.join('?' * n)})"


_SQLITE = _sql("?", _qmarks, True, "0", "id", "+s.project_id")
_POSTGRESQL = _sql("%s", lambda n: "= ANY(%s)", False, "false", 'id COLLATE "C"',   # = ANY: one array parameter
                   "(s.project_id || '')")


def _dialect(conn: Connection) -> tuple[Any, _Sql]:
    return conn.connection.dbapi_connection, (_POSTGRESQL if conn.dialect.name == "postgresql" else _SQLITE)


def _run_in(dbapi, sql: _Sql, template: str, values: list, *more: Any) -> list[tuple]:
    """Run ``template`` with its ``{values}`` condition matching these values (then ``more`` parameters)."""
    params = (*values, *more) if sql is _SQLITE else (values, *more)
    return dbapi.execute(template.format(values=sql.values_in(len(values))), params).fetchall()


def keys_are_rowids(conn: Connection) -> bool:
    """Whether :func:`ranked` and :func:`top` give rowids (SQLite) rather than ids as fetch keys."""
    return _dialect(conn)[1].by_rowid


def counts(conn: Connection, project_id: str) -> tuple[int, int] | None:
    """(server_count, list_gen) of the project, or None if there is no such project."""
    dbapi, sql = _dialect(conn)
    found = dbapi.execute(sql.counts, (project_id,)).fetchone()
    return None if found is None else (found[0], found[1])


def _ids_and_keys(rows: list[tuple], by_rowid: bool) -> tuple[list[str], list]:
    ids = [r[0] for r in rows]
    return ids, ([r[1] for r in rows] if by_rowid else ids)


def ranked(conn: Connection, project_id: str) -> tuple[list[str], list]:
    """(ids, fetch keys) of every live server of the project, in listing order."""
    dbapi, sql = _dialect(conn)
    return _ids_and_keys(dbapi.execute(sql.ranked, (project_id,)).fetchall(), sql.by_rowid)


def top(conn: Connection, project_id: str, limit: int, first: int) -> tuple[list[str], list]:
    """(ids, fetch keys) of the live servers at positions first .. first+limit-1 (an index walk)."""
    dbapi, sql = _dialect(conn)
    return _ids_and_keys(dbapi.execute(sql.top, (project_id, limit, first)).fetchall(), sql.by_rowid)


def rows_with_disks(conn: Connection, keys: list, project_id: str, *, by_id: bool = False) -> list[tuple]:
    """Live rows of the project's servers with these fetch keys (ids if ``by_id``), each joined with one
    of its disks (PAGE_COLUMNS values, then the disk's id, boot_index, device, or three None): a server
    with several disks comes once per disk, in no particular order."""
    dbapi, sql = _dialect(conn)
    return _run_in(dbapi, sql, sql.joined_by_id if by_id else sql.joined, keys, project_id)


def disks(conn: Connection, server_ids: list[str]) -> dict[str, list[Volume]]:
    """server id -> its attached disks, system disk first (the order of servers.attached_volumes)."""
    dbapi, sql = _dialect(conn)
    out: dict[str, list[Volume]] = {}
    for v in _run_in(dbapi, sql, sql.volumes, server_ids):
        out.setdefault(v[0], []).append(v[1:])
    return out


def shared_disks(conn: Connection, server_ids: list[str]) -> dict[str, list[Volume]]:
    """server id -> the shared disks attached to it (volume_attachments; never a system disk)."""
    dbapi, sql = _dialect(conn)
    out: dict[str, list[Volume]] = {}
    for v in _run_in(dbapi, sql, sql.shared, server_ids):
        out.setdefault(v[0], []).append(v[1:])
    return out


def flavors(conn: Connection, flavor_ids: list[str]) -> dict[str, Flavor | None]:
    """flavor id -> (name, vcpus, ram); None for an id that names no flavor."""
    dbapi, sql = _dialect(conn)
    out: dict[str, Flavor | None] = dict.fromkeys(flavor_ids)
    out.update((f[0], f[1:]) for f in _run_in(dbapi, sql, sql.flavors, flavor_ids))
    return out


def tags(conn: Connection, server_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """server id -> its tags as a view shows them (``key=value``, or ``key`` for an empty value), by key
    in code point order (sorted here: the databases' collations differ); a server without tags is absent."""
    dbapi, sql = _dialect(conn)
    out: dict[str, list[tuple[str, str]]] = {}
    for sid, key, value in _run_in(dbapi, sql, sql.tags, server_ids):
        out.setdefault(sid, []).append((key, value))
    return {sid: tuple(k if v == "" else f"{k}={v}" for k, v in sorted(pairs)) for sid, pairs in out.items()}


def groups(conn: Connection, server_ids: list[str]) -> dict[str, str]:
    """server id -> the server group it is in (domain/server_groups.py: ``scheduler_hints``); a server in
    none is absent."""
    dbapi, sql = _dialect(conn)
    return dict(_run_in(dbapi, sql, sql.groups, server_ids))
