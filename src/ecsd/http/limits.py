"""Project limits and usage over HTTP: the v1 and the native (Nova) form (domain/quotas.py).

    GET /v1/{project_id}/cloudservers/limits                      querying_tenant_quotas.rst
    GET /v2.1/{project_id}/limits                                 querying_tenant_quota_limits.rst
    GET /v2.1/{project_id}/os-quota-sets/{project_id}             native querying_tenant_quotas.rst
    GET /v2.1/{project_id}/os-quota-sets/{project_id}/defaults    querying_default_quotas.rst

Each shows the quotas that create enforces (the project's overrides, else the defaults) and the usage
counted beside them; ``/defaults`` shows the defaults. A project other than the caller's: 400 Ecs.0023.

Its routes are declared before those of ``http/servers.py``: ``/cloudservers/limits`` would
otherwise be taken for a server id.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import quotas
from ecsd.http.core import Ctx, endpoint, json


@endpoint(ok=200)
async def v1_limits(request: Request, ctx: Ctx) -> Response:
    return json({"absolute": await ctx.services.store.read(quotas.absolute, ctx.ident.project_id)})


@endpoint(ok=200)
async def nova_limits(request: Request, ctx: Ctx) -> Response:
    absolute = await ctx.services.store.read(quotas.absolute, ctx.ident.project_id)
    return json({"limits": {"rate": [], "absolute": absolute}})


@endpoint(ok=200)
async def quota_set(request: Request, ctx: Ctx) -> Response:
    """The quotas of the caller's project (the path names it twice); ``user_id`` changes nothing here."""
    ctx.services.auth.check_project(ctx.ident, request.path_params["tenant_id"])
    return json({"quota_set": await ctx.services.store.read(quotas.quota_set, ctx.ident.project_id)})


@endpoint(ok=200)
async def default_quota_set(request: Request, ctx: Ctx) -> Response:
    """The default quotas (what a project has without an administrator's override)."""
    ctx.services.auth.check_project(ctx.ident, request.path_params["tenant_id"])
    return json({"quota_set": quotas.default_quota_set(ctx.ident.project_id)})


routes = [
    Route("/v1/{project_id}/cloudservers/limits", v1_limits, methods=["GET"]),
    Route("/v2.1/{project_id}/limits", nova_limits, methods=["GET"]),
    Route("/v2.1/{project_id}/os-quota-sets/{tenant_id}", quota_set, methods=["GET"]),
    Route("/v2.1/{project_id}/os-quota-sets/{tenant_id}/defaults", default_quota_set, methods=["GET"]),
]
