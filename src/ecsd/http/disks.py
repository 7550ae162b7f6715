"""Disks of a server over HTTP: attach, detach, and the views of what is attached (domain/attachments.py).

    POST   /v1/{project_id}/cloudservers/{server_id}/attachvolume           attaching_a_disk_to_an_ecs.rst (job)
    DELETE /v1/{project_id}/cloudservers/{server_id}/detachvolume/{volume_id}   detaching_an_evs_disk_... (job)
    POST   /v1/{project_id}/batchaction/attachvolumes/{volume_id}           attaching_a_specified_shared_evs_disk_
                                                                            to_multiple_ecss.rst (parent job)
    GET    /v1/{project_id}/cloudservers/{server_id}/block_device           querying_information_about_disks_...
    GET    /v1/{project_id}/cloudservers/{server_id}/block_device/{volume_id}   querying_a_single_disk_attached_...
    GET    /v1/{project_id}/cloudservers/{server_id}/os-volume_attachments  querying_disk_attachments_of_an_ecs.rst
    GET    /v2.1/servers/{server_id}/block_device[/{volume_id}]             the two *_discarded.rst pages
    POST   /v2.1/{project_id}/servers/{server_id}/os-volume_attachments     Nova attaching_a_disk_to_an_ecs.rst
    GET    /v2.1/{project_id}/servers/{server_id}/os-volume_attachments[/{volume_id}]   Nova querying_*.rst
    DELETE /v2.1/{project_id}/servers/{server_id}/os-volume_attachments/{volume_id}  Nova detaching_a_disk_...

Handlers are named after the Huawei SDK operations (attach_server_volume, detach_server_volume,
batch_attach_sharable_volumes, list_server_block_devices, show_server_block_device,
list_server_volume_attachments). Nova's attach answers at once with the chosen device (the attach runs as a
job); Nova's detach answers 202 with no body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import attachments
from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError, invalid
from ecsd.http.core import Ctx, Param, endpoint, json, no_content, parse, read_json

_STRICT = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
_LAX = ConfigDict(extra="ignore", strict=True)     # Nova clients may send fields of later microversions


# A volume id: the canonical UUID form, either case (as domain/clock.py: is_uuid).
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class AttachOption(BaseModel):
    """``volumeAttachment`` of the v1 attach (SDK: AttachServerVolumeOption)."""

    model_config = _STRICT
    volumeId: str = Field(pattern=_UUID)
    device: str | None = Field(default=None, max_length=32)
    volume_type: str | None = Field(default=None, max_length=64)     # for a dry run without a disk: accepted
    count: int | None = Field(default=None, ge=1, le=23)
    hw_passthrough: str | None = Field(default=None, alias="hw:passthrough")

    @field_validator("hw_passthrough")
    @classmethod
    def _passthrough(cls, v: str | None) -> str | None:
        if v is not None and v not in ("true", "false"):
            raise ValueError('must be "true" or "false"')
        return v


class AttachBody(BaseModel):
    model_config = _STRICT
    volumeAttachment: AttachOption
    dry_run: bool = False


class NovaAttachOption(BaseModel):
    model_config = _LAX
    volumeId: str = Field(pattern=_UUID)
    device: str | None = Field(default=None, max_length=32)


class NovaAttachBody(BaseModel):
    model_config = _LAX
    volumeAttachment: NovaAttachOption


class ServerInfo(BaseModel):
    model_config = _STRICT
    server_id: str
    device: str | None = Field(default=None, max_length=32)


class BatchAttachBody(BaseModel):
    model_config = _STRICT
    serverinfo: list[ServerInfo] = Field(min_length=1, max_length=attachments.MAX_BATCH)


def _delete_flag(request: Request) -> bool:
    """delete_flag=1: a forced detach (the reference's meaning); 0 or absent: a normal one."""
    value = request.query_params.get("delete_flag", "0")
    if value not in ("0", "1"):
        raise invalid("delete_flag must be 0 or 1")
    return value == "1"


DELETE_FLAG = {"delete_flag": Param(int, description="1: forced detach (same effect here); default 0")}


# --- attach and detach -----------------------------------------------------------------------------------

@endpoint(ok=(200, 202), body=AttachBody, errors=404)     # 202: a dry run
async def attach_server_volume(request: Request, ctx: Ctx) -> Response:
    body = parse(AttachBody, await read_json(request, ctx.services.settings.max_body_bytes))
    opt = body.volumeAttachment
    req = attachments.Attach(opt.volumeId, opt.device, body.dry_run)
    accepted = await ctx.services.store.run(attachments.accept_attach, ctx.ident, request.path_params["server_id"],
                                            req)
    if accepted.job_id is None:
        return json({}, status=202)          # every check passed; nothing was changed
    ctx.services.submitted()
    return json({"job_id": accepted.job_id})


@endpoint(ok=200, query=DELETE_FLAG, errors=404)
async def detach_server_volume(request: Request, ctx: Ctx) -> Response:
    force = _delete_flag(request)
    job_id = await ctx.services.store.run(attachments.accept_detach, ctx.ident, request.path_params["server_id"],
                                          request.path_params["volume_id"], force)
    ctx.services.submitted()
    return json({"job_id": job_id})


@endpoint(ok=200, body=BatchAttachBody, errors=404)
async def batch_attach_sharable_volumes(request: Request, ctx: Ctx) -> Response:
    body = parse(BatchAttachBody, await read_json(request, ctx.services.settings.max_body_bytes))
    job_id = await ctx.services.store.run(attachments.accept_batch_attach, ctx.ident,
                                          request.path_params["volume_id"],
                                          [(i.server_id, i.device) for i in body.serverinfo])
    ctx.services.submitted()
    return json({"job_id": job_id})


@endpoint(ok=200, body=NovaAttachBody, errors=404)
async def nova_attach_server_volume(request: Request, ctx: Ctx) -> Response:
    opt = parse(NovaAttachBody, await read_json(request, ctx.services.settings.max_body_bytes)).volumeAttachment
    server_id = request.path_params["server_id"]
    accepted = await ctx.services.store.run(attachments.accept_attach, ctx.ident, server_id,
                                            attachments.Attach(opt.volumeId, opt.device))
    ctx.services.submitted()
    return json({"volumeAttachment": {"device": accepted.device, "serverId": server_id, "id": opt.volumeId,
                                      "volumeId": opt.volumeId}})


@endpoint(ok=202, empty=202, query=DELETE_FLAG, errors=404)
async def nova_detach_server_volume(request: Request, ctx: Ctx) -> Response:
    force = _delete_flag(request)
    await ctx.services.store.run(attachments.accept_detach, ctx.ident, request.path_params["server_id"],
                                 request.path_params["volume_id"], force)
    ctx.services.submitted()
    return no_content(202)


# --- what is attached ------------------------------------------------------------------------------------

async def _server_and_volumes(request: Request, ctx: Ctx):
    def run(conn):
        row = srv.load(conn, ctx.ident.project_id, request.path_params["server_id"])
        return row, srv.attached_volumes(conn, [row["id"]])[row["id"]]

    return await ctx.services.store.read(run)


def _block_device_views(row: dict[str, Any], vols: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"serverId": row["id"], "volumeId": v["id"], "id": v["id"], "size": v["size"], "device": v["device"],
             "pciAddress": f"0000:02:{i + 1:02x}.0",
             "bootIndex": v["boot_index"] if v["boot_index"] is not None else -1, "bus": "virtio"}
            for i, v in enumerate(vols)]


@endpoint(ok=200, errors=404)
async def list_server_block_devices(request: Request, ctx: Ctx) -> Response:
    row, vols = await _server_and_volumes(request, ctx)
    free = max(0, attachments.MAX_DATA_VOLUMES + 1 - len(vols))
    return json({"volumeAttachments": _block_device_views(row, vols),
                 "attachableQuantity": {"free_scsi": 59, "free_blk": free, "free_disk": free}})


@endpoint(ok=200, errors=404)
async def show_server_block_device(request: Request, ctx: Ctx) -> Response:
    """One attached disk (querying_a_single_disk_attached_to_an_ecs.rst)."""
    row, vols = await _server_and_volumes(request, ctx)
    wanted = request.path_params["volume_id"]
    for view in _block_device_views(row, vols):
        if view["volumeId"] == wanted:
            return json({"volumeAttachment": view})
    raise EcsError("Ecs.0111", f"volume {wanted} is not attached to this ECS")


def _attachment(row: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    return {"serverId": row["id"], "volumeId": v["id"], "id": v["id"], "device": v["device"]}


@endpoint(ok=200, errors=404)
async def list_server_volume_attachments(request: Request, ctx: Ctx) -> Response:
    """v1 and Nova: the disks attached to a server."""
    row, vols = await _server_and_volumes(request, ctx)
    return json({"volumeAttachments": [_attachment(row, v) for v in vols]})


@endpoint(ok=200, errors=404)
async def show_server_volume_attachment(request: Request, ctx: Ctx) -> Response:
    """Nova: one attached disk; a disk not attached to this server is Ecs.0111, as for block_device."""
    row, vols = await _server_and_volumes(request, ctx)
    for v in vols:
        if v["id"] == request.path_params["volume_id"]:
            return json({"volumeAttachment": _attachment(row, v)})
    raise EcsError("Ecs.0111", f"volume {request.path_params['volume_id']} is not attached to server {row['id']}")


_V1 = "/v1/{project_id}/cloudservers/{server_id}"
_NOVA = "/v2.1/{project_id}/servers/{server_id}/os-volume_attachments"

routes = [
    Route(f"{_V1}/attachvolume", attach_server_volume, methods=["POST"]),
    Route(f"{_V1}/detachvolume/{{volume_id}}", detach_server_volume, methods=["DELETE"]),
    Route("/v1/{project_id}/batchaction/attachvolumes/{volume_id}", batch_attach_sharable_volumes, methods=["POST"]),
    Route(f"{_V1}/block_device", list_server_block_devices, methods=["GET"]),
    Route(f"{_V1}/block_device/{{volume_id}}", show_server_block_device, methods=["GET"]),
    Route(f"{_V1}/os-volume_attachments", list_server_volume_attachments, methods=["GET"]),
    Route("/v2.1/servers/{server_id}/block_device", list_server_block_devices, methods=["GET"]),
    Route("/v2.1/servers/{server_id}/block_device/{volume_id}", show_server_block_device, methods=["GET"]),
    Route(_NOVA, list_server_volume_attachments, methods=["GET"]),
    Route(_NOVA, nova_attach_server_volume, methods=["POST"]),
    Route(f"{_NOVA}/{{volume_id}}", show_server_volume_attachment, methods=["GET"]),
    Route(f"{_NOVA}/{{volume_id}}", nova_detach_server_volume, methods=["DELETE"]),
]
