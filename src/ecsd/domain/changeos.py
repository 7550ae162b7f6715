"""Change OS and reinstall OS: where the product's central operation is implemented.

Two halves, read top to bottom:

1. :func:`accept` runs inside the request's transaction. It checks what the request means (server,
   lock, image, key pair, password, state), then takes the server with the compare-and-set gate and
   inserts the job: gate, lock and job are one atomic step. It returns the job id.
2. ``STEPS`` is what the job engine then runs, each step an idempotent driver act followed by a
   database record committed together with the step's checkpoint:

   stop (withStopServer) -> create the new system disk -> inject key/password/user data ->
   swap disks (detach old, attach new, server record now shows the new image) -> delete the old
   disk -> start.

   The old disk is deleted only after the new one is attached and recorded, so a crash at any
   moment leaves the server with exactly one system disk. A failure puts the server in ERROR (from
   which change/reinstall OS may be retried) and removes whichever disk is not attached.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam
from sqlalchemy.engine import Connection

from ecsd.domain import actions, capacity, clock, sealing
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.flavors import get_flavor
from ecsd.domain.identity import Identity, user_in_domain
from ecsd.domain.images import check_boot_image, check_fits, visible_image
from ecsd.domain.keypairs import find_keypair
from ecsd.drivers.base import DiskSource, DriverError, Injection
from ecsd.engine.engine import JobContext, JobType, Step, StepFailed, submit
from ecsd.store.schema import jobs, volumes

WITH_STOP_SERVER = "withStopServer"
# Images whose licence may be brought along (BYOL); others refuse BYOL with Ecs.0090 (G17).
BYOL_PLATFORMS = frozenset({"SUSE", "Red Hat", "Oracle Linux"})


@dataclass(frozen=True)
class OsChange:
    """A parsed change-OS or reinstall-OS request (shapes already checked by the HTTP layer)."""

    reinstall: bool
    cloud_init: bool              # the /v2 variant
    image_id: str | None          # None for reinstall: the server's current image
    keyname: str | None
    userid: str | None
    adminpass: str | None
    mode: str | None
    byol: bool
    user_data: str | None         # base64 as received (v2 only)
    encrypted: bool
    cmk_id: str | None
    # Nova's rebuild shows REBUILD from the start, also while a running server is being stopped.
    nova_rebuild: bool = False

    @property
    def job_type(self) -> str:
        return st.REINSTALL_OS if self.reinstall else st.CHANGE_OS


# --- password rules (same as create's adminPass) ------------------------------------------------------

_SPECIALS = set("!@$%^-_=+[{}]:,./?~#*")


def check_password(password: str, user_name: str | None, windows: bool) -> None:
    """8-26 characters, three of four classes, not containing the user name or its reverse: else Ecs.0011."""
    ok = 8 <= len(password) <= 26 and all(c.isascii() and (c.isalnum() or c in _SPECIALS) for c in password)
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                   any(c.isdigit() for c in password), any(c in _SPECIALS for c in password)))
    name = (user_name or ("administrator" if windows else "root")).lower()
    low = password.lower()
    if not ok or classes < 3 or name in low or name[::-1] in low:
        raise EcsError("Ecs.0011")


def decode_user_data(value: str) -> bytes:
    """Base64 user data, at most 32 KB before encoding (rule 8)."""
    if not re.fullmatch(r"[A-Za-z0-9+/\r\n]*={0,2}\s*", value):
        raise invalid("metadata.user_data must be base64-encoded")
    try:
        raw = base64.b64decode(value, validate=False)
    except (ValueError, TypeError):
        raise invalid("metadata.user_data must be base64-encoded") from None
    if len(raw) > 32 * 1024:
        raise invalid("metadata.user_data is larger than 32 KB before encoding")
    return raw


# --- 1. acceptance ------------------------------------------------------------------------------------

def accept(conn: Connection, ident: Identity, server_id: str, req: OsChange, driver: Any = None) -> str:
    """Validate, gate, lock and submit in the caller's transaction. Returns the job id. ``driver``:
    this host's compute driver, which must be able to boot the new image."""
    server = srv.load(conn, ident.project_id, server_id)                       # 404 Ecs.0114
    if server["locked"]:
        raise EcsError("Ecs.0605")

    image = check_boot_image(visible_image(conn, ident.project_id, req.image_id or server["image_id"]),
                             driver)                                            # Ecs.0031/0032/0007
    if image["hw_firmware_type"] != server["firmware"]:
        raise EcsError("Ecs.0007", f"the image boots with {image['hw_firmware_type'].upper()}, "
                                   f"the ECS with {server['firmware'].upper()}")
    check_fits(image, get_flavor(conn, server["flavor_id"]))                   # Ecs.0007
    if req.byol and image["platform"] not in BYOL_PLATFORMS:
        raise EcsError("Ecs.0090")

    public_key = None
    if req.keyname is not None and req.adminpass is not None:
        raise invalid("keyname and adminpass must not be given together")
    if req.keyname is not None:
        owner = req.userid or ident.user_id
        if owner != ident.user_id and not user_in_domain(conn, owner, ident.domain_id):
            raise invalid("userid is not a user of this account")
        keypair = find_keypair(conn, owner, req.keyname)
        if keypair is None:
            raise EcsError("Ecs.0314")
        public_key = keypair["public_key"]
    if req.adminpass is not None:
        check_password(req.adminpass, None, image["os_type"] == "Windows")

    # The state gate (spec digest §4.2): SHUTOFF; ACTIVE only with withStopServer; ERROR after a
    # failed change/reinstall; nothing while another operation runs.
    srv.check_gate(server, req.job_type)
    need_stop = server["vm_state"] == st.ACTIVE
    if need_stop and req.mode != WITH_STOP_SERVER:
        raise EcsError("Ecs.0100", "the ECS is running: stop it first or pass mode=withStopServer")

    old = srv.system_volume(conn, server["id"])
    if old is None:
        raise EcsError("Ecs.0105")
    if old["status"] != "in-use":
        raise EcsError("Ecs.0101")

    if server["power_state"] != st.POWER_RUNNING:
        capacity.check_start(conn, [server["id"]])     # the job ends by starting it: 400 Ecs.0319 when full
    job_id = clock.new_hex_id()
    srv.claim(conn, server, st.POWERING_OFF if need_stop and not req.nova_rebuild else st.REBUILDING, job_id)
    actions.record_job(conn, ident, server["id"], req.job_type, job_id)           # the operation history
    submit(conn, job_id=job_id, project_id=ident.project_id, job_type=req.job_type, server_id=server["id"],
           params={
               "need_stop": need_stop,
               "old_volume": old["id"], "new_volume": clock.new_uuid(),
               "size": max(old["size"], image["min_disk"]), "volume_type": old["volume_type"],
               "device": old["device"] or server["root_device_name"],
               "image": {k: image[k] for k in ("id", "name", "os_type", "os_bit", "imagetype", "platform",
                                               "disk_format", "min_disk", "virtual_env_type", "properties")},
               "key_name": req.keyname, "public_key": public_key,
               "admin_pass": sealing.seal(req.adminpass), "user_data": sealing.seal(req.user_data),   # at rest: sealed
               "byol": req.byol,
               "encrypted": req.encrypted, "cmk_id": req.cmk_id,
           })
    return job_id


# --- 2. the job's steps ---------------------------------------------------------------------------------

def _source(ctx: JobContext) -> DiskSource:
    image = ctx.params["image"]
    return DiskSource(image["id"], image["disk_format"], image["min_disk"], image["properties"])


async def driver_call(coro, code: str) -> None:
    """Await a driver operation; a DriverError fails the job with ``code``."""
    try:
        await coro
    except DriverError as exc:
        raise StepFailed(code, f"{EcsError(code).message} ({exc})") from exc


async def stop_act(ctx: JobContext) -> None:
    if ctx.params["need_stop"]:
        await driver_call(ctx.driver.stop(ctx.server_id), "Ecs.1002")


def stop_record(conn: Connection, ctx: JobContext) -> None:
    srv.update_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.STOPPED, power_state=st.POWER_SHUTDOWN,
                     task_state=st.REBUILDING)


async def create_disk_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.create_disk(ctx.params["new_volume"], _source(ctx), ctx.params["size"]), "Ecs.0202")


# The records' statements are built once (they run for every job; building them costs more than the query).
_INSERT_VOLUME = volumes.insert()
_DETACH_OLD = volumes.update().where(volumes.c.id == bindparam("vid")).values(
    server_id=None, boot_index=None, device=None, status="deleting")
_ATTACH_NEW = volumes.update().where(volumes.c.id == bindparam("vid")).values(
    server_id=bindparam("sid"), boot_index=0, device=bindparam("dev"), status="in-use")
_DELETE_UNATTACHED = volumes.delete().where(and_(volumes.c.id == bindparam("vid"), volumes.c.server_id.is_(None)))


def create_disk_record(conn: Connection, ctx: JobContext) -> None:
    p = ctx.params
    conn.execute(_INSERT_VOLUME, {"id": p["new_volume"], "project_id": ctx.project_id, "server_id": None,
                                  "image_id": p["image"]["id"], "size": p["size"], "volume_type": p["volume_type"],
                                  "boot_index": None, "device": None, "status": "available",
                                  "created_at": clock.now()})
    srv.update_owned(conn, ctx.server_id, ctx.job_id, task_state=st.REBUILD_BDM)


def injection(p: dict[str, Any]) -> Injection:
    """What a job's parameters say goes into a new system disk (its secrets unsealed just for the driver)."""
    user_data = sealing.unseal(p["user_data"])
    return Injection(public_keys=(p["public_key"],) if p["public_key"] else (),
                     admin_pass=sealing.unseal(p["admin_pass"]),
                     user_data=base64.b64decode(user_data) if user_data else None)


async def inject_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.inject(ctx.params["new_volume"], injection(ctx.params)), "Ecs.0202")


async def swap_act(ctx: JobContext) -> None:
    p = ctx.params
    await driver_call(ctx.driver.detach(ctx.server_id, p["old_volume"]), "Ecs.1002")
    await driver_call(ctx.driver.attach(ctx.server_id, p["new_volume"], p["device"]), "Ecs.1002")


def swap_record(conn: Connection, ctx: JobContext) -> None:
    p = ctx.params
    conn.execute(_DETACH_OLD, {"vid": p["old_volume"]})
    conn.execute(_ATTACH_NEW, {"vid": p["new_volume"], "sid": ctx.server_id, "dev": p["device"]})
    metadata = srv.metadata_from_image(srv.load_by_id(conn, ctx.server_id)["metadata"], p["image"])
    if p["byol"]:
        metadata["BYOL"] = "true"
    else:
        metadata.pop("BYOL", None)
    values: dict[str, Any] = {"image_id": p["image"]["id"], "key_name": p["key_name"], "metadata": metadata,
                              "task_state": st.REBUILD_SPAWNING}
    if p["user_data"] is not None:
        values["user_data"] = p["user_data"]      # sealed, as the server keeps it
    srv.update_owned(conn, ctx.server_id, ctx.job_id, **values)


async def delete_old_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.delete_disk(ctx.params["old_volume"]), "Ecs.0402")


def delete_old_record(conn: Connection, ctx: JobContext) -> None:
    conn.execute(_DELETE_UNATTACHED, {"vid": ctx.params["old_volume"]})


async def start_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.start(ctx.server_id, ctx.params["new_volume"]), "Ecs.0226")


def start_record(conn: Connection, ctx: JobContext) -> None:
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.ACTIVE, power_state=st.POWER_RUNNING,
                     failed_op=None, fault=None, launched_at=clock.now())
    scrub_secrets(conn, ctx.job_id, ctx.params)


STEPS = (
    Step("stop", stop_act, stop_record, "Ecs.1002"),
    Step("create_disk", create_disk_act, create_disk_record, "Ecs.0202"),
    Step("inject", inject_act, None, "Ecs.0202"),
    Step("swap_disk", swap_act, swap_record, "Ecs.1002"),
    Step("delete_old_disk", delete_old_act, delete_old_record, "Ecs.0402"),
    Step("start", start_act, start_record, "Ecs.0226"),
)
_SWAPPED = 4  # steps completed once the new disk is the attached system disk


def _orphan_volume(ctx: JobContext) -> str:
    """The disk that is not the server's system disk at this point: the new one before the swap, else the old."""
    return ctx.params["new_volume"] if ctx.step < _SWAPPED else ctx.params["old_volume"]


async def cleanup(ctx: JobContext) -> None:
    await ctx.driver.delete_disk(_orphan_volume(ctx))


def on_fail(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    conn.execute(_DELETE_UNATTACHED, {"vid": _orphan_volume(ctx)})
    srv.fail_owned(conn, ctx.server_id, ctx.job_id, ctx.job_type, code, reason)
    scrub_secrets(conn, ctx.job_id, ctx.params)


def scrub_secrets(conn: Connection, job_id: str, params: dict[str, Any]) -> None:
    """A finished job keeps no password or user data in its parameters (not even sealed; and
    SQLite's secure_delete zeroes the space the old text took, store/db.py)."""
    if params.get("admin_pass") is None and params.get("user_data") is None:
        return
    clean = {**params, "admin_pass": None, "user_data": None}
    conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(params=orjson.dumps(clean).decode()))


JOB_TYPES = [
    JobType(st.CHANGE_OS, STEPS, on_fail=on_fail, cleanup=cleanup),
    JobType(st.REINSTALL_OS, STEPS, on_fail=on_fail, cleanup=cleanup),
]
