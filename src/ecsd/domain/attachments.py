"""Attaching and detaching disks: the rules at acceptance, and the job steps that do it.

    POST   /v1/{project_id}/cloudservers/{server_id}/attachvolume        disk_management/attaching_a_disk_to_an_ecs.rst
    DELETE /v1/{project_id}/cloudservers/{server_id}/detachvolume/{vid}  disk_management/detaching_an_evs_disk_from_an_ecs.rst
    POST   /v1/{project_id}/batchaction/attachvolumes/{volume_id}        batch_operations/attaching_a_specified_shared_...
    POST   /v2.1/{project_id}/servers/{server_id}/os-volume_attachments  (Nova, same functions)
    DELETE /v2.1/{project_id}/servers/{server_id}/os-volume_attachments/{volume_id}

Where an attachment lives: a disk that is not shared keeps its one attachment in ``volumes.server_id`` /
``device`` / ``boot_index``; a shared disk (``volumes.multiattach``) has one ``volume_attachments`` row per
server and ``volumes.server_id`` stays NULL. ``volumes.status`` is ``in-use`` while a disk has an attachment.

Acceptance (one transaction): server (404 Ecs.0114), gate (locked Ecs.0605; not ACTIVE/SHUTOFF, or
another operation, Ecs.0100: the job then holds ``servers.job_id`` with no task_state), disk checks,
then the server is claimed and the disk marked ``attaching`` / ``detaching`` with ``volumes.job_id``
(compare-and-set: of two requests for one disk exactly one is accepted). A batch attach of a shared
disk gives ``volumes.job_id`` the parent job, which releases the disk when its last sub-job ends.

Steps: one act (the driver's idempotent attach / detach) and one record (the attachment written, the
disk released, the server released). A failure settles the disk back and releases the server as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from ecsd.domain import actions, clock
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.changeos import driver_call
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.identity import Identity
from ecsd.domain.lifecycle import MAX_DATA_VOLUMES
from ecsd.engine.engine import JobContext, JobType, Step, submit
from ecsd.store.schema import jobs, volume_attachments, volumes

ROOT_DEVICE = "/dev/vda"
# Data disks take /dev/vdb .. /dev/vdx (23 of them, lifecycle.MAX_DATA_VOLUMES).
DATA_DEVICES = tuple(f"/dev/vd{chr(c)}" for c in range(ord("b"), ord("b") + MAX_DATA_VOLUMES))
_DEVICE = re.compile(r"/dev/(?:vd|sd|xvd)([a-z])")
MAX_BATCH = 100


@dataclass(frozen=True)
class Attach:
    """A parsed attach request (shapes already checked by the HTTP layer)."""

    volume_id: str
    device: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Accepted:
    job_id: str | None          # None for a dry run
    device: str


# --- reads -------------------------------------------------------------------------------------------------

def _volume(conn: Connection, project_id: str, volume_id: str) -> dict[str, Any] | None:
    """The project's disk, or None (unknown, malformed or foreign alike)."""
    if not clock.is_uuid(volume_id):
        return None
    row = conn.execute(select(volumes).where(and_(volumes.c.id == volume_id,
                                                  volumes.c.project_id == project_id))).first()
    return dict(row._mapping) if row is not None else None


def _devices(conn: Connection, server_id: str) -> dict[str, str]:
    """device -> volume id of every disk attached to the server (shared ones included)."""
    own = conn.execute(select(volumes.c.device, volumes.c.id).where(volumes.c.server_id == server_id)).all()
    shared = conn.execute(select(volume_attachments.c.device, volume_attachments.c.volume_id)
                          .where(volume_attachments.c.server_id == server_id)).all()
    return {d: v for d, v in (*own, *shared) if d is not None}


def _shared_attachment(conn: Connection, volume_id: str, server_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(volume_attachments).where(and_(volume_attachments.c.volume_id == volume_id,
                                                             volume_attachments.c.server_id == server_id))).first()
    return dict(row._mapping) if row is not None else None


def choose_device(taken: dict[str, str], requested: str | None, has_system_disk: bool) -> tuple[str, bool]:
    """(device, is the system disk). The requested one if valid and free, /dev/sdX read as /dev/vdX (KVM:
    attaching_a_disk_to_an_ecs.rst); else the first free data device. /dev/vda only to a server that has
    no system disk (it then becomes the system disk). Invalid or taken: Ecs.0005; none free: Ecs.0104."""
    if requested is not None:
        m = _DEVICE.fullmatch(requested)
        device = f"/dev/vd{m.group(1)}" if m else None
        if device is None or (device != ROOT_DEVICE and device not in DATA_DEVICES):
            raise invalid(f"device {requested} is not a disk device name from /dev/vdb to /dev/vdx")
        if device == ROOT_DEVICE and has_system_disk:
            raise invalid("device /dev/vda is the system disk of this ECS")
        if device in taken:
            raise invalid(f"device {requested} is already used by disk {taken[device]}")
        return device, device == ROOT_DEVICE
    for device in DATA_DEVICES:
        if device not in taken:
            return device, False
    raise EcsError("Ecs.0104", f"at most {MAX_DATA_VOLUMES} data disks can be attached")


# --- acceptance ------------------------------------------------------------------------------------------

def _check_attachable(conn: Connection, server: dict[str, Any], volume: dict[str, Any] | None,
                      requested: str | None) -> tuple[str, bool]:
    """Every rule for attaching ``volume`` to ``server`` (already gated); returns (device, system)."""
    if volume is None:
        raise EcsError("Ecs.0103", "the disk does not exist")
    if volume["availability_zone"] not in (None, server["availability_zone"]):
        raise EcsError("Ecs.0121", f"the disk is in {volume['availability_zone']}, "
                                   f"the ECS in {server['availability_zone']}")
    if volume["multiattach"]:
        if _shared_attachment(conn, volume["id"], server["id"]) is not None:
            raise EcsError("Ecs.0057")
        ok = volume["status"] in (st.VOLUME_AVAILABLE, st.VOLUME_IN_USE)
    else:
        if volume["server_id"] == server["id"]:
            raise EcsError("Ecs.0057")
        ok = volume["status"] == st.VOLUME_AVAILABLE
    if not ok or volume["job_id"] is not None:
        raise EcsError("Ecs.0103", f"the disk is {volume['status']}"
                                   + (" with an operation in progress" if volume["job_id"] else ""))
    taken = _devices(conn, server["id"])
    has_system = srv.system_volume(conn, server["id"]) is not None
    if sum(1 for d in taken if d != ROOT_DEVICE) >= MAX_DATA_VOLUMES:
        raise EcsError("Ecs.0104", f"at most {MAX_DATA_VOLUMES} data disks can be attached")
    device, system = choose_device(taken, requested, has_system)
    if system and volume["multiattach"]:
        raise invalid("a shared disk cannot be the system disk")
    return device, system


def _take_volume(conn: Connection, volume: dict[str, Any], owner: str, status: str, allowed: tuple[str, ...],
                 code: str) -> None:
    """Compare-and-set: the disk is ``status`` for job ``owner`` if nobody took it since it was read."""
    matched = conn.execute(volumes.update().where(and_(
        volumes.c.id == volume["id"], volumes.c.job_id.is_(None), volumes.c.status.in_(allowed)))
        .values(status=status, job_id=owner, updated_at=clock.now())).rowcount
    if matched != 1:
        raise EcsError(code, f"disk {volume['id']} has another operation in progress")


def _submit_attach(conn: Connection, ident: Identity, server: dict[str, Any], volume: dict[str, Any],
                   device: str, system: bool, job_id: str, parent_id: str | None = None) -> None:
    srv.claim(conn, server, None, job_id)                                       # Ecs.0100 if it changed
    actions.record_job(conn, ident, server["id"], st.ATTACH_VOLUME, job_id)
    submit(conn, job_id=job_id, project_id=ident.project_id, job_type=st.ATTACH_VOLUME, server_id=server["id"],
           parent_id=parent_id, params={"volume_id": volume["id"], "device": device, "system": system,
                                        "shared": bool(volume["multiattach"])})


def accept_attach(conn: Connection, ident: Identity, server_id: str, req: Attach) -> Accepted:
    """Attach a disk: 404 Ecs.0114; Ecs.0605 / Ecs.0100 (gate); Ecs.0103 (unknown, not available, in an
    operation); Ecs.0057 (already attached here); Ecs.0121 (another AZ); Ecs.0104 (no device left);
    Ecs.0005 (device invalid or taken). Returns the job id (None for a dry run) and the device."""
    server = srv.load(conn, ident.project_id, server_id)
    srv.check_gate(server, st.ATTACH_VOLUME)
    volume = _volume(conn, ident.project_id, req.volume_id)
    device, system = _check_attachable(conn, server, volume, req.device)
    assert volume is not None
    if req.dry_run:
        return Accepted(None, device)
    job_id = clock.new_hex_id()
    _take_volume(conn, volume, job_id, st.VOLUME_ATTACHING, (st.VOLUME_AVAILABLE, st.VOLUME_IN_USE), "Ecs.0103")
    _submit_attach(conn, ident, server, volume, device, system, job_id)
    return Accepted(job_id, device)


def accept_batch_attach(conn: Connection, ident: Identity, volume_id: str,
                        targets: list[tuple[str, str | None]]) -> str:
    """Attach one shared disk to several servers ((server id, device or None) each), all or nothing: a
    parent job with one attachVolume sub-job per server. The disk must be shared (Ecs.0103 otherwise)."""
    if not targets:
        raise invalid("serverinfo must name at least one ECS")
    if len(targets) > MAX_BATCH:
        raise EcsError("Ecs.0118", f"at most {MAX_BATCH} ECSs can be handled in one request")
    ids = [sid for sid, _dev in targets]
    if len(set(ids)) != len(ids):
        raise invalid("serverinfo must not name the same ECS twice")
    volume = _volume(conn, ident.project_id, volume_id)
    if volume is not None and not volume["multiattach"]:
        raise EcsError("Ecs.0103", f"disk {volume_id} is not a shared disk")
    servers = srv.load_many(conn, ident.project_id, ids)                      # Ecs.0114
    chosen = []
    for server, (_sid, device) in zip(servers, targets, strict=True):
        srv.check_gate(server, st.ATTACH_VOLUME)
        chosen.append(_check_attachable(conn, server, volume, device))
    assert volume is not None
    parent_id = clock.new_hex_id()
    _take_volume(conn, volume, parent_id, st.VOLUME_ATTACHING, (st.VOLUME_AVAILABLE, st.VOLUME_IN_USE), "Ecs.0103")
    submit(conn, job_id=parent_id, project_id=ident.project_id, job_type=st.BATCH_ATTACH_VOLUME, server_id=None,
           runnable=False)
    for server, (device, system) in zip(servers, chosen, strict=True):
        _submit_attach(conn, ident, server, volume, device, system, clock.new_hex_id(), parent_id)
    return parent_id


def accept_detach(conn: Connection, ident: Identity, server_id: str, volume_id: str, force: bool = False) -> str:
    """Detach a disk: 404 Ecs.0114; Ecs.0605 / Ecs.0100 (gate); Ecs.0111 (not attached to this ECS);
    the system disk only from a stopped ECS (Ecs.0100); a disk in another operation Ecs.0101 (system
    disk) / Ecs.0102 (data disk). ``force`` (delete_flag=1) is recorded; the detach is the same."""
    server = srv.load(conn, ident.project_id, server_id)
    srv.check_gate(server, st.DETACH_VOLUME)
    volume = _volume(conn, ident.project_id, volume_id)
    shared = volume is not None and bool(volume["multiattach"])
    if volume is None or (shared and _shared_attachment(conn, volume["id"], server["id"]) is None) \
            or (not shared and volume["server_id"] != server["id"]):
        raise EcsError("Ecs.0111", f"disk {volume_id} is not attached to this ECS")
    system = volume["boot_index"] == 0
    if system and server["vm_state"] != st.STOPPED:
        raise EcsError("Ecs.0100", "the system disk can be detached only when the ECS is stopped")
    code = "Ecs.0101" if system else "Ecs.0102"
    job_id = clock.new_hex_id()
    _take_volume(conn, volume, job_id, st.VOLUME_DETACHING, (st.VOLUME_IN_USE,), code)
    srv.claim(conn, server, None, job_id)
    actions.record_job(conn, ident, server["id"], st.DETACH_VOLUME, job_id)
    submit(conn, job_id=job_id, project_id=ident.project_id, job_type=st.DETACH_VOLUME, server_id=server["id"],
           params={"volume_id": volume["id"], "shared": shared, "system": system, "force": force,
                   "device": volume["device"]})
    return job_id


# --- settling a disk ---------------------------------------------------------------------------------------

def _has_attachments(volume_id: str):
    return select(volume_attachments.c.volume_id).where(volume_attachments.c.volume_id == volume_id).exists()


def _release_volume(conn: Connection, volume_id: str, owner: str, parent_id: str | None) -> None:
    """The job ``owner`` is done with the disk: it becomes in-use if it has an attachment, else available.
    A batch's disk (owned by the parent) is released by the last sub-job to end: the disk row is locked
    first, so that sub-jobs ending at once see each other's final status."""
    holder = parent_id or owner
    conn.execute(select(volumes.c.id).where(volumes.c.id == volume_id).with_for_update())
    if parent_id is not None:
        running = conn.execute(select(func.count()).select_from(jobs).where(and_(
            jobs.c.parent_id == parent_id, jobs.c.job_id != owner, jobs.c.status.in_(st.JOB_IN_FLIGHT)))).scalar()
        if running:
            return
    status = st.VOLUME_IN_USE if _attached_anywhere(conn, volume_id) else st.VOLUME_AVAILABLE
    conn.execute(volumes.update().where(and_(volumes.c.id == volume_id, volumes.c.job_id == holder)).values(
        status=status, job_id=None, updated_at=clock.now()))


def _attached_anywhere(conn: Connection, volume_id: str) -> bool:
    own = conn.execute(select(volumes.c.server_id).where(volumes.c.id == volume_id)).scalar()
    return own is not None or conn.execute(select(_has_attachments(volume_id))).scalar()


def drop_server_attachments(conn: Connection, server_id: str) -> None:
    """A deleted server leaves its shared disks: their rows go, and a disk left with none (and in no other
    operation) becomes available. The shared disks themselves are kept."""
    ids = [r[0] for r in conn.execute(select(volume_attachments.c.volume_id)
                                      .where(volume_attachments.c.server_id == server_id))]
    if not ids:
        return
    conn.execute(volume_attachments.delete().where(volume_attachments.c.server_id == server_id))
    for vid in ids:
        if not _attached_anywhere(conn, vid):
            conn.execute(volumes.update().where(and_(volumes.c.id == vid, volumes.c.job_id.is_(None)))
                         .values(status=st.VOLUME_AVAILABLE, updated_at=clock.now()))


def settle_orphan_volumes(conn: Connection) -> int:
    """After a crash: disks whose job is no longer in flight (a job failed by MAX_ATTEMPTS, a database edited
    by hand) are settled as states.AFTER_CRASH_ORPHAN_VOLUME says; attaching / detaching disks follow their
    attachments (in-use if they have one). Returns how many were settled. For domain/recovery.py."""
    # Only disks a job names in volumes.job_id: the disks of a server create or change OS are "creating" or
    # "deleting" with no job_id, and belong to that server's job (which resumes).
    live = select(jobs.c.job_id).where(and_(jobs.c.job_id == volumes.c.job_id, jobs.c.status.in_(st.JOB_IN_FLIGHT)))
    rows = conn.execute(select(volumes.c.id, volumes.c.status).where(and_(
        volumes.c.job_id.is_not(None), ~live.exists()))).all()
    for r in rows:
        status = st.AFTER_CRASH_ORPHAN_VOLUME.get(r.status, r.status)
        if r.status in (st.VOLUME_ATTACHING, st.VOLUME_DETACHING):
            status = st.VOLUME_IN_USE if _attached_anywhere(conn, r.id) else st.VOLUME_AVAILABLE
        conn.execute(volumes.update().where(volumes.c.id == r.id).values(status=status, job_id=None,
                                                                          updated_at=clock.now()))
    return len(rows)


# --- steps -------------------------------------------------------------------------------------------------

async def attach_act(ctx: JobContext) -> None:
    p = ctx.params
    await driver_call(ctx.driver.attach(ctx.server_id, p["volume_id"], p["device"]), "Ecs.0205")


def attach_record(conn: Connection, ctx: JobContext) -> None:
    p = ctx.params
    now = clock.now()
    if p["shared"]:
        if _shared_attachment(conn, p["volume_id"], ctx.server_id) is None:
            conn.execute(volume_attachments.insert().values(volume_id=p["volume_id"], server_id=ctx.server_id,
                                                            device=p["device"], status=st.VOLUME_IN_USE,
                                                            created_at=now))
    else:
        conn.execute(volumes.update().where(volumes.c.id == p["volume_id"]).values(
            server_id=ctx.server_id, device=p["device"], boot_index=0 if p["system"] else None, updated_at=now))
    _release_volume(conn, p["volume_id"], ctx.job_id, ctx.parent_id)
    srv.finish_owned(conn, ctx.server_id, ctx.job_id)


async def detach_act(ctx: JobContext) -> None:
    p = ctx.params
    await driver_call(ctx.driver.detach(ctx.server_id, p["volume_id"]), "Ecs.0101" if p["system"] else "Ecs.0102")


def detach_record(conn: Connection, ctx: JobContext) -> None:
    p = ctx.params
    if p["shared"]:
        conn.execute(volume_attachments.delete().where(and_(volume_attachments.c.volume_id == p["volume_id"],
                                                            volume_attachments.c.server_id == ctx.server_id)))
    else:
        conn.execute(volumes.update().where(and_(volumes.c.id == p["volume_id"],
                                                 volumes.c.server_id == ctx.server_id))
                     .values(server_id=None, device=None, boot_index=None))
    _release_volume(conn, p["volume_id"], ctx.job_id, ctx.parent_id)
    srv.finish_owned(conn, ctx.server_id, ctx.job_id)


def on_fail(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    """The disk goes back to what its attachments say (attaching -> available, detaching -> in-use, a
    shared disk in-use while it has others); the server is released as it was (not ERROR)."""
    _release_volume(conn, ctx.params["volume_id"], ctx.job_id, ctx.parent_id)
    srv.finish_owned(conn, ctx.server_id, ctx.job_id)


JOB_TYPES = [
    JobType(st.ATTACH_VOLUME, (Step("attach", attach_act, attach_record, "Ecs.0205"),), on_fail=on_fail),
    JobType(st.DETACH_VOLUME, (Step("detach", detach_act, detach_record, "Ecs.0102"),), on_fail=on_fail),
]
