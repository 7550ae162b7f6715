"""``POST /v1.0/servers/{server_id}/action`` with ``monitorMetrics``: adding a server to the
monitoring list (adding_an_ecs_to_the_monitoring_list.rst; the Huawei SDK's ``register_server_monitor``).

The path has no project: the server must be one of the token's project (else 404 ``Ecs.0114``).
ecsd has no monitoring service to feed, so the call is accepted and changes nothing visible
(docs/decisions.md). The reference's value is ``null``; the Huawei SDK leaves a ``None`` attribute
out of the body, so ``{}`` is accepted too, and a string (the SDK types the field as one).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import servers as srv
from ecsd.http.core import Ctx, endpoint, no_content, parse, read_json


class MonitorBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    monitor_metrics: str | None = Field(None, alias="monitorMetrics", max_length=255)


@endpoint(auth="token", ok=200, body=MonitorBody, errors=404, empty=200)
async def register_server_monitor(request: Request, ctx: Ctx) -> Response:
    parse(MonitorBody, await read_json(request, ctx.services.settings.max_body_bytes))
    await ctx.services.store.read(srv.load, ctx.ident.project_id, request.path_params["server_id"])  # Ecs.0114
    return no_content(200)


routes = [Route("/v1.0/servers/{server_id}/action", register_server_monitor, methods=["POST"])]
