"""EVS disks: create, list, show, update and delete a disk of ``volumes`` (http/volumes.py serves them).

Pages: the EVS API (``POST /v2.1/{project_id}/cloudvolumes``, ``GET /v2/{project_id}/cloudvolumes/detail``,
``GET|PUT|DELETE /v2/{project_id}/cloudvolumes/{volume_id}``, as huaweicloudsdkevs' ``EvsClient`` calls
them) and the discarded Nova os-volumes of the reference
(out-of-date_apis/disk_management_openstack_nova_apis/*.rst), which run on the same functions.

Two halves, as in domain/changeos.py:

1. Acceptance, in the request's transaction: :func:`accept_create` checks the request, inserts the
   disks in ``creating`` with their ``job_id`` and submits one ``createVolume`` job (several disks:
   a parent with one sub-job per disk); :func:`accept_delete` takes the disk with a compare-and-set
   (``available``/``error``/``error_deleting``, not attached, no job) into ``deleting``.
2. The jobs: ``create_disk`` (driver, then ``available``) and ``delete_disk`` (driver, then the row is
   gone). A failure leaves ``error`` / ``error_deleting``. ``volumes.job_id`` is set while a job acts
   on the disk, so that attach (domain/attachments.py) refuses a disk in a job.

A disk is visible to its project only (404 EVS.5404 otherwise). Disks made by a server create
(domain/lifecycle.py) are rows here too and list with their attachment. Errors are the EVS codes of
``error_catalogue.EVS`` in the ECS error body. EVS quotas are not enforced.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.domain.changeos import driver_call
from ecsd.domain.errors import EcsError
from ecsd.domain.identity import Identity
from ecsd.domain.images import visible_image
from ecsd.domain.lifecycle import AVAILABILITY_ZONES, VOLUME_TYPES
from ecsd.drivers.base import DiskSource
from ecsd.engine.engine import JobContext, JobType, Step, submit
from ecsd.store.schema import images, servers, volume_attachments, volumes

MIN_SIZE, MAX_SIZE = 10, 32768          # GB (CreateVolumeOption.size)
MAX_COUNT = 100                         # disks of one create (CreateVolumeOption.count)
NAME_MAX, DESCRIPTION_MAX = 64, 85      # characters (CreateVolumeOption)
METADATA_ITEM_MAX = 255                 # bytes of a metadata key or value
METADATA_MAX_BYTES = 1048576            # EVS.1005
LIST_LIMIT_MAX = 1000
SORT_KEYS = {"created_at": volumes.c.created_at, "id": volumes.c.id, "size": volumes.c.size,
             "status": volumes.c.status}    # ListVolumesRequest.sort_key
DELETABLE = (st.VOLUME_AVAILABLE, st.VOLUME_ERROR, st.VOLUME_ERROR_DELETING)
_ATTACHMENT_NS = uuid.UUID("6f1c3a52-3d1e-4d5e-9a57-0c2b8e1f4a11")


@dataclass(frozen=True)
class NewVolume:
    """A parsed create request (shapes already checked by the HTTP layer)."""

    size: int | None
    volume_type: str
    availability_zone: str | None
    name: str = ""
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    multiattach: bool = False
    image_id: str | None = None
    count: int = 1


@dataclass(frozen=True)
class VolumeFilter:
    """The query of a list (every field optional)."""

    name: str | None = None
    status: str | None = None
    availability_zone: str | None = None
    multiattach: bool | None = None
    volume_id: str | None = None
    server_id: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"
    limit: int = LIST_LIMIT_MAX
    offset: int = 0
    marker: str | None = None


# --- checks -----------------------------------------------------------------------------------------

def check_name(name: str) -> None:
    """At most 64 characters: else EVS.1003."""
    if len(name) > NAME_MAX:
        raise EcsError("EVS.1003", f"name is longer than {NAME_MAX} characters")


def check_description(description: str) -> None:
    """At most 85 characters, no angle brackets: else EVS.1004."""
    if len(description) > DESCRIPTION_MAX or "<" in description or ">" in description:
        raise EcsError("EVS.1004", f"description must have at most {DESCRIPTION_MAX} characters and no < or >")


def check_metadata(metadata: dict[str, str]) -> None:
    """Keys and values of at most 255 bytes (EVS.5400), 1 MiB in all (EVS.1005)."""
    for key, value in metadata.items():
        if not key or len(key.encode()) > METADATA_ITEM_MAX or len(value.encode()) > METADATA_ITEM_MAX:
            raise EcsError("EVS.5400", f"metadata keys (non-empty) and values must have at most "
                                       f"{METADATA_ITEM_MAX} bytes")
    if len(orjson.dumps(metadata)) > METADATA_MAX_BYTES:
        raise EcsError("EVS.1005")


def _check_create(conn: Connection, project_id: str, req: NewVolume) -> tuple[dict[str, Any] | None, int]:
    """The request's checks, in the order EVS applies them; returns (the source image or None, the size)."""
    if req.volume_type not in VOLUME_TYPES:
        raise EcsError("EVS.1020", f"volume_type must be one of {', '.join(VOLUME_TYPES)}")
    if req.availability_zone is None:
        raise EcsError("EVS.1036", "availability_zone is required")
    if req.availability_zone not in AVAILABILITY_ZONES:
        raise EcsError("EVS.1036", f"availability_zone must be one of {', '.join(AVAILABILITY_ZONES)}")
    if not 1 <= req.count <= MAX_COUNT:
        raise EcsError("EVS.1021", f"count must be between 1 and {MAX_COUNT}")
    check_name(req.name)
    check_description(req.description)
    check_metadata(req.metadata)
    image = None
    if req.image_id is not None:
        image = visible_image(conn, project_id, req.image_id) if clock.is_uuid(req.image_id) else None
        if image is None or image["status"] != "active":
            raise EcsError("EVS.5400", f"imageRef {req.image_id} is not an active image this project may use",
                           message="Invalid imageRef provided.")
    size = req.size
    if size is None and image is not None:
        size = max(image["min_disk"], MIN_SIZE)
    if size is None or not MIN_SIZE <= size <= MAX_SIZE:
        raise EcsError("EVS.1010", f"size must be between {MIN_SIZE} and {MAX_SIZE} GB")
    if image is not None and size < image["min_disk"]:
        raise EcsError("EVS.1010", f"size must be at least the image's min_disk ({image['min_disk']} GB)")
    return image, size


# --- 1. acceptance ----------------------------------------------------------------------------------------

def accept_create(conn: Connection, ident: Identity, req: NewVolume) -> tuple[str, list[str]]:
    """Check, insert the disks in ``creating`` and submit their job. Returns (job id, volume ids)."""
    image, size = _check_create(conn, ident.project_id, req)
    source = None if image is None else {
        "id": image["id"], "name": image["name"], "disk_format": image["disk_format"],
        "min_disk": image["min_disk"], "properties": image["properties"]}
    now = clock.now()
    job_id = clock.new_hex_id()
    parent = job_id if req.count > 1 else None     # several disks: a parent with one sub-job per disk
    volume_ids: list[str] = []
    for index in range(req.count):
        vid = clock.new_uuid()
        sub = clock.new_hex_id() if parent is not None else job_id
        name = req.name if req.count == 1 or not req.name else f"{req.name}-{index + 1:04d}"
        conn.execute(volumes.insert().values(
            id=vid, project_id=ident.project_id, server_id=None, image_id=source and source["id"], size=size,
            volume_type=req.volume_type, boot_index=None, device=None, status=st.VOLUME_CREATING,
            created_at=now, updated_at=now, name=name, description=req.description,
            multiattach=req.multiattach, metadata=orjson.dumps(req.metadata).decode(),
            availability_zone=req.availability_zone, job_id=sub))
        submit(conn, job_id=sub, project_id=ident.project_id, job_type=st.CREATE_VOLUME, server_id=None,
               parent_id=parent, params={"volume_id": vid, "size": size, "volume_type": req.volume_type,
                                         "name": name, "image": source})
        volume_ids.append(vid)
    if parent is not None:
        submit(conn, job_id=parent, project_id=ident.project_id, job_type=st.CREATE_VOLUME, server_id=None,
               params={"volume_ids": volume_ids}, runnable=False)
    return job_id, volume_ids


def accept_nova_create(conn: Connection, ident: Identity, req: NewVolume) -> dict[str, Any]:
    """Nova's create: one disk, answered at once in ``creating`` (its job finishes it)."""
    _job_id, (volume_id,) = accept_create(conn, ident, req)
    return get_volume(conn, ident.project_id, volume_id)


def accept_delete(conn: Connection, project_id: str, volume_id: str) -> str:
    """Take the disk into ``deleting`` and submit its job: 404 EVS.5404; EVS.1046 if it is attached,
    in a job or in a status other than available, error or error_deleting."""
    job_id = clock.new_hex_id()
    attached = exists().where(volume_attachments.c.volume_id == volumes.c.id)
    taken = conn.execute(volumes.update().where(and_(
        volumes.c.id == volume_id, volumes.c.project_id == project_id, volumes.c.status.in_(DELETABLE),
        volumes.c.job_id.is_(None), volumes.c.server_id.is_(None), ~attached)).values(
        status=st.VOLUME_DELETING, job_id=job_id, updated_at=clock.now())).rowcount
    if taken != 1:
        volume = get_volume(conn, project_id, volume_id)                       # 404 EVS.5404
        why = "it is attached to a server" if volume["attachments"] else (
            "an operation is in progress on it" if volume["job_id"] else f"its status is {volume['status']}")
        raise EcsError("EVS.1046", f"disk {volume_id} cannot be deleted: {why}")
    submit(conn, job_id=job_id, project_id=project_id, job_type=st.DELETE_VOLUME, server_id=None,
           params={"volume_id": volume_id})
    return job_id


def update_volume(conn: Connection, project_id: str, volume_id: str, name: str | None,
                  description: str | None, metadata: dict[str, str] | None) -> dict[str, Any]:
    """Rename, describe or replace the metadata of a disk (any status): EVS.1007 if nothing is given."""
    if name is None and description is None and metadata is None:
        raise EcsError("EVS.1007", "give name, description or metadata")
    values: dict[str, Any] = {"updated_at": clock.now()}
    if name is not None:
        check_name(name)
        values["name"] = name
    if description is not None:
        check_description(description)
        values["description"] = description
    if metadata is not None:
        check_metadata(metadata)
        values["metadata"] = orjson.dumps(metadata).decode()
    get_volume(conn, project_id, volume_id)                                    # 404 EVS.5404
    conn.execute(volumes.update().where(and_(volumes.c.id == volume_id, volumes.c.project_id == project_id))
                 .values(**values))
    return get_volume(conn, project_id, volume_id)


# --- reading --------------------------------------------------------------------------------------------------

_COLUMNS = (*volumes.c, func.coalesce(volumes.c.availability_zone, servers.c.availability_zone).label("az"),
            images.c.name.label("image_name"))
_FROM = volumes.outerjoin(servers, servers.c.id == volumes.c.server_id).outerjoin(
    images, images.c.id == volumes.c.image_id)


def _attachments(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each disk's attachments, from both sources: ``volumes.server_id`` (a disk that is not shared)
    and ``volume_attachments`` (a shared disk): dicts of server_id, device, status, attached_at."""
    for row in rows:
        row["attachments"] = ([{"server_id": row["server_id"], "device": row["device"], "status": row["status"],
                                "attached_at": row["updated_at"] or row["created_at"]}]
                              if row["server_id"] else [])
    shared = {r["id"]: r for r in rows if r["multiattach"]}
    if shared:
        for a in conn.execute(select(volume_attachments).where(volume_attachments.c.volume_id.in_(list(shared)))
                              .order_by(volume_attachments.c.created_at, volume_attachments.c.server_id)).mappings():
            vol = shared[a["volume_id"]]
            if any(x["server_id"] == a["server_id"] for x in vol["attachments"]):
                continue
            vol["attachments"].append({"server_id": a["server_id"], "device": a["device"], "status": a["status"],
                                       "attached_at": a["created_at"]})


def _load(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["metadata"] = orjson.loads(d["metadata"] or "{}")
        d["availability_zone"] = d.pop("az")
        out.append(d)
    _attachments(conn, out)
    return out


def attachment_id(volume_id: str, server_id: str) -> str:
    """A stable id for the attachment of a disk to a server (EVS' ``attachment_id``)."""
    return str(uuid.uuid5(_ATTACHMENT_NS, f"{volume_id}/{server_id}"))


def get_volume(conn: Connection, project_id: str, volume_id: str) -> dict[str, Any]:
    """The disk with its ``attachments``, or 404 EVS.5404 (unknown, or another project's)."""
    if not clock.is_uuid(volume_id):
        raise EcsError("EVS.5404", f"disk {volume_id} does not exist")
    row = conn.execute(select(*_COLUMNS).select_from(_FROM).where(
        and_(volumes.c.id == volume_id, volumes.c.project_id == project_id))).first()
    if row is None:
        raise EcsError("EVS.5404", f"disk {volume_id} does not exist")
    return _load(conn, [row])[0]


def _where(project_id: str, f: VolumeFilter) -> list[Any]:
    where: list[Any] = [volumes.c.project_id == project_id]
    if f.name is not None:
        where.append(volumes.c.name == f.name)
    if f.status is not None:
        where.append(volumes.c.status == f.status)
    if f.availability_zone is not None:
        where.append(func.coalesce(volumes.c.availability_zone, servers.c.availability_zone) == f.availability_zone)
    if f.multiattach is not None:
        where.append(volumes.c.multiattach == f.multiattach)
    if f.volume_id is not None:
        where.append(volumes.c.id == f.volume_id)
    if f.server_id is not None:
        where.append(or_(volumes.c.server_id == f.server_id, exists().where(and_(
            volume_attachments.c.volume_id == volumes.c.id, volume_attachments.c.server_id == f.server_id))))
    return where


def list_volumes(conn: Connection, project_id: str, f: VolumeFilter) -> tuple[list[dict[str, Any]], int, bool]:
    """(a page of the project's disks, how many match in all, whether more follow the page)."""
    where = _where(project_id, f)
    count = conn.execute(select(func.count()).select_from(_FROM).where(and_(*where))).scalar_one()
    col = SORT_KEYS[f.sort_key]
    desc = f.sort_dir == "desc"
    if f.marker is not None:
        mark = conn.execute(select(col, volumes.c.id).where(and_(volumes.c.id == f.marker,
                                                                 volumes.c.project_id == project_id))).first()
        if mark is None:
            raise EcsError("EVS.1024", f"marker {f.marker} is not a disk of this project")
        after = (or_(col < mark[0], and_(col == mark[0], volumes.c.id < mark[1])) if desc
                 else or_(col > mark[0], and_(col == mark[0], volumes.c.id > mark[1])))
        where.append(after)
    order = (col.desc(), volumes.c.id.desc()) if desc else (col.asc(), volumes.c.id.asc())
    rows = conn.execute(select(*_COLUMNS).select_from(_FROM).where(and_(*where)).order_by(*order)
                        .offset(f.offset).limit(f.limit + 1)).all()
    more = len(rows) > f.limit
    return _load(conn, rows[:f.limit]), count, more


# --- 2. the jobs -----------------------------------------------------------------------------------------------

def _settle(conn: Connection, ctx: JobContext, **values: Any) -> None:
    """Write the disk of this job and release it (only while this job holds it)."""
    conn.execute(volumes.update().where(and_(volumes.c.id == ctx.params["volume_id"],
                                             volumes.c.job_id == ctx.job_id))
                 .values(job_id=None, updated_at=clock.now(), **values))


async def create_act(ctx: JobContext) -> None:
    image = ctx.params["image"]
    source = None if image is None else DiskSource(image["id"], image["disk_format"], image["min_disk"],
                                                   image["properties"])
    await driver_call(ctx.driver.create_disk(ctx.params["volume_id"], source, ctx.params["size"]), "EVS.2024")


def create_record(conn: Connection, ctx: JobContext) -> None:
    _settle(conn, ctx, status=st.VOLUME_AVAILABLE)


def create_failed(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    _settle(conn, ctx, status=st.VOLUME_ERROR)


async def create_cleanup(ctx: JobContext) -> None:
    await ctx.driver.delete_disk(ctx.params["volume_id"])     # whatever half of it exists


async def delete_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.delete_disk(ctx.params["volume_id"]), "EVS.5500")


def delete_record(conn: Connection, ctx: JobContext) -> None:
    conn.execute(volumes.delete().where(and_(volumes.c.id == ctx.params["volume_id"],
                                             volumes.c.job_id == ctx.job_id)))


def delete_failed(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    _settle(conn, ctx, status=st.VOLUME_ERROR_DELETING)


JOB_TYPES = [
    JobType(st.CREATE_VOLUME, (Step("create_disk", create_act, create_record, "EVS.2024"),),
            on_fail=create_failed, cleanup=create_cleanup),
    JobType(st.DELETE_VOLUME, (Step("delete_disk", delete_act, delete_record, "EVS.5500"),),
            on_fail=delete_failed),
]
