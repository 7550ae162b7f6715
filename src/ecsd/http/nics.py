"""NIC and network queries over HTTP, v1 and native (Nova) (domain/nics.py), and the Nova
``os-server-password`` of a server (what its guest posted through the metadata service)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import nics
from ecsd.domain import servers as srv
from ecsd.http.core import Ctx, endpoint, json, no_content


@endpoint(ok=200, errors=404)
async def list_interfaces(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(nics.interfaces, ctx.ident.project_id, request.path_params["server_id"])
    return json({"interfaceAttachments": found})


@endpoint(ok=200, errors=404)
async def show_interface(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(nics.interface, ctx.ident.project_id, request.path_params["server_id"],
                                          request.path_params["port_id"])
    return json({"interfaceAttachment": found})


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
]
