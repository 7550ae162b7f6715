"""NIC queries over HTTP, v1 and native (Nova) (domain/nics.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import nics
from ecsd.http.core import Ctx, endpoint, json


@endpoint(ok=200, errors=404)
async def list_interfaces(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(nics.interfaces, ctx.ident.project_id, request.path_params["server_id"])
    return json({"interfaceAttachments": found})


@endpoint(ok=200, errors=404)
async def show_interface(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(nics.interface, ctx.ident.project_id, request.path_params["server_id"],
                                          request.path_params["port_id"])
    return json({"interfaceAttachment": found})


routes = [
    Route("/v1/{project_id}/cloudservers/{server_id}/os-interface", list_interfaces, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-interface", list_interfaces, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-interface/{port_id}", show_interface, methods=["GET"]),
]
