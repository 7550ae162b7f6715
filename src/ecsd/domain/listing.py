"""Listing servers: filters and page-number paging of GET /v1/{project_id}/cloudservers/detail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from ecsd.domain import states as st
from ecsd.domain.servers import decode
from ecsd.store.schema import servers


def _like(fragment: str, dot_is_wildcard: bool) -> str:
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if dot_is_wildcard:
        escaped = escaped.replace(".", "_")   # the reference: '.' in a name filter matches any character
    return f"%{escaped}%"


def list_servers(conn: Connection, project_id: str, limit: int, page: int, name: str | None, status: str | None,
                 flavor: str | None, reservation_id: str | None, ip: str | None) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of server rows), newest first; ``page`` counts from 1."""
    cond = [servers.c.project_id == project_id, servers.c.deleted.is_(False)]
    if name:
        cond.append(servers.c.name.like(_like(name, True), escape="\\"))
    if status:
        cond.append(servers.c.vm_state.in_(st.FILTER_VM_STATES[status]))
    if flavor:
        cond.append(servers.c.flavor_id == flavor)
    if reservation_id:
        cond.append(servers.c.reservation_id == reservation_id)
    if ip:
        cond.append(servers.c.addresses.like(_like(f'"addr":"{ip}', False), escape="\\"))
    where = and_(*cond)
    count = conn.execute(select(func.count()).select_from(servers).where(where)).scalar_one()
    rows = conn.execute(select(servers).where(where)
                        .order_by(servers.c.created_at.desc(), servers.c.id.desc())
                        .limit(limit).offset((page - 1) * limit)).all()
    return count, [decode(r) for r in rows]
