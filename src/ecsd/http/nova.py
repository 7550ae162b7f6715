"""Native (Nova) server APIs: lists, details and single-server actions.

    GET  /v2.1/{project_id}/servers                        id, name, links (+ servers_links)
    GET  /v2.1/{project_id}/servers/detail                 the full Nova view (+ servers_links)
    GET  /v2.1/{project_id}/servers/{server_id}
    POST /v2.1/{project_id}/servers/{server_id}/action     os-start, os-stop, reboot, lock, unlock, rebuild,
                                                           os-getConsoleOutput (domain/consoles.py),
                                                           addSecurityGroup, removeSecurityGroup;
                                                           resize, confirmResize, revertResize
                                                           (http/resize.py), os-getVNCConsole and
                                                           createImage (http/consoles.py)

Start, stop and reboot go through the same gate and job types as the batch API (a batch of one) and
answer 202 with no body, as Nova does; the job runs on as usual. ``lock`` / ``unlock`` take effect
at once. Errors keep the ECS body (``{"error": {"code", "message"}}``) with the catalogue's status.
``rebuild`` (``openstack server rebuild``) is a change OS (``domain/changeos.py``) with
``mode=withStopServer``: 202 with the server, now in REBUILD.
Lists are keyset-paged by ``marker`` (a server id) and ``limit`` (default 25, at most 1000).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import batch, changeos, consoles, lifecycle, security_groups
from ecsd.domain import servers as srv
from ecsd.domain.clock import is_uuid
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.listing import Filters, list_servers_after, parse_changes_since
from ecsd.http import consoles as consoles_http
from ecsd.http import resize
from ecsd.http.core import Ctx, capped_limit, endpoint, json, parse, read_json
from ecsd.http.server_views import nova_server_views, server_links
from ecsd.http.servers import list_filters

DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
# The query parameters of the lists (_page and _filters read them).
LIST_QUERY = {"limit": int, "marker": str, **dict.fromkeys(
    ("name", "status", "flavor", "reservation_id", "ip", "image", "changes-since", "tags", "tags-any", "not-tags",
     "not-tags-any"), str)}


# --- lists and details --------------------------------------------------------------------------------

def _limit(request: Request) -> int:
    return capped_limit(request, DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT


def _filters(request: Request) -> Filters:
    q = request.query_params
    base = list_filters(request)
    since = q.get("changes-since")
    return Filters(name=base.name, status=base.status, flavor=base.flavor, reservation_id=base.reservation_id,
                   ip=base.ip, image=q.get("image") or None,
                   changes_since=parse_changes_since(since) if since else None,
                   tags=base.tags, not_tags=base.not_tags,        # Nova's tag filters (2.26)
                   tags_any=q.get("tags-any") or None, not_tags_any=q.get("not-tags-any") or None)


async def _page(request: Request, ctx: Ctx, detail: bool) -> dict[str, Any]:
    limit = _limit(request)
    marker = request.query_params.get("marker") or None
    rows, more = await ctx.services.store.run(list_servers_after, ctx.ident.project_id, limit, marker,
                                              _filters(request))
    base = ctx.services.settings.endpoint
    pid = ctx.ident.project_id
    if detail:
        items = await nova_server_views(ctx, rows)
    else:
        items = [{"id": r["id"], "name": r["name"], "links": server_links(base, pid, r["id"])} for r in rows]
    body: dict[str, Any] = {"servers": items}
    if more and rows:
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("marker", "limit")]
        params += [("limit", str(limit)), ("marker", rows[-1]["id"])]
        path = "servers/detail" if detail else "servers"
        body["servers_links"] = [{"rel": "next", "href": f"{base}/v2.1/{pid}/{path}?{urlencode(params)}"}]
    return body


@endpoint(ok=200, query=LIST_QUERY)
async def list_servers(request: Request, ctx: Ctx) -> Response:
    return json(await _page(request, ctx, detail=False))


@endpoint(ok=200, query=LIST_QUERY)
async def list_servers_detail(request: Request, ctx: Ctx) -> Response:
    return json(await _page(request, ctx, detail=True))


@endpoint(ok=200, errors=404)
async def show_server(request: Request, ctx: Ctx) -> Response:
    row = await ctx.services.store.run(srv.load, ctx.ident.project_id, request.path_params["server_id"])
    return json({"server": (await nova_server_views(ctx, [row]))[0]})


def _ips(addresses: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {net: [{"version": int(a["version"]), "addr": a["addr"]} for a in items] for net, items in addresses.items()}


@endpoint(ok=200, errors=404)
async def server_ips(request: Request, ctx: Ctx) -> Response:
    """``GET /servers/{id}/ips``: the addresses by network."""
    row = await ctx.services.store.read(srv.load, ctx.ident.project_id, request.path_params["server_id"])
    return json({"addresses": _ips(row["addresses"])})


@endpoint(ok=200, errors=404)
async def server_ips_of_network(request: Request, ctx: Ctx) -> Response:
    """``GET /servers/{id}/ips/{network}``: one network's addresses; another network is 404 Common.0404."""
    row = await ctx.services.store.read(srv.load, ctx.ident.project_id, request.path_params["server_id"])
    network = request.path_params["network"]
    ips = _ips(row["addresses"])
    if network not in ips:
        raise EcsError("Common.0404", f"server {row['id']} has no addresses on network {network}")
    return json({network: ips[network]})


@endpoint(ok=200)
async def availability_zones(request: Request, ctx: Ctx) -> Response:
    """``GET /os-availability-zone``: the zones a server may be created in."""
    return json({"availabilityZoneInfo": [{"zoneState": {"available": True}, "hosts": None, "zoneName": az}
                                          for az in lifecycle.AVAILABILITY_ZONES]})


# --- actions ------------------------------------------------------------------------------------------------

class RebuildArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    imageRef: str
    name: str | None = Field(default=None, min_length=1, max_length=128)
    adminPass: str | None = Field(default=None, max_length=64)
    key_name: str | None = Field(default=None, min_length=1, max_length=64)
    user_data: str | None = Field(default=None, max_length=64 * 1024)
    description: str | None = Field(default=None, max_length=85)


def _no_args(action: str, args: Any) -> None:
    if args is not None and args != {}:
        raise invalid(f"{action} takes no arguments (null or {{}})")


def _power_type(action: str, args: Any, mandatory: bool) -> bool:
    """The ``type`` of os-stop (optional, default SOFT) or reboot (mandatory): True for HARD."""
    if args is None and not mandatory:
        return False
    if not isinstance(args, dict):
        raise invalid(f"{action} must be an object")
    unknown = set(args) - {"type"}
    if unknown:
        raise invalid(f"{action}: unknown field {min(unknown)}")
    kind = args.get("type")
    if kind is None and not mandatory:
        return False
    if kind not in ("SOFT", "HARD"):
        raise invalid(f'{action}.type must be "SOFT" or "HARD"')
    return kind == "HARD"


def _lock_args(args: Any) -> None:
    if args is None or args == {}:
        return
    if not isinstance(args, dict) or set(args) != {"locked_reason"} or not isinstance(args["locked_reason"], str):
        raise invalid("lock takes null, {} or {\"locked_reason\": \"...\"}")


async def _lock(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    if action == "lock":
        _lock_args(args)
    else:
        _no_args(action, args)
    await ctx.services.store.run(batch.set_locked, ctx.ident, server_id, action == "lock")
    return Response(status_code=202)


async def _power(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    if action == "os-start":
        _no_args(action, args)
        hard = False
    elif action == "os-stop":
        hard = _power_type(action, args, mandatory=False)
    else:
        hard = _power_type(action, args, mandatory=True)
    await ctx.services.store.run(batch.accept_server_action, ctx.ident, server_id, action, hard=hard)
    ctx.services.submitted()
    return Response(status_code=202)


async def _console_output(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    if args is not None and not isinstance(args, dict):
        raise invalid(f"{action} must be an object")
    unknown = set(args or {}) - {"length"}
    if unknown:
        raise invalid(f"{action}: unknown field {min(unknown)}")
    length = consoles.parse_length((args or {}).get("length"))
    output = await consoles.console_output(ctx.services.store, ctx.services.driver, ctx.ident, server_id, length)
    return json({"output": output})


async def _security_group(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    if not isinstance(args, dict) or set(args) != {"name"} or not isinstance(args["name"], str):
        raise invalid(f'{action} takes {{"name": "..."}}')
    await ctx.services.store.run(security_groups.change_membership, ctx.ident.project_id, server_id,
                                 action == "addSecurityGroup", args["name"])
    return Response(status_code=202)


async def _rebuild_action(ctx: Ctx, server_id: str, _action: str, args: Any) -> Response:
    return await _rebuild(ctx, server_id, args)


# The actions of POST /v2.1/{project_id}/servers/{server_id}/action this service carries out
# (scripts/api_coverage.py reads the names: an action of the reference missing here is "missing").
ACTIONS = {
    "os-start": _power, "os-stop": _power, "reboot": _power, "lock": _lock, "unlock": _lock,
    "rebuild": _rebuild_action, "os-getConsoleOutput": _console_output,
    "addSecurityGroup": _security_group, "removeSecurityGroup": _security_group,
}

# The arguments each action takes, as a JSON Schema (GET /openapi.json; tests/test_openapi.py checks
# that every action of ACTIONS has one).
_NO_ARGS = {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]}
_POWER_TYPE = {"type": "string", "enum": ["SOFT", "HARD"]}
_GROUP = {"type": "object", "required": ["name"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}}}
ACTION_ARGS: dict[str, Any] = {
    "os-start": _NO_ARGS,
    "os-stop": {"anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": False,
                                             "properties": {"type": _POWER_TYPE}}]},
    "reboot": {"type": "object", "required": ["type"], "additionalProperties": False,
               "properties": {"type": _POWER_TYPE}},
    "lock": {"anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": False,
                                          "properties": {"locked_reason": {"type": "string"}}}]},
    "unlock": _NO_ARGS,
    "rebuild": RebuildArgs,
    "os-getConsoleOutput": {"anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": False, "properties": {
        "length": {"anyOf": [{"type": "integer", "minimum": -1}, {"type": "string", "pattern": "^-?[0-9]+$"}]}}}]},
    "addSecurityGroup": _GROUP,
    "removeSecurityGroup": _GROUP,
}
# Actions served by their family's own module: resize / confirmResize / revertResize (http/resize.py),
# os-getVNCConsole and createImage (http/consoles.py); each module exports NOVA_ACTIONS and NOVA_ACTION_ARGS.
for _family in (resize, consoles_http):
    ACTIONS.update(_family.NOVA_ACTIONS)
    ACTION_ARGS.update(_family.NOVA_ACTION_ARGS)
ACTION_BODY = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
               "properties": ACTION_ARGS}


@endpoint(ok=(200, 202, 204), empty=(202, 204), body=ACTION_BODY, errors=404)  # 200: console output; 204: confirmResize
async def server_action(request: Request, ctx: Ctx) -> Response:
    data = await read_json(request, ctx.services.settings.max_body_bytes)
    if not isinstance(data, dict) or len(data) != 1:
        raise invalid("the body must name exactly one action")
    (action, args), = data.items()
    handler = ACTIONS.get(action)
    if handler is None:
        raise invalid(f"unknown or unsupported action {action!r}")
    return await handler(ctx, request.path_params["server_id"], action, args)


async def _rebuild(ctx: Ctx, server_id: str, args: Any) -> Response:
    body = parse(RebuildArgs, args)
    if not is_uuid(body.imageRef):
        raise invalid("rebuild.imageRef must be an image UUID")
    if body.user_data is not None:
        changeos.decode_user_data(body.user_data)
    req = changeos.OsChange(reinstall=False, cloud_init=body.user_data is not None, image_id=body.imageRef,
                            keyname=body.key_name, userid=None, adminpass=body.adminPass,
                            mode=changeos.WITH_STOP_SERVER, byol=False, user_data=body.user_data,
                            encrypted=False, cmk_id=None, nova_rebuild=True)

    def run(conn):
        if body.name is not None or body.description is not None:
            srv.update_details(conn, ctx.ident.project_id, server_id, body.name, body.description)
        changeos.accept(conn, ctx.ident, server_id, req, ctx.services.driver)
        return srv.load(conn, ctx.ident.project_id, server_id)

    row = await ctx.services.store.run(run)
    ctx.services.submitted()
    return json({"server": (await nova_server_views(ctx, [row]))[0]}, status=202)


# The list routes come before /servers/{server_id}, so that "detail" is never taken for an id.
routes = [
    Route("/v2.1/{project_id}/servers", list_servers, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/detail", list_servers_detail, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}", show_server, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/action", server_action, methods=["POST"]),
    Route("/v2.1/{project_id}/servers/{server_id}/ips", server_ips, methods=["GET"]),
    Route("/v2.1/{project_id}/os-availability-zone", availability_zones, methods=["GET"]),
    Route("/v2.1/{project_id}/servers/{server_id}/ips/{network}", server_ips_of_network, methods=["GET"]),
]
