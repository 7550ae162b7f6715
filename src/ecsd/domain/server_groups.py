"""Server groups (anti-affinity) and their members; and the automatic-recovery flag of a server.

Served by ``http/server_groups.py`` (v1 ``/cloudservers/os-server-groups``, Nova ``/os-server-groups``,
``/cloudservers/{server_id}/autorecovery``); a create joins a group through its
``os:scheduler_hints.group`` (``lifecycle._accept_create`` calls :func:`place`), and a finished delete
leaves it (``batch.purge_record`` calls :func:`leave`).

Rules (the reference leaves most of them open; docs/decisions.md, "server groups"):

* policies: exactly ``["anti-affinity"]`` ("Only anti-affinity groups are supported"); any other
  list, ``affinity`` and the soft policies included, is 400 Ecs.0005;
* name: 1 to 255 characters, no control characters, no leading or trailing space (Ecs.0005);
  names need not be unique (as in Nova);
* at most :data:`MAX_GROUPS` groups per project and :data:`MAX_MEMBERS` members per group, the
  numbers the quota APIs report (``quotas.FIXED_LIMITS``); more is 400 Ecs.0022, and a create
  whose servers would not all fit into the hinted group creates none of them;
* anti-affinity: the simulated cloud has as many hosts as a group can have members, so every
  member runs on a host of its own and the policy always holds; the member limit is the only
  thing that can refuse a placement (the real cloud's "no valid host" case has no code in the
  reference, so it is reported as the group's quota, Ecs.0022, at acceptance);
* a server is in at most one group (adding it to a second one: 400 Ecs.0005); a locked server
  cannot join or leave (Ecs.0605); deleting a group lets its members go (as in Nova);
* an unknown group is 404 Ecs.0313 on the group's own URLs, 400 Ecs.0313 when a create names it;
* a server's ``os:scheduler_hints`` shows the group it is in now (:func:`scheduler_hints`).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ecsd.domain import clock
from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.identity import Identity
from ecsd.domain.quotas import FIXED_LIMITS
from ecsd.store.schema import projects, server_auto_recovery, server_group_members, server_groups, servers

ANTI_AFFINITY = "anti-affinity"
MAX_NAME = 255
MAX_GROUPS = FIXED_LIMITS["maxServerGroups"]
MAX_MEMBERS = FIXED_LIMITS["maxServerGroupMembers"]


# --- validation -----------------------------------------------------------------------------------------

def check_name(name: str) -> None:
    """1-255 characters, no control characters, no leading or trailing space: else Ecs.0005."""
    if not name or len(name) > MAX_NAME:
        raise invalid(f"server_group.name must be 1 to {MAX_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise invalid("server_group.name must not contain control characters")
    if name != name.strip():
        raise invalid("server_group.name must not start or end with a space")


def check_policies(policies: list[str]) -> None:
    """Exactly ["anti-affinity"], the one policy the reference supports: else Ecs.0005."""
    if policies != [ANTI_AFFINITY]:
        raise invalid(f"server_group.policies must be [\"{ANTI_AFFINITY}\"]: only anti-affinity groups are supported")


# --- groups ---------------------------------------------------------------------------------------------

def _group(row: Any, members: list[str]) -> dict[str, Any]:
    m = row._mapping
    return {"id": m["id"], "name": m["name"], "policies": orjson.loads(m["policies"]), "members": members,
            "project_id": m["project_id"], "user_id": m["user_id"]}


def _members(conn: Connection, group_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {g: [] for g in group_ids}
    if group_ids:
        rows = conn.execute(select(server_group_members.c.group_id, server_group_members.c.server_id)
                            .where(server_group_members.c.group_id.in_(group_ids))
                            .order_by(server_group_members.c.created_at, server_group_members.c.server_id))
        for group_id, server_id in rows:
            out[group_id].append(server_id)
    return out


def _find_row(conn: Connection, project_id: str, group_id: str, *, lock: bool = False) -> Any:
    if not clock.is_uuid(group_id):
        return None
    q = select(server_groups).where(and_(server_groups.c.id == group_id, server_groups.c.project_id == project_id))
    return conn.execute(q.with_for_update() if lock else q).first()


def not_found(group_id: str, status: int = 404) -> EcsError:
    return EcsError("Ecs.0313", f"ECS group {group_id} does not exist", status=status)


def _load_row(conn: Connection, project_id: str, group_id: str, *, lock: bool = False) -> Any:
    row = _find_row(conn, project_id, group_id, lock=lock)
    if row is None:
        raise not_found(group_id)
    return row


def get_group(conn: Connection, project_id: str, group_id: str) -> dict[str, Any]:
    """The project's group with its members, or 404 Ecs.0313."""
    row = _load_row(conn, project_id, group_id)
    return _group(row, _members(conn, [group_id])[group_id])


def count_groups(conn: Connection, project_id: str) -> int:
    return conn.execute(select(func.count()).select_from(server_groups)
                        .where(server_groups.c.project_id == project_id)).scalar_one()


def create_group(conn: Connection, ident: Identity, name: str, policies: list[str]) -> dict[str, Any]:
    """A new group (Ecs.0005 for its name or policies, Ecs.0022 past :data:`MAX_GROUPS`).

    The project's row is locked first (PostgreSQL; SQLite's write lock serialises anyway), so that
    concurrent creates count one after another and never pass the limit together."""
    check_name(name)
    check_policies(policies)
    conn.execute(select(projects.c.id).where(projects.c.id == ident.project_id).with_for_update())
    if count_groups(conn, ident.project_id) >= MAX_GROUPS:
        raise EcsError("Ecs.0022", f"a project can have at most {MAX_GROUPS} ECS groups")
    group_id = clock.new_uuid()
    conn.execute(server_groups.insert().values(id=group_id, project_id=ident.project_id, user_id=ident.user_id,
                                               name=name, policies=orjson.dumps(policies).decode(),
                                               created_at=clock.now()))
    return get_group(conn, ident.project_id, group_id)


def _ordered(project_id: str):
    return (select(server_groups).where(server_groups.c.project_id == project_id)
            .order_by(server_groups.c.created_at, server_groups.c.id))


def list_groups(conn: Connection, project_id: str, limit: int | None = None,
                marker: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The project's groups, oldest first, after ``marker`` (a group id; unknown: Ecs.0005).

    Returns (page, whether more follow)."""
    q = _ordered(project_id)
    if marker is not None:
        after = _find_row(conn, project_id, marker)
        if after is None:
            raise invalid(f"marker {marker} is not an ECS group of this project")
        q = q.where((server_groups.c.created_at > after.created_at)
                    | and_(server_groups.c.created_at == after.created_at, server_groups.c.id > after.id))
    if limit is not None:
        q = q.limit(limit + 1)
    rows = list(conn.execute(q))
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    members = _members(conn, [r.id for r in rows])
    return [_group(r, members[r.id]) for r in rows], more


def list_groups_from(conn: Connection, project_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
    """Nova's paging: ``limit`` groups from the ``offset``-th, oldest first."""
    rows = list(conn.execute(_ordered(project_id).limit(limit).offset(offset)))
    members = _members(conn, [r.id for r in rows])
    return [_group(r, members[r.id]) for r in rows]


def delete_group(conn: Connection, project_id: str, group_id: str) -> None:
    """Delete the group (404 Ecs.0313); its members stay, in no group."""
    _load_row(conn, project_id, group_id, lock=True)
    conn.execute(server_group_members.delete().where(server_group_members.c.group_id == group_id))
    conn.execute(server_groups.delete().where(server_groups.c.id == group_id))


# --- members --------------------------------------------------------------------------------------------

def _group_of(conn: Connection, server_id: str) -> str | None:
    return conn.execute(select(server_group_members.c.group_id)
                        .where(server_group_members.c.server_id == server_id)).scalar()


def _check_room(conn: Connection, group_id: str, adding: int) -> None:
    """Ecs.0022 when ``adding`` more members would pass :data:`MAX_MEMBERS` (the group row is locked)."""
    have = conn.execute(select(func.count()).select_from(server_group_members)
                        .where(server_group_members.c.group_id == group_id)).scalar_one()
    if have + adding > MAX_MEMBERS:
        raise EcsError("Ecs.0022", f"ECS group {group_id} has {have} of at most {MAX_MEMBERS} members; "
                                   f"{adding} more do not fit")


def _insert(conn: Connection, group_id: str, server_ids: list[str]) -> None:
    now = clock.now()
    try:
        conn.execute(server_group_members.insert(), [{"server_id": s, "group_id": group_id, "created_at": now}
                                                     for s in server_ids])
    except IntegrityError:      # a concurrent add of the same server won the race
        raise invalid("the ECS is already in an ECS group") from None


def place(conn: Connection, project_id: str, group_id: str | None, server_ids: list[str]) -> None:
    """New servers join the group their create's ``os:scheduler_hints.group`` names (if any), in the
    create's transaction: an unknown group is 400 Ecs.0313, too many members 400 Ecs.0022."""
    if group_id is None:
        return
    if _find_row(conn, project_id, group_id, lock=True) is None:
        raise not_found(group_id, status=400)
    _check_room(conn, group_id, len(server_ids))
    _insert(conn, group_id, server_ids)


def _member_target(conn: Connection, project_id: str, group_id: str, server_id: str) -> dict[str, Any]:
    """The group (404 Ecs.0313, locked) and then the server (404 Ecs.0114), which must not be locked (Ecs.0605)."""
    _load_row(conn, project_id, group_id, lock=True)
    server = srv.load(conn, project_id, server_id)
    if server["locked"]:
        raise EcsError("Ecs.0605")
    return server


def add_member(conn: Connection, project_id: str, group_id: str, server_id: str) -> None:
    """``add_member``: Ecs.0313 / Ecs.0114 / Ecs.0605 as :func:`_member_target`; already in this or
    another group 400 Ecs.0005; the group full 400 Ecs.0022."""
    server = _member_target(conn, project_id, group_id, server_id)
    current = _group_of(conn, server["id"])
    if current == group_id:
        raise invalid(f"ECS {server_id} is already a member of ECS group {group_id}")
    if current is not None:
        raise invalid(f"ECS {server_id} is already a member of ECS group {current}")
    _check_room(conn, group_id, 1)
    _insert(conn, group_id, [server["id"]])


def remove_member(conn: Connection, project_id: str, group_id: str, server_id: str) -> None:
    """``remove_member``: Ecs.0313 / Ecs.0114 / Ecs.0605 as :func:`_member_target`; not a member of
    this group 400 Ecs.0005."""
    server = _member_target(conn, project_id, group_id, server_id)
    gone = conn.execute(server_group_members.delete().where(and_(
        server_group_members.c.server_id == server["id"], server_group_members.c.group_id == group_id))).rowcount
    if gone == 0:
        raise invalid(f"ECS {server_id} is not a member of ECS group {group_id}")


def leave(conn: Connection, server_id: str) -> None:
    """A deleted server leaves its group (in the transaction that records the delete)."""
    conn.execute(server_group_members.delete().where(server_group_members.c.server_id == server_id))


def scheduler_hints(conn: Connection, server_ids: list[str]) -> dict[str, dict[str, list[str]]]:
    """What a server view shows as ``os:scheduler_hints``: ``{"group": [group id]}`` for a server in a
    group, ``{}`` otherwise; one query for a whole page."""
    out: dict[str, dict[str, list[str]]] = {s: {} for s in server_ids}
    if server_ids:
        rows = conn.execute(select(server_group_members.c.server_id, server_group_members.c.group_id)
                            .where(server_group_members.c.server_id.in_(server_ids)))
        for server_id, group_id in rows:
            out[server_id] = {"group": [group_id]}
    return out


# --- automatic recovery (discarded API, still called) --------------------------------------------------
# The flag is stored and answered; the simulated cloud loses no host, so it never has to act on it.
# A server on which it was never set reports "false" (the flavors declare no "autorecovery" in
# cond:compute, domain/flavors.py).

def auto_recovery(conn: Connection, project_id: str, server_id: str) -> bool:
    """The server's flag (404 Ecs.0114)."""
    server = srv.load(conn, project_id, server_id)
    enabled = conn.execute(select(server_auto_recovery.c.enabled)
                           .where(server_auto_recovery.c.server_id == server["id"])).scalar()
    return bool(enabled)


def set_auto_recovery(conn: Connection, project_id: str, server_id: str, enabled: bool) -> None:
    """Set the server's flag (404 Ecs.0114, locked Ecs.0605)."""
    server = srv.load(conn, project_id, server_id)
    if server["locked"]:
        raise EcsError("Ecs.0605")
    # The server's row is locked first (PostgreSQL), so that two first sets cannot both insert.
    conn.execute(select(servers.c.id).where(servers.c.id == server["id"]).with_for_update())
    done = conn.execute(server_auto_recovery.update().where(server_auto_recovery.c.server_id == server["id"])
                        .values(enabled=enabled)).rowcount
    if done == 0:
        conn.execute(server_auto_recovery.insert().values(server_id=server["id"], enabled=enabled))
