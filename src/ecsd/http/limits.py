"""Project limits and usage over HTTP: the v1 and the native (Nova) form (domain/quotas.py).

Its routes are declared before those of ``http/servers.py``: ``/cloudservers/limits`` would
otherwise be taken for a server id.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import quotas
from ecsd.http.core import Ctx, endpoint, json


@endpoint()
async def v1_limits(request: Request, ctx: Ctx) -> Response:
    return json({"absolute": await ctx.services.store.read(quotas.absolute, ctx.ident.project_id)})


@endpoint()
async def nova_limits(request: Request, ctx: Ctx) -> Response:
    absolute = await ctx.services.store.read(quotas.absolute, ctx.ident.project_id)
    return json({"limits": {"rate": [], "absolute": absolute}})


routes = [
    Route("/v1/{project_id}/cloudservers/limits", v1_limits, methods=["GET"]),
    Route("/v2.1/{project_id}/limits", nova_limits, methods=["GET"]),
]
