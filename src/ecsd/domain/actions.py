"""Operation history: what was done to a server, by whom, in which request, and how each step went
(the Nova ``os-instance-actions`` API: querying_operations_on_an_ecs.rst,
querying_ecs_operations_by_request_id.rst).

An action is recorded in the transaction that accepts the operation (:func:`record`), keyed by the
server and the request id the caller got in ``X-Openstack-Request-Id`` (``req-`` + the id of
``X-Request-Id``), with the user and the job that carries it out. Its events are the job's steps,
which the engine appends to ``jobs.events`` with each checkpoint (a generic job feature: name, start,
finish, result, and the error for a failed step); an operation without a job (lock, unlock) has one
event, done at once. Actions stay after their server is deleted: they are the project's audit trail.

Action names are Nova's (``nova/compute/instance_actions.py``), mapped from ECS job types once here.
"""

from __future__ import annotations

import contextvars
from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.domain.errors import EcsError
from ecsd.domain.identity import Identity
from ecsd.store.prepared import Prepared
from ecsd.store.schema import instance_actions, jobs, servers

CREATE, DELETE, START, STOP, REBOOT, REBUILD = "create", "delete", "start", "stop", "reboot", "rebuild"
LOCK, UNLOCK = "lock", "unlock"
ATTACH_VOLUME, DETACH_VOLUME = "attach_volume", "detach_volume"
ATTACH_INTERFACE, DETACH_INTERFACE = "attach_interface", "detach_interface"
RESIZE, CONFIRM_RESIZE, REVERT_RESIZE = "resize", "confirmResize", "revertResize"
# The job type of each per-server operation -> the action it is for a user.
BY_JOB_TYPE = {
    st.CREATE_SINGLE_SERVER: CREATE, st.DELETE_SINGLE_SERVER: DELETE, st.START_SINGLE_SERVER: START,
    st.STOP_SINGLE_SERVER: STOP, st.REBOOT_SINGLE_SERVER: REBOOT, st.CHANGE_OS: REBUILD,
    st.REINSTALL_OS: REBUILD, st.ATTACH_VOLUME: ATTACH_VOLUME, st.DETACH_VOLUME: DETACH_VOLUME,
    st.ADD_NICS: ATTACH_INTERFACE, st.DELETE_NICS: DETACH_INTERFACE, st.RESIZE_SERVER: RESIZE,
    st.CONFIRM_RESIZE: CONFIRM_RESIZE, st.REVERT_RESIZE: REVERT_RESIZE,
}

# The request being served and its user, set by the HTTP edge (http/core.py: endpoint), so that acceptance
# records its actions under the request's id without every domain function taking the request.
caller: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("ecsd_caller", default=None)


# A prepared statement (store/prepared.py): every accepted operation on a server records an action.
_INSERT = Prepared(instance_actions.insert(), keys=("request_id", "server_id", "project_id", "action", "user_id",
                                                    "job_id", "start_time", "finish_time"))


def request_id_of(raw: str | None) -> str:
    return f"req-{raw}" if raw else f"req-{clock.new_hex_id()}"


def record(conn: Connection, ident: Identity, server_id: str, action: str, job_id: str | None = None) -> None:
    """One action of ``ident`` on ``server_id`` in the caller's transaction, under the id of the
    request being served (:data:`caller`; outside a request, e.g. a seed file, a request id of its own)."""
    who = caller.get()
    now = clock.now()
    _INSERT.execute(conn, {
        "request_id": request_id_of(who[0] if who else None), "server_id": server_id,
        "project_id": ident.project_id, "action": action, "user_id": ident.user_id, "job_id": job_id,
        "start_time": now, "finish_time": None if job_id else now})


def record_job(conn: Connection, ident: Identity, server_id: str, job_type: str, job_id: str) -> None:
    action = BY_JOB_TYPE.get(job_type)
    if action is not None:
        record(conn, ident, server_id, action, job_id)


# --- reads -----------------------------------------------------------------------------------------------

_COLUMNS = (instance_actions.c.request_id, instance_actions.c.server_id, instance_actions.c.project_id,
            instance_actions.c.action, instance_actions.c.user_id, instance_actions.c.start_time,
            instance_actions.c.finish_time, jobs.c.status, jobs.c.events, jobs.c.end_time, jobs.c.error_code,
            jobs.c.fail_reason)


def _query(project_id: str, server_id: str):
    return (select(*_COLUMNS).select_from(instance_actions.outerjoin(jobs, jobs.c.job_id == instance_actions.c.job_id))
            .where(and_(instance_actions.c.project_id == project_id, instance_actions.c.server_id == server_id)))


def _known_server(conn: Connection, project_id: str, server_id: str) -> None:
    """404 Ecs.0114 unless the project has this server, or had it (its actions outlive it)."""
    if not clock.is_uuid(server_id):
        raise EcsError("Ecs.0114")
    found = conn.execute(select(servers.c.id).where(and_(servers.c.id == server_id,
                                                         servers.c.project_id == project_id))).first()
    if found is None and conn.execute(select(instance_actions.c.request_id).where(and_(
            instance_actions.c.server_id == server_id, instance_actions.c.project_id == project_id))
            .limit(1)).first() is None:
        raise EcsError("Ecs.0114")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else clock.iso_us(ts).rstrip("Z")


def _view(row: Any, with_events: bool) -> dict[str, Any]:
    failed = row.status == st.JOB_FAIL
    out: dict[str, Any] = {"action": row.action, "instance_uuid": row.server_id, "message": "Error" if failed else None,
                           "project_id": row.project_id, "request_id": row.request_id,
                           "start_time": _iso(row.start_time), "user_id": row.user_id}
    if with_events:
        out["events"] = events(row)
    return out


def events(row: Any) -> list[dict[str, Any]]:
    if row.events is None:       # no job: done at once
        return [{"event": f"compute_{row.action}_instance", "start_time": _iso(row.start_time),
                 "finish_time": _iso(row.finish_time), "result": "Success", "traceback": None}]
    out = []
    for e in orjson.loads("[" + row.events.rstrip(",") + "]"):
        out.append({"event": "compute_" + e["step"], "start_time": _iso(e["start"]), "finish_time": _iso(e["end"]),
                    "result": "Success" if e.get("error") is None else "Error", "traceback": e.get("error")})
    return out


def list_actions(conn: Connection, project_id: str, server_id: str) -> list[dict[str, Any]]:
    _known_server(conn, project_id, server_id)
    rows = conn.execute(_query(project_id, server_id).order_by(instance_actions.c.start_time.desc()))
    return [_view(r, False) for r in rows]


def show_action(conn: Connection, project_id: str, server_id: str, request_id: str) -> dict[str, Any]:
    _known_server(conn, project_id, server_id)
    row = conn.execute(_query(project_id, server_id).where(instance_actions.c.request_id == request_id)).first()
    if row is None:
        raise EcsError("Common.0404", f"server {server_id} has no action of request {request_id}")
    return _view(row, True)
