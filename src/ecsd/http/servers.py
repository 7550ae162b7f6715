"""Servers over HTTP (ECS v1 API): create, show, list, modify, delete, batch actions, console output.

    POST /v1/{project_id}/cloudservers                     create (job createServer)
    GET  /v1/{project_id}/cloudservers/detail              list with filters and page-number paging
    GET  /v1/{project_id}/cloudservers/{server_id}         details
    PUT  /v1/{project_id}/cloudservers/{server_id}         rename / describe
    POST /v1/{project_id}/cloudservers/delete              delete (job deleteServer)
    POST /v1/{project_id}/cloudservers/action              os-start / os-stop / reboot
    GET  /v1/{project_id}/cloudservers/{server_id}/console-output

The disks of a server (block_device, os-volume_attachments, attach, detach) are in ``http/disks.py``.

The server views live in ``http/server_views.py`` (shared with ``http/nova.py``).
Bodies are checked for shape here (wrong JSON types, missing fields: Ecs.0005); limits with a code
of their own in the reference (name, count, description, disks, NICs) are checked by the domain.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import batch, clock, consoles, idempotency, lifecycle
from ecsd.domain import servers as srv
from ecsd.domain.errors import invalid
from ecsd.domain.listing import Filters, list_page
from ecsd.http.core import (
    JSON,
    Ctx,
    Param,
    accept_or_dry_run,
    endpoint,
    json,
    no_content,
    parse,
    query_int,
    read_json,
)
from ecsd.http.server_views import list_body, server_views, update_view

_STRICT = ConfigDict(extra="forbid", strict=True)
_LAX = ConfigDict(extra="ignore", strict=True)   # create accepts (and ignores) fields we do not model
# X-Client-Token of a create: a repeat with the same token and body answers as the first did.
IDEMPOTENCY = {"X-Client-Token": Param(str, description="Makes the create idempotent (domain/idempotency.py).")}


def _uuid(v: str) -> str:
    if not clock.is_uuid(v):
        raise ValueError("must be a UUID")
    return v


# --- create ---------------------------------------------------------------------------------------------

class Nic(BaseModel):
    model_config = _LAX
    subnet_id: str
    ip_address: str | None = None
    _v = field_validator("subnet_id")(classmethod(lambda cls, v: _uuid(v)))

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        return v or None   # "" means "assign one" (creating_an_ecs.rst, Table 4)


class RootVolume(BaseModel):
    model_config = _LAX
    volumetype: str
    size: int | None = Field(default=None, ge=0, le=1024)   # absent or 0: the image's min_disk


class DataVolume(RootVolume):
    size: int = Field(ge=10, le=32768)


class SchedulerHints(BaseModel):
    """``os:scheduler_hints`` of a create (v1 and Nova): ``group`` puts the servers into that ECS group."""

    model_config = _LAX
    group: str | None = None
    _g = field_validator("group")(classmethod(lambda cls, v: v if v is None else _uuid(v)))


class ServerCreate(BaseModel):
    model_config = _LAX
    name: str
    imageRef: str
    flavorRef: str = Field(min_length=1, max_length=64)
    vpcid: str
    nics: list[Nic]
    root_volume: RootVolume
    data_volumes: list[DataVolume] = Field(default_factory=list)
    key_name: str | None = Field(default=None, min_length=1, max_length=64)
    adminPass: str | None = None
    user_data: str | None = Field(default=None, max_length=64 * 1024)
    count: int = 1
    availability_zone: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict, max_length=10)
    description: str = ""
    scheduler_hints: SchedulerHints | None = Field(default=None, alias="os:scheduler_hints")

    _ids = field_validator("imageRef", "vpcid")(classmethod(lambda cls, v: _uuid(v)))

    @field_validator("metadata")
    @classmethod
    def _meta(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not re.fullmatch(r"[A-Za-z0-9 _\-:.]{1,255}", key) or len(value) > 255:
                raise ValueError(f"invalid metadata pair {key!r}")
        return v


class CreateBody(BaseModel):
    model_config = _LAX
    server: ServerCreate
    dry_run: bool = False



@endpoint(ok=(200, 202), body=CreateBody, headers=IDEMPOTENCY)    # 202: a dry run
async def create_servers(request: Request, ctx: Ctx) -> Response:
    body = parse(CreateBody, await read_json(request, ctx.services.settings.max_body_bytes))
    s = body.server
    spec = lifecycle.ServerSpec(
        name=s.name, image_id=s.imageRef, flavor_id=s.flavorRef, vpc_id=s.vpcid,
        nics=tuple((n.subnet_id, n.ip_address) for n in s.nics), volumetype=s.root_volume.volumetype,
        size=s.root_volume.size or None,
        data_volumes=tuple(lifecycle.DataVolume(d.volumetype, d.size) for d in s.data_volumes),
        key_name=s.key_name, admin_pass=s.adminPass, user_data=s.user_data, count=s.count,
        availability_zone=s.availability_zone, metadata=s.metadata, description=s.description,
        group=s.scheduler_hints.group if s.scheduler_hints else None)

    token = request.headers.get("x-client-token")
    if token is not None:
        token = idempotency.check_token(token)
    digest = idempotency.fingerprint(body.model_dump(mode="json")) if token is not None else ""

    accepted = await accept_or_dry_run(ctx, body.dry_run, lifecycle.accept_create, ctx.ident, spec, token, digest,
                                       ctx.services.driver)
    if accepted is None:
        return json({}, status=202)
    job_id, ids = accepted
    ctx.services.submitted()
    return json({"job_id": job_id, "serverIds": ids})


# --- details and lists ----------------------------------------------------------------------------------

@endpoint(ok=200, errors=404)
async def show_server(request: Request, ctx: Ctx) -> Response:
    row = await ctx.services.store.run(srv.load, ctx.ident.project_id, request.path_params["server_id"])
    return json({"server": (await server_views(ctx, [row]))[0]})


# The query parameters list_filters reads.
LIST_FILTERS = ("name", "status", "flavor", "reservation_id", "ip", "server_id", "ip_eq", "tags", "not-tags")


def list_filters(request: Request) -> Filters:
    """The filters of a list request, shared by the v1 and the native list."""
    q = request.query_params
    return Filters(name=q.get("name") or None, status=q.get("status") or None, flavor=q.get("flavor") or None,
                   reservation_id=q.get("reservation_id") or None, ip=q.get("ip") or None,
                   server_id=q.get("server_id") or None, ip_eq=q.get("ip_eq") or None,
                   tags=q.get("tags") or None, not_tags=q.get("not-tags") or None)


@endpoint(ok=200, query={"limit": int, "offset": int, **dict.fromkeys(LIST_FILTERS, str)})
async def list_detail(request: Request, ctx: Ctx) -> Response:
    limit = query_int(request, "limit", 25, 0, 1000) or 25
    page = query_int(request, "offset", 1, 0, 10**9) or 1     # a page number; 0 behaves as 1
    filters = list_filters(request)
    found = await ctx.services.store.read(list_page, ctx.ident.project_id, limit, page, filters)
    return Response(list_body(found), media_type=JSON.media_type)


class Rename(BaseModel):
    model_config = _STRICT
    name: str | None = None
    description: str | None = None
    hostname: str | None = None      # "no longer used" (modifying_ecs_details.rst): accepted, ignored


class RenameBody(BaseModel):
    model_config = _STRICT
    server: Rename


@endpoint(ok=200, body=RenameBody, errors=404)
async def update_server(request: Request, ctx: Ctx) -> Response:
    body = parse(RenameBody, await read_json(request, ctx.services.settings.max_body_bytes)).server
    row = await ctx.services.store.run(lifecycle.update_server, ctx.ident.project_id,
                                       request.path_params["server_id"], body.name, body.description)
    view = (await server_views(ctx, [row]))[0]
    return json({"server": update_view(view, ctx.services.settings.endpoint)})


# --- delete and batch actions ---------------------------------------------------------------------------

class Ref(BaseModel):
    model_config = _LAX
    id: str


class BatchRenameBody(BaseModel):
    model_config = _STRICT
    name: str
    dry_run: bool = False
    servers: list[Ref] = Field(min_length=1, max_length=100)


@endpoint(ok=(200, 204), body=BatchRenameBody, errors=404)    # 204: a dry run
async def rename_servers(request: Request, ctx: Ctx) -> Response:
    """PUT /v1/{project_id}/cloudservers/server-name (modifying_ecs_details_in_a_batch.rst)."""
    body = parse(BatchRenameBody, await read_json(request, ctx.services.settings.max_body_bytes))
    lifecycle.check_name(body.name)
    ids = list(dict.fromkeys(ref.id for ref in body.servers))
    done = await ctx.services.store.run(srv.rename_many, ctx.ident.project_id, ids, body.name, body.dry_run)
    if body.dry_run:
        return no_content()      # every check passed; nothing was changed
    return json({"response": [{"id": sid} for sid in done]})


class DeleteBody(BaseModel):
    model_config = _STRICT
    servers: list[Ref]
    delete_publicip: bool | None = None
    delete_volume: bool = False


class StartArgs(BaseModel):
    model_config = _STRICT
    servers: list[Ref]


class StopArgs(StartArgs):
    type: str = "SOFT"

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in ("SOFT", "HARD"):
            raise ValueError('must be "SOFT" or "HARD"')
        return v


class RebootArgs(StopArgs):
    type: str    # mandatory for reboot (restarting_ecss_in_a_batch.rst)


class ActionBody(BaseModel):
    model_config = _STRICT
    os_start: StartArgs | None = Field(default=None, alias="os-start")
    os_stop: StopArgs | None = Field(default=None, alias="os-stop")
    reboot: RebootArgs | None = None


@endpoint(ok=200, body=DeleteBody, errors=404)
async def delete_servers(request: Request, ctx: Ctx) -> Response:
    body = parse(DeleteBody, await read_json(request, ctx.services.settings.max_body_bytes))
    job_id = await ctx.services.store.run(batch.accept_batch, ctx.ident, "delete", [r.id for r in body.servers],
                                          delete_volume=body.delete_volume)
    ctx.services.submitted()
    return json({"job_id": job_id})


# The actions of POST /v1/{project_id}/cloudservers/action (scripts/api_coverage.py reads them).
BATCH_ACTIONS = ("os-start", "os-stop", "reboot")


@endpoint(ok=200, body=ActionBody, errors=404)
async def batch_action(request: Request, ctx: Ctx) -> Response:
    body = parse(ActionBody, await read_json(request, ctx.services.settings.max_body_bytes))
    given = [(name, args) for name, args in zip(BATCH_ACTIONS, (body.os_start, body.os_stop, body.reboot),
                                                strict=True) if args is not None]
    if len(given) != 1:
        raise invalid("exactly one of os-start, os-stop and reboot is required")
    action, args = given[0]
    hard = getattr(args, "type", "SOFT") == "HARD"
    job_id = await ctx.services.store.run(batch.accept_batch, ctx.ident, action, [r.id for r in args.servers],
                                          hard=hard)
    ctx.services.submitted()
    return json({"job_id": job_id})


# --- console output ----------------------------------------------------------------------------------

@endpoint(ok=200, query={"length": int}, errors=404)
async def show_server_console_output(request: Request, ctx: Ctx) -> Response:
    """``GET /v1/{project_id}/cloudservers/{server_id}/console-output?length=N``: the Huawei SDK's
    ``show_server_console_output`` (not in the reference; the same as Nova's os-getConsoleOutput)."""
    length = consoles.parse_length(request.query_params.get("length"))
    output = await consoles.console_output(ctx.services.store, ctx.services.driver, ctx.ident,
                                           request.path_params["server_id"], length)
    return json({"output": output})


routes = [
    Route("/v1/{project_id}/cloudservers", create_servers, methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/detail", list_detail, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/delete", delete_servers, methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/action", batch_action, methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/server-name", rename_servers, methods=["PUT"]),   # before {server_id}
    Route("/v1/{project_id}/cloudservers/{server_id}", show_server, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/{server_id}", update_server, methods=["PUT"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/console-output", show_server_console_output, methods=["GET"]),
]
