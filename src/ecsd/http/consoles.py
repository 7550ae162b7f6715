"""Remote (VNC) consoles of a server, and the Nova actions served with them.

    POST /v2.1/{project_id}/servers/{server_id}/remote-consoles    microversion 2.6+ (else 404 Common.0404)
    POST /v1/{project_id}/cloudservers/{server_id}/remote_console   the ECS API (huaweicloudsdkecs
                                                                     ShowServerRemoteConsole)
    GET  /vnc_auto.html?token=...                                    the console page (no auth, the token):
                                                                     noVNC for a server with a VNC display
                                                                     (http/vnc_proxy.py, which also serves
                                                                     /websockify and /novnc/...), else the
                                                                     server's console output
    Nova actions (POST /v2.1/{project_id}/servers/{server_id}/action, dispatched by http/nova.py):
    os-getVNCConsole ({"type": "novnc"} -> {"console": {"type", "url"}}) and createImage
    (http/images.py).

Reference: native_openstack_nova_apis/ecs_console_management/obtaining_a_vnc-based_remote_login_address_
microversion_2.6_or_later.rst; the rules (ACTIVE only, vnc/novnc only, the console page and its
token) are in domain/consoles.py.
"""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ecsd.domain import consoles
from ecsd.domain.errors import EcsError, invalid
from ecsd.http import images as images_http
from ecsd.http import vnc_proxy
from ecsd.http.core import Ctx, endpoint, json, parse, read_json
from ecsd.http.keypairs import MICROVERSION_HEADERS, compute_microversion

REMOTE_CONSOLES_MICROVERSION = (2, 6)
HTML_MEDIA_TYPE = "text/html"      # the console page's answer (http/openapi.py reads `media_type`)


class _ConsoleKind(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    protocol: str
    type: str


class RemoteConsoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    remote_console: _ConsoleKind


async def _url(ctx: Ctx, server_id: str) -> str:
    return await consoles.remote_console_url(ctx.services.store, ctx.services.driver, ctx.ident, server_id,
                                             ctx.services.settings.endpoint)


async def _remote_console(request: Request, ctx: Ctx) -> Response:
    body = parse(RemoteConsoleBody, await read_json(request, ctx.services.settings.max_body_bytes))
    kind = body.remote_console
    consoles.check_console_kind(kind.protocol, kind.type)
    url = await _url(ctx, request.path_params["server_id"])
    return json({"remote_console": {"protocol": kind.protocol, "type": kind.type, "url": url}})


@endpoint(ok=200, body=RemoteConsoleBody, headers=MICROVERSION_HEADERS, errors=404)
async def nova_remote_console(request: Request, ctx: Ctx) -> Response:
    """A remote console login URL (Nova, microversion 2.6 or later)."""
    version = compute_microversion(request)
    if version is None or version < REMOTE_CONSOLES_MICROVERSION:
        raise EcsError("Common.0404", "remote-consoles needs compute microversion 2.6 or later "
                                      "(X-OpenStack-Nova-API-Version: 2.6); older ones use os-getVNCConsole")
    return await _remote_console(request, ctx)


@endpoint(ok=200, body=RemoteConsoleBody, errors=404)
async def ecs_remote_console(request: Request, ctx: Ctx) -> Response:
    """A remote console login URL (the ECS API)."""
    return await _remote_console(request, ctx)


async def _vnc_console(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    if not isinstance(args, dict) or set(args) != {"type"}:
        raise invalid(f'{action} takes {{"type": "novnc"}}')
    consoles.check_console_kind("vnc", args["type"])
    return json({"console": {"type": args["type"], "url": await _url(ctx, server_id)}})


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Console of {name}{title}</title></head>
<body><h1>Console of {name}{title}</h1>
<p>{why} Its console output follows.</p>
<pre>{output}</pre></body></html>
"""
_SIMULATED = "This ecsd runs the simulated driver: server {id} has no display, so there is no VNC session."


@endpoint(auth="none", ok=200, query={"token": str}, errors=404)
async def console_page(request: Request, ctx: Ctx) -> Response:
    """The remote console of a console URL's token: noVNC on the server's display, or its console output."""
    shown = await consoles.console_page(ctx.services.store, ctx.services.driver, request.query_params.get("token"))
    if shown.kind == "vnc":
        return await vnc_proxy.novnc_page(request, shown.server)
    sid = html.escape(shown.server["id"])
    why = (f"Server {sid}: {html.escape(shown.reason)}." if shown.reason else _SIMULATED.format(id=sid))
    page = _PAGE.format(name=html.escape(shown.server["name"]), title=" (no display)" if shown.reason else " (simulated)",
                        why=why, output=html.escape(shown.output))
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


console_page.media_type = HTML_MEDIA_TYPE     # type: ignore[attr-defined]

NOVA_ACTIONS: dict = {"os-getVNCConsole": _vnc_console, "createImage": images_http.create_image_action}
NOVA_ACTION_ARGS: dict = {
    "os-getVNCConsole": {"type": "object", "required": ["type"], "additionalProperties": False,
                         "properties": {"type": {"type": "string", "enum": ["novnc"]}}},
    "createImage": images_http.CREATE_IMAGE_ARGS,
}

routes = [
    Route("/v2.1/{project_id}/servers/{server_id}/remote-consoles", nova_remote_console, methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/remote_console", ecs_remote_console, methods=["POST"]),
    Route(consoles.CONSOLE_PATH, console_page, methods=["GET"]),
    *vnc_proxy.routes,      # served with the page (app.py lists this module, not that one)
]
