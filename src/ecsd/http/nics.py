"""NICs over HTTP, v1 and native (Nova): the queries (domain/nics.py), adding and deleting NICs and
binding virtual IPs (domain/nic_changes.py), and the Nova ``os-server-password`` of a server (what its
guest posted through the metadata service).

    GET    /v1/{project_id}/cloudservers/{server_id}/os-interface          querying_nics_of_an_ecs.rst
    GET    /v2.1/{project_id}/servers/{server_id}/os-interface[/{port_id}] (Nova) querying_nics_of_an_ecs.rst
    POST   /v1/{project_id}/cloudservers/{server_id}/nics                  adding_nics_to_an_ecs_in_a_batch.rst
    POST   /v1/{project_id}/cloudservers/{server_id}/nics/delete           deleting_nics_from_an_ecs_in_a_batch.rst
    PUT    /v1/{project_id}/cloudservers/nics/{nic_id}                     binding_a_virtual_ip_address_to_an_ecs_nic.rst,
                                                                           unbinding_a_virtual_ip_address_from_an_ecs_nic.rst
    POST   /v2.1/{project_id}/servers/{server_id}/os-interface             (Nova) adding_a_nic_to_an_ecs.rst
    DELETE /v2.1/{project_id}/servers/{server_id}/os-interface/{port_id}   (Nova) deleting_a_nic_from_an_ecs.rst
    GET    /v2.1/{project_id}/os-networks, os-server-password (v1 and Nova)

Bodies are strict (unknown fields and wrong types are Ecs.0005): the reference's fields plus those the
official SDK's models send (``port_id``, ``efi_enable``, ``ipv6_bandwidth`` on an added NIC).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import nic_changes, nics
from ecsd.domain import servers as srv
from ecsd.domain.clock import is_uuid
from ecsd.domain.errors import invalid
from ecsd.http.core import Ctx, Param, endpoint, json, no_content, parse, read_json

_STRICT = ConfigDict(extra="forbid", strict=True)
MAX_IN_REQUEST = 100        # NICs named in one request (beyond lifecycle.MAX_NICS the domain says Ecs.0050)


def _uuid(v: str) -> str:
    if not is_uuid(v):
        raise ValueError("must be a UUID")
    return v


Uuid = Annotated[str, AfterValidator(_uuid)]


class _Id(BaseModel):
    model_config = _STRICT
    id: str = Field(min_length=1, max_length=64)


class AddNic(BaseModel):
    model_config = _STRICT
    subnet_id: Uuid | None = None
    port_id: str | None = None
    ip_address: str | None = Field(default=None, max_length=64)
    security_groups: list[_Id] | None = Field(default=None, max_length=10)
    ipv6_enable: bool | None = None
    ipv6_bandwidth: _Id | None = None
    efi_enable: bool | None = None

    @field_validator("ipv6_enable")
    @classmethod
    def _no_ipv6(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("ecsd has no IPv6 subnets")
        return v


class AddNicsBody(BaseModel):
    model_config = _STRICT
    nics: list[AddNic] = Field(min_length=1, max_length=MAX_IN_REQUEST)


class DeleteNic(BaseModel):
    model_config = _STRICT
    id: Uuid


class DeleteNicsBody(BaseModel):
    model_config = _STRICT
    nics: list[DeleteNic] = Field(min_length=1, max_length=MAX_IN_REQUEST)


class VirtualIpNic(BaseModel):
    model_config = _STRICT
    subnet_id: str = Field(max_length=64)
    ip_address: str = Field(max_length=64)
    reverse_binding: bool | None = None


class VirtualIpBody(BaseModel):
    model_config = _STRICT
    nic: VirtualIpNic


class FixedIp(BaseModel):
    model_config = _STRICT
    ip_address: str | None = Field(default=None, max_length=64)


class Attachment(BaseModel):
    model_config = _STRICT
    net_id: Uuid | None = None
    port_id: str | None = None
    fixed_ips: list[FixedIp] | None = Field(default=None, max_length=1)


class AttachBody(BaseModel):
    model_config = _STRICT
    interfaceAttachment: Attachment


@endpoint(ok=200, errors=404)
async def list_interfaces(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(nics.interfaces, ctx.ident.project_id, request.path_params["server_id"])
    return json({"interfaceAttachments": found})


@endpoint(ok=200, errors=404)
async def show_interface(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(nics.interface, ctx.ident.project_id, request.path_params["server_id"],
                                          request.path_params["port_id"])
    return json({"interfaceAttachment": found})


def _new_nic(nic: AddNic, n: int) -> nic_changes.NewNic:
    if nic.subnet_id is None and nic.port_id is None:
        raise invalid(f"nics.{n}.subnet_id is required")
    return nic_changes.NewNic(nic.subnet_id, nic.ip_address, nic.port_id)


@endpoint(ok=200, body=AddNicsBody, errors=404)
async def batch_add_server_nics(request: Request, ctx: Ctx) -> Response:
    body = parse(AddNicsBody, await read_json(request, ctx.services.settings.max_body_bytes))
    new = tuple(_new_nic(nic, n) for n, nic in enumerate(body.nics))
    job_id, _entries = await ctx.services.store.run(nic_changes.accept_add, ctx.ident,
                                                    request.path_params["server_id"], new)
    ctx.services.submitted()
    return json({"job_id": job_id})


@endpoint(ok=200, body=DeleteNicsBody, errors=(403, 404))
async def batch_delete_server_nics(request: Request, ctx: Ctx) -> Response:
    body = parse(DeleteNicsBody, await read_json(request, ctx.services.settings.max_body_bytes))
    job_id = await ctx.services.store.run(nic_changes.accept_delete, ctx.ident, request.path_params["server_id"],
                                          tuple(nic.id for nic in body.nics))
    ctx.services.submitted()
    return json({"job_id": job_id})


@endpoint(ok=200, body=VirtualIpBody, errors=404)
async def update_server_virtual_ip(request: Request, ctx: Ctx) -> Response:
    """Bind (``subnet_id`` and ``ip_address``) or unbind (both empty) a virtual IP: the SDK's
    associate_server_virtual_ip / disassociate_server_virtual_ip."""
    nic = parse(VirtualIpBody, await read_json(request, ctx.services.settings.max_body_bytes)).nic
    port_id = await ctx.services.store.run(nic_changes.update_virtual_ip, ctx.ident.project_id,
                                           request.path_params["nic_id"],
                                           nic_changes.VirtualIp(nic.subnet_id, nic.ip_address, nic.reverse_binding))
    return json({"port_id": port_id})


@endpoint(ok=200, body=AttachBody, errors=404)
async def nova_attach_interface(request: Request, ctx: Ctx) -> Response:
    req = parse(AttachBody, await read_json(request, ctx.services.settings.max_body_bytes)).interfaceAttachment
    if req.net_id is not None and req.port_id is not None:
        raise invalid("interfaceAttachment.port_id and net_id cannot be given together")
    ip = req.fixed_ips[0].ip_address if req.fixed_ips else None
    if req.fixed_ips and req.net_id is None:
        raise invalid("interfaceAttachment.fixed_ips must be given with net_id")
    found = await ctx.services.store.run(nic_changes.accept_nova_attach, ctx.ident, request.path_params["server_id"],
                                         nic_changes.NewNic(req.net_id, ip, req.port_id))
    ctx.services.submitted()
    return json({"interfaceAttachment": found})


@endpoint(ok=202, empty=202, errors=(403, 404), query={"reserve_port": Param(bool, description=(
    "true or false; ecsd keeps no port apart from a server's NIC, so the port is not kept either way"))})
async def nova_detach_interface(request: Request, ctx: Ctx) -> Response:
    if request.query_params.get("reserve_port", "false").lower() not in ("true", "false"):
        raise invalid("reserve_port must be true or false")
    port_id = request.path_params["port_id"]
    await ctx.services.store.run(nic_changes.accept_delete, ctx.ident, request.path_params["server_id"],
                                 (port_id,), True)
    ctx.services.submitted()
    return no_content(202)


@endpoint(ok=200)
async def list_networks(request: Request, ctx: Ctx) -> Response:
    return json({"networks": await ctx.services.store.read(nics.project_networks, ctx.ident.project_id)})


@endpoint(ok=200, errors=404)
async def show_server_password(request: Request, ctx: Ctx) -> Response:
    """``os-server-password``: the password a Windows guest's Cloudbase-Init posted, encrypted with the
    key pair. No guest posts one here, so it is empty, as Nova answers before a guest has (decisions.md)."""
    await ctx.services.store.read(srv.load, ctx.ident.project_id, request.path_params["server_id"])  # Ecs.0114
    return json({"password": ""})


@endpoint(ok=204, errors=404)
async def delete_server_password(request: Request, ctx: Ctx) -> Response:
    await ctx.services.store.read(srv.load, ctx.ident.project_id, request.path_params["server_id"])  # Ecs.0114
    return no_content()


routes = [
    Route("/v2.1/{project_id}/os-networks", list_networks, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-server-password", show_server_password, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-server-password", delete_server_password, methods=["DELETE"]),
    # the Huawei SDK's show_server_password / delete_server_password
    Route("/v1/{project_id}/cloudservers/{server_id}/os-server-password", show_server_password, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/os-server-password", delete_server_password,
          methods=["DELETE"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/os-interface", list_interfaces, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-interface", list_interfaces, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-interface/{port_id}", show_interface, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/nics/{nic_id}", update_server_virtual_ip, methods=["PUT"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/nics", batch_add_server_nics, methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/nics/delete", batch_delete_server_nics, methods=["POST"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-interface", nova_attach_interface, methods=["POST"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-interface/{port_id}", nova_detach_interface,
          methods=["DELETE"]),
]
