"""EVS disks and the discarded Nova os-volumes over HTTP (the rules live in ``domain/volumes.py``).

    POST   /v2.1/{project_id}/cloudvolumes                  create (job createVolume) -> 202 {job_id, volume_ids}
    GET    /v2/{project_id}/cloudvolumes/detail             list (limit, offset, marker, filters) -> 200
    GET    /v2/{project_id}/cloudvolumes/{volume_id}        show -> 200 {volume}
    PUT    /v2/{project_id}/cloudvolumes/{volume_id}        update name, description, metadata -> 200
    DELETE /v2/{project_id}/cloudvolumes/{volume_id}        delete (job deleteVolume) -> 202 {job_id}
    POST   /v2.1/{project_id}/os-volumes                    creating_a_disk_discarded.rst -> 200 {volume}
    GET    /v2.1/{project_id}/os-volumes                    querying_brief_information_about_disks_discarded.rst
    GET    /v2.1/{project_id}/os-volumes/detail             querying_detailed_information_about_disks_discarded.rst
    GET    /v2.1/{project_id}/os-volumes/{volume_id}        querying_information_about_a_disk_discarded.rst
    DELETE /v2.1/{project_id}/os-volumes/{volume_id}        deleting_a_disk_discarded.rst -> 202

The EVS paths, bodies and answers are huaweicloudsdkevs v2's (``EvsClient``: ``CreateVolumeRequestBody``,
``ListVolumesResponse``, ``VolumeDetail``, ``UpdateVolumeResponse``, ...); the Nova pages are under
out-of-date_apis/disk_management_openstack_nova_apis/ of the reference. Refusals carry EVS codes.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import clock
from ecsd.domain import volumes as vol
from ecsd.domain.errors import EcsError, invalid_model
from ecsd.domain.lifecycle import AVAILABILITY_ZONES
from ecsd.http.core import Ctx, Param, endpoint, json, query_int, read_json
from ecsd.http.server_views import HOST

_STRICT = ConfigDict(extra="forbid", strict=True)
M = TypeVar("M", bound=BaseModel)
Metadata = dict[str, str]


class BssParam(BaseModel):
    model_config = _STRICT
    chargingMode: Literal["postPaid"] | None = None
    isAutoPay: str | None = None
    isAutoRenew: str | None = None
    periodNum: int | None = None
    periodType: str | None = None


class CreateVolumeOption(BaseModel):
    model_config = _STRICT
    availability_zone: str | None = None
    size: int | None = None
    volume_type: str
    name: str = ""
    description: str = ""
    metadata: Metadata = Field(default_factory=dict)
    multiattach: bool = False
    imageRef: str | None = None
    count: int = 1
    backup_id: str | None = None
    snapshot_id: str | None = None
    enterprise_project_id: Literal["0"] | None = None
    tags: Metadata | None = None
    iops: int | None = None
    throughput: int | None = None


class CreateVolumeBody(BaseModel):
    model_config = _STRICT
    volume: CreateVolumeOption
    bssParam: BssParam | None = None
    server_id: str | None = None
    scheduler_hints: dict[str, Any] | None = Field(default=None, alias="OS-SCH-HNT:scheduler_hints")


class UpdateVolumeOption(BaseModel):
    model_config = _STRICT
    name: str | None = None
    description: str | None = None
    metadata: Metadata | None = None


class UpdateVolumeBody(BaseModel):
    model_config = _STRICT
    volume: UpdateVolumeOption


class NovaVolumeOption(BaseModel):
    model_config = _STRICT
    availability_zone: str | None = None
    size: int
    volume_type: str | None = None
    display_name: str | None = None
    display_description: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    snapshot_id: str | None = None
    imageRef: str | None = None


class NovaCreateVolumeBody(BaseModel):
    model_config = _STRICT
    volume: NovaVolumeOption


DEFAULT_NOVA_VOLUME_TYPE = "SATA"


def _parse(model: type[M], data: Any) -> M:
    """Validate with a pydantic model; the first problem becomes EVS.5400 (malformed request body)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise EcsError("EVS.5400", invalid_model(exc).detail) from None


def _no_copy(snapshot_id: str | None, backup_id: str | None, image_ref: str | None) -> None:
    """Disks from snapshots and backups are not served (ecsd keeps neither): EVS.1016 / EVS.1006 / EVS.5400."""
    if sum(x is not None for x in (snapshot_id, backup_id, image_ref)) > 1:
        raise EcsError("EVS.1016")
    if backup_id is not None:
        raise EcsError("EVS.1006", "ecsd keeps no backups: creating a disk from a backup is not supported")
    if snapshot_id is not None:
        raise EcsError("EVS.5400", "ecsd keeps no snapshots: creating a disk from a snapshot is not supported")


def to_domain(body: CreateVolumeBody) -> vol.NewVolume:
    v = body.volume
    _no_copy(v.snapshot_id, v.backup_id, v.imageRef)
    if body.server_id is not None:
        raise EcsError("EVS.5400", "server_id (create and attach a yearly/monthly disk) is not supported: "
                                   "create the disk, then attach it")
    if v.tags is not None:
        raise EcsError("EVS.5400", "disk tags are not supported")
    if v.iops is not None or v.throughput is not None:
        raise EcsError("EVS.5400", "iops and throughput are for GPSSD2/ESSD2 disks, which are not offered")
    return vol.NewVolume(size=v.size, volume_type=v.volume_type, availability_zone=v.availability_zone,
                         name=v.name, description=v.description, metadata=v.metadata,
                         multiattach=v.multiattach, image_id=v.imageRef, count=v.count)


# --- views ---------------------------------------------------------------------------------------------------

def attachment_view(volume: dict[str, Any]) -> list[dict[str, Any]]:
    """EVS' ``Attachment``s of a disk (both sources: see domain/volumes.get_volume)."""
    return [{"attached_at": clock.iso_us(a["attached_at"]), "attachment_id": vol.attachment_id(volume["id"], a["server_id"]),
             "device": a["device"], "host_name": HOST, "id": volume["id"], "server_id": a["server_id"],
             "volume_id": volume["id"]} for a in volume["attachments"]]


def _links(base: str, kind: str, volume: dict[str, Any]) -> list[dict[str, str]]:
    return [{"href": f"{base}v2/{volume['project_id']}/{kind}/{volume['id']}", "rel": "self"},
            {"href": f"{base}{volume['project_id']}/{kind}/{volume['id']}", "rel": "bookmark"}]


def volume_view(volume: dict[str, Any], base: str) -> dict[str, Any]:
    """EVS' ``VolumeDetail`` (``base``: the service's URL with a trailing slash, for ``links``)."""
    shared = volume["multiattach"]
    image = volume["image_id"]
    return {
        "id": volume["id"], "links": _links(base, "cloudvolumes", volume), "name": volume["name"],
        "status": volume["status"], "attachments": attachment_view(volume),
        "availability_zone": volume["availability_zone"],
        "os-vol-host-attr:host": f"{HOST}#{volume['volume_type']}", "source_volid": None, "snapshot_id": None,
        "description": volume["description"], "created_at": clock.iso_us(volume["created_at"]),
        "os-vol-tenant-attr:tenant_id": volume["project_id"],
        "volume_image_metadata": {"image_id": image, "image_name": volume["image_name"]} if image else {},
        "volume_type": volume["volume_type"], "size": volume["size"], "consistencygroup_id": None,
        "bootable": "true" if image else "false", "metadata": volume["metadata"],
        "updated_at": clock.iso_us(volume["updated_at"] or volume["created_at"]), "encrypted": False,
        "replication_status": "disabled", "os-volume-replication:extended_status": None,
        "os-vol-mig-status-attr:migstat": None, "os-vol-mig-status-attr:name_id": None,
        "shareable": "true" if shared else "false", "multiattach": shared, "user_id": None, "service_type": "EVS",
        "dedicated_storage_id": None, "dedicated_storage_name": None, "tags": {},
        "wwn": "688860300" + volume["id"].replace("-", "")[:23], "enterprise_project_id": "0",
    }


def nova_view(volume: dict[str, Any]) -> dict[str, Any]:
    """The discarded Nova view (creating_a_disk_discarded.rst): camelCase, ``[{}]`` when not attached."""
    attachments = [{"device": a["device"], "id": volume["id"], "serverId": a["server_id"], "volumeId": volume["id"]}
                   for a in volume["attachments"]]
    return {"id": volume["id"], "displayName": volume["name"], "displayDescription": volume["description"],
            "status": volume["status"], "attachments": attachments or [{}],
            "availabilityZone": volume["availability_zone"], "createdAt": clock.iso_us(volume["created_at"]),
            "volumeType": volume["volume_type"], "snapshotId": None, "metadata": volume["metadata"],
            "size": volume["size"]}


# --- query parameters ------------------------------------------------------------------------------------------

def _int(request: Request, name: str, default: int, lo: int) -> int:
    """An integer query parameter (at least ``lo``); else EVS.5400, as EVS says it."""
    try:
        return query_int(request, name, default, lo, 2**31 - 1)
    except EcsError as exc:
        raise EcsError("EVS.5400", exc.detail, message="Malformed request url.") from None


def _filter(request: Request) -> vol.VolumeFilter:
    q = request.query_params
    limit = _int(request, "limit", vol.LIST_LIMIT_MAX, 1)
    if limit > vol.LIST_LIMIT_MAX:
        raise EcsError("EVS.2142")
    marker = q.get("marker") or None
    if marker is not None and not clock.is_uuid(marker):
        raise EcsError("EVS.1024", "marker must be a disk id")
    sort_key = q.get("sort_key") or "created_at"
    if sort_key not in vol.SORT_KEYS:
        raise EcsError("EVS.1039", f"sort_key must be one of {', '.join(vol.SORT_KEYS)}")
    sort_dir = q.get("sort_dir") or "desc"
    if sort_dir not in ("asc", "desc"):
        raise EcsError("EVS.1040", "sort_dir must be asc or desc")
    zone = q.get("availability_zone")
    if zone is not None and zone not in AVAILABILITY_ZONES:
        raise EcsError("EVS.1041", f"availability_zone must be one of {', '.join(AVAILABILITY_ZONES)}")
    multiattach = q.get("multiattach")
    if multiattach not in (None, "true", "false"):
        raise EcsError("EVS.5400", "multiattach must be true or false", message="Malformed request url.")
    return vol.VolumeFilter(
        name=q.get("name"), status=q.get("status"), availability_zone=zone,
        multiattach=None if multiattach is None else multiattach == "true", volume_id=q.get("id"),
        server_id=q.get("server_id"), sort_key=sort_key, sort_dir=sort_dir, limit=limit,
        offset=_int(request, "offset", 0, 0), marker=marker)


LIST_QUERY: dict[str, type | Param] = {
    "limit": int, "offset": int, "marker": str, "name": str, "status": str, "availability_zone": str,
    "multiattach": Param(str, description="true or false"), "id": str, "server_id": str,
    "sort_key": Param(str, description=", ".join(vol.SORT_KEYS)), "sort_dir": Param(str, description="asc or desc")}


# --- EVS ----------------------------------------------------------------------------------------------------------

def _base(request: Request) -> str:
    return str(request.base_url)


@endpoint(ok=202, body=CreateVolumeBody)
async def create_volume(request: Request, ctx: Ctx) -> Response:
    body = _parse(CreateVolumeBody, await read_json(request, ctx.services.settings.max_body_bytes))
    job_id, volume_ids = await ctx.services.store.run(vol.accept_create, ctx.ident, to_domain(body))
    ctx.services.submitted()
    return json({"job_id": job_id, "volume_ids": volume_ids}, 202)


@endpoint(ok=200, query=LIST_QUERY)
async def list_volumes(request: Request, ctx: Ctx) -> Response:
    f = _filter(request)
    found, count, more = await ctx.services.store.read(vol.list_volumes, ctx.ident.project_id, f)
    base = _base(request)
    links = []
    if more and found:
        query = {k: v for k, v in request.query_params.items() if k not in ("marker", "offset")}
        query.update(limit=str(f.limit), marker=found[-1]["id"])
        links.append({"href": f"{base}v2/{ctx.ident.project_id}/cloudvolumes/detail?{urlencode(query)}",
                      "rel": "next"})
    return json({"count": count, "volumes": [volume_view(v, base) for v in found], "volumes_links": links})


@endpoint(ok=200, errors=404)
async def show_volume(request: Request, ctx: Ctx) -> Response:
    volume = await ctx.services.store.read(vol.get_volume, ctx.ident.project_id, request.path_params["volume_id"])
    return json({"volume": volume_view(volume, _base(request))})


@endpoint(ok=200, body=UpdateVolumeBody, errors=404)
async def update_volume(request: Request, ctx: Ctx) -> Response:
    v = _parse(UpdateVolumeBody, await read_json(request, ctx.services.settings.max_body_bytes)).volume
    volume = await ctx.services.store.run(vol.update_volume, ctx.ident.project_id, request.path_params["volume_id"],
                                          v.name, v.description, v.metadata)
    return json(volume_view(volume, _base(request)))      # UpdateVolumeResponse: the fields at the top


@endpoint(ok=202, errors=404)
async def delete_volume(request: Request, ctx: Ctx) -> Response:
    job_id = await ctx.services.store.run(vol.accept_delete, ctx.ident.project_id, request.path_params["volume_id"])
    ctx.services.submitted()
    return json({"job_id": job_id}, 202)


# --- Nova os-volumes (discarded) ----------------------------------------------------------------------------------

@endpoint(ok=200, body=NovaCreateVolumeBody)
async def nova_create_volume(request: Request, ctx: Ctx) -> Response:
    v = _parse(NovaCreateVolumeBody, await read_json(request, ctx.services.settings.max_body_bytes)).volume
    _no_copy(v.snapshot_id, None, v.imageRef)
    req = vol.NewVolume(size=v.size, volume_type=v.volume_type or DEFAULT_NOVA_VOLUME_TYPE,
                        availability_zone=v.availability_zone, name=v.display_name or "",
                        description=v.display_description or "", metadata=v.metadata, image_id=v.imageRef)
    volume = await ctx.services.store.run(vol.accept_nova_create, ctx.ident, req)
    ctx.services.submitted()
    return json({"volume": nova_view(volume)})


async def _nova_list(request: Request, ctx: Ctx) -> Response:
    """Nova pages with limit (lowered to 1000) and offset; the brief and the detailed list are one view."""
    f = vol.VolumeFilter(limit=min(_int(request, "limit", vol.LIST_LIMIT_MAX, 0), vol.LIST_LIMIT_MAX),
                         offset=_int(request, "offset", 0, 0))
    found, _count, _more = await ctx.services.store.read(vol.list_volumes, ctx.ident.project_id, f)
    return json({"volumes": [nova_view(v) for v in found]})


@endpoint(ok=200, query={"limit": int, "offset": int})
async def nova_list_volumes(request: Request, ctx: Ctx) -> Response:
    return await _nova_list(request, ctx)


@endpoint(ok=200, query={"limit": int, "offset": int})
async def nova_list_volumes_detail(request: Request, ctx: Ctx) -> Response:
    return await _nova_list(request, ctx)


@endpoint(ok=200, errors=404)
async def nova_show_volume(request: Request, ctx: Ctx) -> Response:
    volume = await ctx.services.store.read(vol.get_volume, ctx.ident.project_id, request.path_params["volume_id"])
    return json({"volume": nova_view(volume)})


@endpoint(ok=202, errors=404, empty=202)
async def nova_delete_volume(request: Request, ctx: Ctx) -> Response:
    await ctx.services.store.run(vol.accept_delete, ctx.ident.project_id, request.path_params["volume_id"])
    ctx.services.submitted()
    return Response(status_code=202)


# Literal paths (detail) before the {volume_id} ones.
routes = [
    Route("/v2.1/{project_id}/cloudvolumes", create_volume, methods=["POST"]),
    Route("/v2/{project_id}/cloudvolumes/detail", list_volumes, methods=["GET"]),
    Route("/v2/{project_id}/cloudvolumes/{volume_id}", show_volume, methods=["GET"]),
    Route("/v2/{project_id}/cloudvolumes/{volume_id}", update_volume, methods=["PUT"]),
    Route("/v2/{project_id}/cloudvolumes/{volume_id}", delete_volume, methods=["DELETE"]),
    Route("/v2.1/{project_id}/os-volumes", nova_create_volume, methods=["POST"]),
    Route("/v2.1/{project_id}/os-volumes", nova_list_volumes, methods=["GET"]),
    Route("/v2.1/{project_id}/os-volumes/detail", nova_list_volumes_detail, methods=["GET"]),
    Route("/v2.1/{project_id}/os-volumes/{volume_id}", nova_show_volume, methods=["GET"]),
    Route("/v2.1/{project_id}/os-volumes/{volume_id}", nova_delete_volume, methods=["DELETE"]),
]
