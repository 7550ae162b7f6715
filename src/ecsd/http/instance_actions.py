"""Operation history over HTTP: Nova ``os-instance-actions`` (domain/actions.py).

    GET /v2.1/{project_id}/servers/{server_id}/os-instance-actions               {"instanceActions": [...]}
    GET /v2.1/{project_id}/servers/{server_id}/os-instance-actions/{request_id}  {"instanceAction": {..., "events"}}
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import actions
from ecsd.http.core import Ctx, endpoint, json


@endpoint(ok=200, errors=404)
async def list_instance_actions(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(actions.list_actions, ctx.ident.project_id,
                                          request.path_params["server_id"])
    return json({"instanceActions": found})


@endpoint(ok=200, errors=404)
async def show_instance_action(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(actions.show_action, ctx.ident.project_id,
                                          request.path_params["server_id"], request.path_params["request_id"])
    return json({"instanceAction": found})


routes = [
    Route("/v2.1/{project_id}/servers/{server_id}/os-instance-actions", list_instance_actions, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/os-instance-actions/{request_id}", show_instance_action,
          methods=["GET"]),
]
