"""Native (Nova) server lifecycle: create, update, delete, and a server's security groups.

    POST   /v2.1/{project_id}/servers                              lifecycle_management/creating_an_ecs.rst
    PUT    /v2.1/{project_id}/servers/{server_id}                  lifecycle_management/modifying_ecs_details.rst
    DELETE /v2.1/{project_id}/servers/{server_id}                  lifecycle_management/deleting_an_ecs.rst
    GET    /v2.1/{project_id}/servers/{server_id}/os-security-groups
                                        security_group_management/querying_security_groups_of_a_specified_ecs.rst
    GET    /v2.1/{project_id}/os-security-groups[/{security_group_id}]   the discarded group queries
    (pages under native_openstack_nova_apis/ of the reference)

The create runs the v1 create's acceptance (``lifecycle.accept_nova_create``: same checks, quotas,
``X-Client-Token`` idempotency and ``createServer`` job) and answers 202 with Nova's short ``server``
(``id``, ``links``, ``OS-DCF:diskConfig``, ``security_groups``, ``adminPass`` when the server has a
password) and a ``Location`` header, or ``{"reservation_id"}`` when asked. Nova networks map onto
ecsd's VPC/subnet model in ``domain/nics.py``; block devices in ``lifecycle.nova_disks``. Update runs
``lifecycle.update_server`` and answers 200 with the Nova view; delete is a batch delete of one (204).
Errors keep the ECS body (``{"error": {"code", "message"}}``) and the catalogue's codes. Handlers are
named after the Huawei SDK's operations (``nova_create_servers``, ``nova_delete_server``, ...). NUL
characters are refused for every API by ``http.core.read_json``.
Like the v1 create, the create ignores fields it does not model; the fields it models are typed
strictly, except that counts, sizes and flags may also come as the strings the reference's examples send.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import batch, clock, idempotency, lifecycle, nics, security_groups
from ecsd.http.core import Ctx, endpoint, json, no_content, parse, read_json
from ecsd.http.server_views import nova_server_views, server_links
from ecsd.http.servers import IDEMPOTENCY, SchedulerHints

_LAX = ConfigDict(extra="ignore", strict=True)     # create accepts (and ignores) fields it does not model
_STRICT = ConfigDict(extra="forbid", strict=True)
_META_KEY = re.compile(r"[A-Za-z0-9 _\-:.]{1,255}")


def _int_like(v: Any) -> Any:
    """An integer, or the decimal string the reference's examples send ("min_count": "2")."""
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]{1,9}", v.strip()):
        return int(v)
    return v


def _bool_like(v: Any) -> Any:
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def _ref(v: str) -> str:
    """An id, or a URL ending in it (imageRef, flavorRef)."""
    return v.rstrip("/").rsplit("/", 1)[-1] if "/" in v else v


# --- create ----------------------------------------------------------------------------------------------

class Network(BaseModel):
    model_config = _LAX
    uuid: str | None = None
    port: str | None = None
    fixed_ip: str | None = None

    @field_validator("uuid", "port")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not clock.is_uuid(v):
            raise ValueError("must be a UUID")
        return v

    @model_validator(mode="after")
    def _needs_uuid_or_port(self) -> Network:
        if self.port is None and self.uuid is None:
            raise ValueError("uuid or port is required")
        if self.fixed_ip is not None and self.uuid is None:
            raise ValueError("fixed_ip requires uuid")
        return self


class Device(BaseModel):
    model_config = _LAX
    source_type: Literal["image", "blank", "volume", "snapshot"]
    destination_type: Literal["volume", "local"] | None = None
    uuid: str | None = None
    volume_size: int | None = None
    volume_type: str | None = Field(default=None, max_length=16)
    boot_index: int | None = None
    delete_on_termination: bool = False      # accepted; the delete keeps data disks (docs/decisions.md)

    _ints = field_validator("volume_size", "boot_index", mode="before")(classmethod(lambda cls, v: _int_like(v)))
    _bool = field_validator("delete_on_termination", mode="before")(classmethod(lambda cls, v: _bool_like(v)))


class Group(BaseModel):
    model_config = _LAX
    name: str = Field(min_length=1, max_length=255)


class NovaServer(BaseModel):
    model_config = _LAX
    name: str
    flavorRef: str = Field(min_length=1, max_length=255)
    imageRef: str | None = Field(default=None, max_length=255)
    networks: Literal["auto", "none"] | list[Network] = "auto"
    min_count: int = Field(default=1, ge=1)
    max_count: int | None = Field(default=None, ge=1)
    key_name: str | None = Field(default=None, min_length=1, max_length=64)
    adminPass: str | None = Field(default=None, max_length=64)
    user_data: str | None = Field(default=None, max_length=64 * 1024)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=10)
    availability_zone: str | None = None
    security_groups: list[Group] = Field(default_factory=list)
    block_device_mapping_v2: list[Device] = Field(default_factory=list, max_length=24)
    description: str | None = None
    return_reservation_id: bool = False
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(default=None, alias="OS-DCF:diskConfig")

    _ints = field_validator("min_count", "max_count", mode="before")(classmethod(lambda cls, v: _int_like(v)))
    _bool = field_validator("return_reservation_id", mode="before")(classmethod(lambda cls, v: _bool_like(v)))

    @field_validator("networks")
    @classmethod
    def _networks(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError('must name at least one network, or be "auto" or "none"')
        return v

    @field_validator("metadata")
    @classmethod
    def _meta(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not _META_KEY.fullmatch(key) or len(value) > 255:
                raise ValueError(f"invalid metadata pair {key!r}")
        return v


class NovaCreateBody(BaseModel):
    model_config = _LAX
    server: NovaServer
    scheduler_hints: SchedulerHints | None = Field(
        default=None, validation_alias=AliasChoices("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"))


def _spec(project_id: str, s: NovaServer) -> tuple[lifecycle.ServerSpec, Any]:
    """The domain's ServerSpec of a Nova create, and its networks (which the acceptance resolves into
    the spec's VPC and NICs: they depend on the project's servers)."""
    image_id, size, volumetype, data = lifecycle.nova_disks(
        _ref(s.imageRef) if s.imageRef else None,
        tuple(lifecycle.BlockDevice(d.source_type, d.destination_type, d.uuid, d.volume_size, d.volume_type,
                                    d.boot_index) for d in s.block_device_mapping_v2))
    networks = (s.networks if isinstance(s.networks, str)
                else tuple(nics.NovaNetwork(n.uuid, n.port, n.fixed_ip) for n in s.networks))
    count = s.max_count if s.max_count is not None else s.min_count
    spec = lifecycle.ServerSpec(
        name=s.name, image_id=image_id, flavor_id=_ref(s.flavorRef), vpc_id=nics.default_vpc_id(project_id),
        nics=(), volumetype=volumetype, size=size, data_volumes=data, key_name=s.key_name, admin_pass=s.adminPass,
        user_data=s.user_data, count=count, availability_zone=s.availability_zone, metadata=s.metadata,
        description=s.description or "", min_count=s.min_count,
        security_groups=tuple(g.name for g in s.security_groups))
    return spec, networks


@endpoint(ok=202, body=NovaCreateBody, headers=IDEMPOTENCY)
async def nova_create_servers(request: Request, ctx: Ctx) -> Response:
    body = parse(NovaCreateBody, await read_json(request, ctx.services.settings.max_body_bytes))
    pid = ctx.ident.project_id
    spec, networks = _spec(pid, body.server)
    if body.scheduler_hints is not None:
        spec = replace(spec, group=body.scheduler_hints.group)
    token = request.headers.get("x-client-token")
    if token is not None:
        token = idempotency.check_token(token)
    digest = idempotency.fingerprint(body.model_dump(mode="json")) if token is not None else ""

    created = await ctx.services.store.run(lifecycle.accept_nova_create, ctx.ident, spec, networks, token, digest,
                                           ctx.services.driver)
    ctx.services.submitted()
    if body.server.return_reservation_id:
        return json({"reservation_id": created.reservation_id}, status=202)
    base = ctx.services.settings.endpoint
    server_id = created.server_ids[0]
    view: dict[str, Any] = {"id": server_id, "links": server_links(base, pid, server_id),
                            "OS-DCF:diskConfig": "MANUAL",
                            "security_groups": [{"name": g["name"]} for g in security_groups.server_groups(pid)]}
    if created.admin_pass is not None:
        view["adminPass"] = created.admin_pass
    return json({"server": view}, status=202, headers={"Location": f"{base}/v2.1/{pid}/servers/{server_id}"})


# --- update, delete, security groups ---------------------------------------------------------------------

class Update(BaseModel):
    model_config = _STRICT
    name: str | None = None
    description: str | None = None


class UpdateBody(BaseModel):
    model_config = _STRICT
    server: Update


@endpoint(ok=200, body=UpdateBody, errors=404)
async def nova_update_server(request: Request, ctx: Ctx) -> Response:
    body = parse(UpdateBody, await read_json(request, ctx.services.settings.max_body_bytes)).server
    row = await ctx.services.store.run(lifecycle.update_server, ctx.ident.project_id,
                                       request.path_params["server_id"], body.name, body.description)
    return json({"server": (await nova_server_views(ctx, [row]))[0]})


@endpoint(ok=204, errors=404)
async def nova_delete_server(request: Request, ctx: Ctx) -> Response:
    await ctx.services.store.run(batch.accept_batch, ctx.ident, "delete", [request.path_params["server_id"]])
    ctx.services.submitted()
    return no_content()


@endpoint(ok=200, errors=404)
async def nova_list_server_security_groups(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(security_groups.server_security_groups, ctx.ident.project_id,
                                          request.path_params["server_id"])
    return json({"security_groups": found})


@endpoint(ok=200)
async def nova_list_security_groups(request: Request, ctx: Ctx) -> Response:
    """The project's groups (discarded Nova API): its one default group."""
    return json({"security_groups": [security_groups.nova_group(ctx.ident.project_id)]})


@endpoint(ok=200, errors=404)
async def nova_show_security_group(request: Request, ctx: Ctx) -> Response:
    return json({"security_group": security_groups.project_group(ctx.ident.project_id,
                                                                 request.path_params["security_group_id"])})


# Listed last in app.py. Only PUT, DELETE and POST are served here: a GET of "/servers/detail" still meets
# http/nova.py's list first, and a PUT or DELETE of it is a server id that does not exist (404 Ecs.0114).
routes = [
    Route("/v2.1/{project_id}/servers", nova_create_servers, methods=["POST"]),
    Route("/v2.1/{project_id}/servers/{server_id}", nova_update_server, methods=["PUT"]),
    Route("/v2.1/{project_id}/servers/{server_id}", nova_delete_server, methods=["DELETE"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-security-groups", nova_list_server_security_groups, methods=["GET"]),
    Route("/v2.1/{project_id}/os-security-groups", nova_list_security_groups, methods=["GET"]),
    Route("/v2.1/{project_id}/os-security-groups/{security_group_id}", nova_show_security_group, methods=["GET"]),
]
