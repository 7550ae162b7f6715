"""Resize (change a server's flavor), confirm and revert it; and which flavors a server may change to.

    POST /v1/{project_id}/cloudservers/{server_id}/resize         job resizeServer, ends ACTIVE / SHUTOFF
    POST /v1.1/{project_id}/cloudservers/{server_id}/resize       the same (the SDK's ResizeServer)
    POST /v2.1/{project_id}/servers/{server_id}/action resize     job resizeServer, ends VERIFY_RESIZE
                                                  confirmResize   at once: ACTIVE / SHUTOFF
                                                  revertResize    job revertResize, back to the old flavor
    GET  /v1/{project_id}/cloudservers/resize_flavors, /v2.1/{project_id}/resize_flavors

(apis_recommended/status_management/modifying_the_specifications_of_an_ecs.rst,
apis_recommended/flavor_management/querying_the_target_flavors_to_which_an_ecs_flavor_can_be_changed.rst,
native_openstack_nova_apis/status_management/ resize, confirm and roll back pages.)

Two halves, as in domain/changeos.py:

1. :func:`accept` and :func:`accept_revert` run in the request's transaction: server (Ecs.0114), lock
   (Ecs.0605), target flavor (``flavors.resize_refusal``: Ecs.0009 / 0029 / 0319 / 0804), state gate
   (Ecs.0100; a running server needs ``mode=withStopServer`` on the v1 API, Nova stops it itself),
   the host's memory for a running server that grows (Ecs.0319, ``capacity.check``: it is started
   again with the new flavor; a stopped one is checked when it is started), the quota charge of the
   flavor difference (Ecs.0001, ``quotas.charge_flavor_change``), the compare-and-set claim, the
   operation history and the job.
2. ``STEPS``, shared by both jobs: stop (a running server) -> set the flavor (driver, then
   ``servers.flavor_id``) -> start (if it was running). Each act is an idempotent driver call; each
   record commits with its checkpoint.

States: a stopped server shows RESIZE (stopped + resize_prep / resize_migrating / resize_finish) for
the whole job; a running one first shows ACTIVE while it stops (powering-off), as the status table
has no RESIZE row for a running server. The v1 resize ends in ACTIVE or SHUTOFF (the reference knows
no confirmation for it); Nova's in VERIFY_RESIZE (vm_state resized, ``old_flavor_id`` kept), which
``confirmResize`` ends at once and ``revertResize`` undoes with a job (REVERT_RESIZE while it runs).

A failed job leaves the server as its last checkpoint left the machine, never in ERROR: before the
flavor changed, in its previous state with the old flavor and the charged difference given back;
after, stopped with the new flavor (v1), or in VERIFY_RESIZE (Nova), so that it may be confirmed
or reverted. The job carries the error code and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import actions, capacity, clock, quotas
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.changeos import WITH_STOP_SERVER, driver_call
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.flavors import get_flavor, resize_flavors, resize_refusal
from ecsd.domain.identity import Identity
from ecsd.domain.lifecycle import AVAILABILITY_ZONES
from ecsd.engine.engine import JobContext, JobType, Step, submit
from ecsd.store.schema import flavors, images, servers


@dataclass(frozen=True)
class Resize:
    """A parsed resize request (shapes already checked by the HTTP layer)."""

    flavor_id: str
    mode: str | None = None      # v1: withStopServer lets a running server be resized
    nova: bool = False           # Nova's resize: ends in VERIFY_RESIZE, stops a running server itself


# --- 1. acceptance ------------------------------------------------------------------------------------

def _image_min_ram(conn: Connection, image_id: str) -> int:
    """The memory the server's image needs (0 when the image is gone: nothing left to check)."""
    return conn.execute(select(images.c.min_ram).where(images.c.id == image_id)).scalar() or 0


def _target(conn: Connection, server: dict[str, Any], flavor_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(current flavor, target flavor) of a resize, or the refusal of flavors.resize_refusal."""
    target = get_flavor(conn, flavor_id)
    if target is None:
        if flavor_id == server["flavor_id"]:
            raise EcsError("Ecs.0009", f"the ECS already has flavor {flavor_id}")
        raise EcsError("Ecs.0029", f"flavor {flavor_id} does not exist")
    source = get_flavor(conn, server["flavor_id"]) or {**target, "id": server["flavor_id"]}
    refusal = resize_refusal(source, target, (server["availability_zone"],),
                             _image_min_ram(conn, server["image_id"]))
    if refusal is not None:
        raise EcsError(*refusal)
    return source, target


def _job_params(conn: Connection, server: dict[str, Any], source: dict[str, Any], target: dict[str, Any],
                need_stop: bool, nova: bool) -> dict[str, Any]:
    system = srv.system_volume(conn, server["id"])
    return {"need_stop": need_stop, "nova": nova, "old_flavor": source["id"], "new_flavor": target["id"],
            "vcpus": target["vcpus"], "ram": target["ram"], "system_volume": system["id"] if system else None,
            "add_cores": target["vcpus"] - source["vcpus"], "add_ram": target["ram"] - source["ram"]}


def _charge(conn: Connection, project_id: str, params: dict[str, Any]) -> None:
    quotas.charge_flavor_change(conn, project_id, params["add_cores"], params["add_ram"])   # Ecs.0001


def accept(conn: Connection, ident: Identity, server_id: str, req: Resize) -> str:
    """Validate, charge, gate, claim and submit a resize in the caller's transaction; the job id."""
    server = srv.load(conn, ident.project_id, server_id)                       # 404 Ecs.0114
    if server["locked"]:
        raise EcsError("Ecs.0605")
    source, target = _target(conn, server, req.flavor_id)                      # Ecs.0009/0029/0319/0804
    srv.check_gate(server, st.RESIZE_SERVER)                                   # Ecs.0100
    need_stop = server["vm_state"] == st.ACTIVE
    if need_stop and not req.nova and req.mode != WITH_STOP_SERVER:
        raise EcsError("Ecs.0100", "the ECS is running: stop it first or pass mode=withStopServer")
    params = _job_params(conn, server, source, target, need_stop, req.nova)
    if need_stop:
        capacity.check(conn, params["add_ram"])                                # Ecs.0319
    _charge(conn, ident.project_id, params)
    job_id = clock.new_hex_id()
    srv.claim(conn, server, st.POWERING_OFF if need_stop else st.RESIZE_PREP, job_id)
    actions.record_job(conn, ident, server["id"], st.RESIZE_SERVER, job_id)
    submit(conn, job_id=job_id, project_id=ident.project_id, job_type=st.RESIZE_SERVER, server_id=server["id"],
           params=params)
    return job_id


def _resized(conn: Connection, ident: Identity, server_id: str, op: str) -> dict[str, Any]:
    """A server in VERIFY_RESIZE that ``op`` (confirm, revert) may take: Ecs.0114 / 0605 / 0100."""
    server = srv.load(conn, ident.project_id, server_id)
    srv.check_gate(server, op)
    return server


def confirm(conn: Connection, ident: Identity, server_id: str) -> None:
    """Nova's confirmResize: VERIFY_RESIZE -> ACTIVE (SHUTOFF if the server is stopped), at once."""
    server = _resized(conn, ident, server_id, st.CONFIRM_RESIZE)
    running = server["power_state"] == st.POWER_RUNNING
    done = conn.execute(servers.update().where(and_(
        servers.c.id == server["id"], servers.c.vm_state == st.RESIZED, servers.c.task_state.is_(None),
        servers.c.job_id.is_(None), servers.c.locked.is_(False))).values(
        vm_state=st.ACTIVE if running else st.STOPPED, old_flavor_id=None, updated_at=clock.now())).rowcount
    if done != 1:
        raise EcsError("Ecs.0100", f"server {server['id']} has another operation in progress")
    actions.record(conn, ident, server["id"], actions.CONFIRM_RESIZE)


def accept_revert(conn: Connection, ident: Identity, server_id: str) -> str:
    """Nova's revertResize: charge the way back, claim the server (REVERT_RESIZE), submit the job."""
    server = _resized(conn, ident, server_id, st.REVERT_RESIZE)
    old = get_flavor(conn, server["old_flavor_id"]) if server["old_flavor_id"] else None
    if old is None:
        raise EcsError("Ecs.0100", f"server {server['id']} keeps no flavor to return to")
    current = get_flavor(conn, server["flavor_id"]) or {**old, "vcpus": 0, "ram": 0}
    params = _job_params(conn, server, current, old, server["power_state"] == st.POWER_RUNNING, True)
    if params["need_stop"]:
        capacity.check(conn, params["add_ram"])                                # Ecs.0319
    _charge(conn, ident.project_id, params)
    job_id = clock.new_hex_id()
    srv.claim(conn, server, st.RESIZE_REVERTING, job_id)
    actions.record_job(conn, ident, server["id"], st.REVERT_RESIZE, job_id)
    submit(conn, job_id=job_id, project_id=ident.project_id, job_type=st.REVERT_RESIZE, server_id=server["id"],
           params=params)
    return job_id


def list_targets(conn: Connection, ident: Identity, *, instance_uuid: str | None, source_flavor_id: str | None,
                 source_flavor_name: str | None, **paging: Any) -> list[dict[str, Any]]:
    """The flavors a server (``instance_uuid``), or any server of a flavor (by id, else by name), may
    change to; the first of the three given decides. None given: Ecs.0005; an unknown server 404
    Ecs.0114; an unknown flavor Ecs.0029."""
    if instance_uuid is not None:
        server = srv.load(conn, ident.project_id, instance_uuid)
        source = get_flavor(conn, server["flavor_id"])
        zones: tuple[str, ...] = (server["availability_zone"],)
        min_ram = _image_min_ram(conn, server["image_id"])
    elif source_flavor_id is not None or source_flavor_name is not None:
        column = flavors.c.id if source_flavor_id is not None else flavors.c.name
        flavor_id = conn.execute(select(flavors.c.id).where(column == (source_flavor_id or source_flavor_name))
                                 .order_by(flavors.c.id).limit(1)).scalar()
        source = get_flavor(conn, flavor_id) if flavor_id is not None else None
        if source is None:
            raise EcsError("Ecs.0029", f"flavor {source_flavor_id or source_flavor_name} does not exist")
        zones, min_ram = AVAILABILITY_ZONES, 0
    else:
        raise invalid("one of instance_uuid, source_flavor_id and source_flavor_name is required")
    if source is None:
        return []        # the server's flavor left the catalogue: nothing to compare with
    return resize_flavors(conn, source, zones, min_ram, **paging)


# --- 2. the job's steps (resizeServer and revertResize) ----------------------------------------------------

def _reverting(ctx: JobContext) -> bool:
    return ctx.job_type == st.REVERT_RESIZE


async def stop_act(ctx: JobContext) -> None:
    if ctx.params["need_stop"]:
        await driver_call(ctx.driver.stop(ctx.server_id), "Ecs.1002")


def stop_record(conn: Connection, ctx: JobContext) -> None:
    if _reverting(ctx):     # still REVERT_RESIZE (resized + resize_reverting), now powered off
        srv.update_owned(conn, ctx.server_id, ctx.job_id, power_state=st.POWER_SHUTDOWN)
    else:                   # RESIZE from here on
        srv.update_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.STOPPED, power_state=st.POWER_SHUTDOWN,
                         task_state=st.RESIZE_MIGRATING)


async def set_flavor_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.set_flavor(ctx.server_id, ctx.params["vcpus"], ctx.params["ram"]), "Ecs.0207")


def set_flavor_record(conn: Connection, ctx: JobContext) -> None:
    p = ctx.params
    keep_old = p["nova"] and not _reverting(ctx)      # Nova's resize keeps the old flavor until confirmed
    values: dict[str, Any] = {"flavor_id": p["new_flavor"], "old_flavor_id": p["old_flavor"] if keep_old else None}
    if not _reverting(ctx):
        values["task_state"] = st.RESIZE_FINISH
    srv.update_owned(conn, ctx.server_id, ctx.job_id, **values)


async def start_act(ctx: JobContext) -> None:
    if ctx.params["need_stop"]:
        await driver_call(ctx.driver.start(ctx.server_id, ctx.params["system_volume"]), "Ecs.0226")


def _settled(running: bool) -> dict[str, Any]:
    return {"vm_state": st.ACTIVE if running else st.STOPPED,
            "power_state": st.POWER_RUNNING if running else st.POWER_SHUTDOWN}


def start_record(conn: Connection, ctx: JobContext) -> None:
    p = ctx.params
    values = _settled(p["need_stop"])
    if p["nova"] and not _reverting(ctx):
        values["vm_state"] = st.RESIZED                 # VERIFY_RESIZE, running or not as before
    if p["need_stop"]:
        values["launched_at"] = clock.now()
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, **values)


STEPS = (
    Step("stop", stop_act, stop_record, "Ecs.1002"),
    Step("set_flavor", set_flavor_act, set_flavor_record, "Ecs.0207"),
    Step("start", start_act, start_record, "Ecs.0226"),
)
_STOPPED, _FLAVOR_SET = 1, 2    # steps completed once the machine is off / the new flavor is recorded


def on_fail(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    """The server as the last checkpoint left it (see the module doc); the charge given back if the
    flavor never changed."""
    p = ctx.params
    if ctx.step < _FLAVOR_SET:
        quotas.refund_flavor_change(conn, ctx.project_id, p["add_cores"], p["add_ram"])
    values: dict[str, Any]
    if _reverting(ctx):
        values = {"vm_state": st.RESIZED} if ctx.step < _FLAVOR_SET else _settled(False)
    elif ctx.step >= _FLAVOR_SET and p["nova"]:
        values = {"vm_state": st.RESIZED}
    else:
        values = _settled(p["need_stop"] and ctx.step < _STOPPED)
    if ctx.step >= _STOPPED:
        values["power_state"] = st.POWER_SHUTDOWN
    elif "power_state" in values:
        del values["power_state"]                       # the stop failed: the machine is as it was
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, **values)


JOB_TYPES = [
    JobType(st.RESIZE_SERVER, STEPS, on_fail=on_fail),
    JobType(st.REVERT_RESIZE, STEPS, on_fail=on_fail),
]
