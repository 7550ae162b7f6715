"""Batch start, stop, reboot and delete of servers, their native single-server forms, and lock / unlock.

    POST /v1/{project_id}/cloudservers/action          os-start / os-stop / reboot (batch_operations/*.rst)
    POST /v1/{project_id}/cloudservers/delete          deleting_ecss.rst
    POST /v2.1/{project_id}/servers/{server_id}/action  os-start / os-stop / reboot / lock / unlock (Nova)
    DELETE /v2.1/{project_id}/servers/{server_id}       Nova delete

Every operation is accepted in one transaction (gate every server, insert the parent job and one
sub-job per server, all or nothing) and then carried out by the job engine. A server already in the
target state gets a sub-job that succeeded at once. A deleted server stops counting against the quota
when its delete job finishes (:func:`purge_record`), not when the delete is accepted. A start is
refused whole with 400 Ecs.0319 when the servers it would start do not fit this host's memory
budget (domain/capacity.py); they stay SHUTOFF and no job is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import and_
from sqlalchemy.engine import Connection

from ecsd.domain import actions, attachments, capacity, clock, server_groups, tags
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.changeos import driver_call
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.identity import Identity
from ecsd.engine.engine import JobContext, JobType, Step, settle_parent, submit
from ecsd.store.schema import jobs, servers, volumes


def _json(value) -> str:
    return orjson.dumps(value).decode()


# --- batch actions and delete -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Batch:
    parent_type: str
    sub_type: str
    target_vm_state: str | None   # already there with no task: a no-op sub-job that succeeds at once


_BATCHES = {
    "os-start": _Batch(st.START_SERVER, st.START_SINGLE_SERVER, st.ACTIVE),
    "os-stop": _Batch(st.STOP_SERVER, st.STOP_SINGLE_SERVER, st.STOPPED),
    "reboot": _Batch(st.REBOOT_SERVER, st.REBOOT_SINGLE_SERVER, None),
    "delete": _Batch(st.DELETE_SERVER, st.DELETE_SINGLE_SERVER, None),
}


MAX_BATCH = 1000


def accept_batch(conn: Connection, ident: Identity, action: str, server_ids: list[str], *, hard: bool = False,
                 delete_volume: bool = False) -> str:
    """Gate every server, then submit one parent job with a sub-job per server (all or nothing)."""
    if not server_ids:
        raise invalid("servers must name at least one ECS")
    if len(server_ids) > MAX_BATCH:
        raise EcsError("Ecs.0118", f"at most {MAX_BATCH} ECSs can be handled in one request")
    if len(set(server_ids)) != len(server_ids):
        raise invalid("servers must not name the same ECS twice")
    batch = _BATCHES[action]
    targets = srv.load_many(conn, ident.project_id, server_ids)
    noop = []
    for server in targets:
        already = (batch.target_vm_state is not None and server["vm_state"] == batch.target_vm_state
                   and server["task_state"] is None and server["job_id"] is None)
        if already:
            if server["locked"]:
                raise EcsError("Ecs.0605")
        else:
            srv.check_gate(server, batch.sub_type)
        noop.append(already)
    if batch.sub_type == st.START_SINGLE_SERVER:      # their memory, all together (400 Ecs.0319)
        capacity.check_start(conn, [s["id"] for s, is_noop in zip(targets, noop, strict=True) if not is_noop])
    parent_id = clock.new_hex_id()
    submit(conn, job_id=parent_id, project_id=ident.project_id, job_type=batch.parent_type, server_id=None,
           runnable=False)
    task = {st.START_SINGLE_SERVER: st.POWERING_ON, st.STOP_SINGLE_SERVER: st.POWERING_OFF,
            st.REBOOT_SINGLE_SERVER: st.REBOOTING_HARD if hard else st.REBOOTING,
            st.DELETE_SINGLE_SERVER: st.DELETING}[batch.sub_type]
    now = clock.now()
    for server, is_noop in zip(targets, noop):
        job_id = clock.new_hex_id()
        if is_noop:
            conn.execute(jobs.insert().values(
                job_id=job_id, project_id=ident.project_id, parent_id=parent_id, job_type=batch.sub_type,
                runnable=False, server_id=server["id"], status=st.JOB_SUCCESS, params="{}", step=0, attempts=0,
                created_at=now, begin_time=now, end_time=now))
            continue
        system = srv.system_volume(conn, server["id"])
        if system is None and batch.sub_type == st.START_SINGLE_SERVER:
            # its system disk was detached (domain/attachments.py): attach one first
            raise EcsError("Ecs.0105", f"server {server['id']} has no system disk")
        srv.claim(conn, server, task, job_id)
        actions.record_job(conn, ident, server["id"], batch.sub_type, job_id)
        submit(conn, job_id=job_id, project_id=ident.project_id, job_type=batch.sub_type, server_id=server["id"],
               parent_id=parent_id, params={"hard": hard, "delete_volume": delete_volume,
                                            "running": server["power_state"] == st.POWER_RUNNING,
                                            "system_volume": system["id"] if system else None})
    settle_parent(conn, parent_id)
    return parent_id


def accept_server_action(conn: Connection, ident: Identity, server_id: str, action: str, *,
                         hard: bool = False) -> str:
    """A native single-server ``os-start`` / ``os-stop`` / ``reboot``: a batch of one (same gate, same jobs)."""
    if action not in ("os-start", "os-stop", "reboot"):
        raise invalid(f"unknown action {action}")
    return accept_batch(conn, ident, action, [server_id], hard=hard)


def set_locked(conn: Connection, ident: Identity, server_id: str, locked: bool) -> None:
    """Native ``lock`` / ``unlock``: one update; a locked ECS refuses every mutating operation (Ecs.0605).

    Locking does not touch a job already running on the ECS; it only refuses new operations.
    """
    server = srv.load(conn, ident.project_id, server_id)          # 404 Ecs.0114
    conn.execute(servers.update().where(and_(servers.c.id == server["id"], servers.c.deleted.is_(False)))
                 .values(locked=locked, updated_at=clock.now()))
    actions.record(conn, ident, server["id"], actions.LOCK if locked else actions.UNLOCK)



# --- steps ---------------------------------------------------------------------------------------------

async def start_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.start(ctx.server_id, ctx.params["system_volume"]), "Ecs.0226")


def start_record(conn: Connection, ctx: JobContext) -> None:
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.ACTIVE, power_state=st.POWER_RUNNING,
                     launched_at=clock.now())


async def stop_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.stop(ctx.server_id, ctx.params["hard"]), "Ecs.1002")


def stop_record(conn: Connection, ctx: JobContext) -> None:
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.STOPPED, power_state=st.POWER_SHUTDOWN)


async def reboot_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.reboot(ctx.server_id, ctx.params["hard"]), "Ecs.0227")


def reboot_record(conn: Connection, ctx: JobContext) -> None:
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, power_state=st.POWER_RUNNING)


def power_failed(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    """A failed start/stop/reboot leaves the server in the state it was in, with the task cleared."""
    srv.finish_owned(conn, ctx.server_id, ctx.job_id)


async def delete_act(ctx: JobContext) -> None:
    if ctx.params["running"]:
        await driver_call(ctx.driver.stop(ctx.server_id, True), "Ecs.0501")
    await driver_call(ctx.driver.destroy(ctx.server_id), "Ecs.0501")


async def delete_disks_act(ctx: JobContext) -> None:
    for vid in ctx.params.get("delete_ids", []):
        await driver_call(ctx.driver.delete_disk(vid), "Ecs.0402")


def delete_record(conn: Connection, ctx: JobContext) -> None:
    # Shared disks are never deleted with a server: it only leaves them (domain/attachments.py).
    attached = [v for v in srv.attached_volumes(conn, [ctx.server_id])[ctx.server_id] if not v["multiattach"]]
    doomed = [v["id"] for v in attached if v["boot_index"] == 0 or ctx.params["delete_volume"]]
    attachments.drop_server_attachments(conn, ctx.server_id)
    conn.execute(volumes.update().where(and_(volumes.c.server_id == ctx.server_id, volumes.c.id.not_in(doomed)))
                 .values(server_id=None, device=None, status="available"))
    conn.execute(volumes.update().where(volumes.c.id.in_(doomed)).values(server_id=None, status="deleting"))
    ctx.params["delete_ids"] = doomed
    conn.execute(jobs.update().where(jobs.c.job_id == ctx.job_id).values(params=_json(ctx.params)))


def purge_record(conn: Connection, ctx: JobContext) -> None:
    conn.execute(volumes.delete().where(volumes.c.id.in_(ctx.params.get("delete_ids", []))))
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.DELETED, power_state=st.POWER_NOSTATE,
                     deleted=True, user_data=None)     # a deleted server keeps no guest secret
    srv.release_server(conn, ctx.project_id, ctx.server_id)   # its quota is free once the delete has finished
    server_groups.leave(conn, ctx.server_id)
    tags.forget_server(conn, ctx.server_id)


def delete_failed(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    srv.fail_owned(conn, ctx.server_id, ctx.job_id, ctx.job_type, code, reason)


JOB_TYPES = [
    JobType(st.START_SINGLE_SERVER, (Step("start", start_act, start_record, "Ecs.0226"),), on_fail=power_failed),
    JobType(st.STOP_SINGLE_SERVER, (Step("stop", stop_act, stop_record, "Ecs.1002"),), on_fail=power_failed),
    JobType(st.REBOOT_SINGLE_SERVER, (Step("reboot", reboot_act, reboot_record, "Ecs.0227"),),
            on_fail=power_failed),
    JobType(st.DELETE_SINGLE_SERVER, (
        Step("destroy", delete_act, delete_record, "Ecs.0501"),
        Step("delete_disks", delete_disks_act, purge_record, "Ecs.0402"),
    ), on_fail=delete_failed),
]
