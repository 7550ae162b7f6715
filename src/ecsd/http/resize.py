"""Resize over HTTP: parse, call ``domain.resize``, shape the answer.

    POST /v1/{project_id}/cloudservers/{server_id}/resize     {"job_id"}; a dry run 202 {}
    POST /v1.1/{project_id}/cloudservers/{server_id}/resize   the same (the SDK's ResizeServer; its
                                                               ResizePostPaidServer takes the /v1 path)
    GET  /v1/{project_id}/cloudservers/resize_flavors          {"flavors": [...]} (the SDK's path)
    GET  /v2.1/{project_id}/resize_flavors                     the same (the reference's path)
    POST /v2.1/{project_id}/servers/{server_id}/action         resize 202, confirmResize 204, revertResize 202
                                                               (dispatched by http/nova.py)

References: apis_recommended/status_management/modifying_the_specifications_of_an_ecs.rst,
apis_recommended/flavor_management/querying_the_target_flavors_to_which_an_ecs_flavor_can_be_changed.rst,
native_openstack_nova_apis/status_management/ (modifying, confirming, rolling back specifications).

The v1 body is validated strictly (Ecs.0005): the reference's ``flavorRef``, ``mode`` and ``dry_run``
plus what the SDK's ResizePrePaidServerOption sends (``dedicated_host_id``: refused, this region has
no dedicated hosts; ``extendparam.isAutoPay`` and ``cpu_options``: accepted, nothing to pay or pin).
Nova's ``flavorRef`` may be a flavor id or its URL.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import resize
from ecsd.domain.errors import invalid
from ecsd.http.core import Ctx, accept_or_dry_run, capped_limit, endpoint, json, parse, read_json
from ecsd.http.flavors import v1_view

_STRICT = ConfigDict(extra="forbid", strict=True)
MAX_LIMIT = 1000


class ExtendParam(BaseModel):
    model_config = _STRICT
    isAutoPay: str | bool | None = None


class CpuOptions(BaseModel):
    model_config = _STRICT
    cpu_threads: int | None = Field(default=None, alias="hw:cpu_threads", ge=1, le=2)


class ResizeOption(BaseModel):
    model_config = _STRICT
    flavorRef: str = Field(min_length=1, max_length=64)
    mode: Literal["withStopServer"] | None = None        # changeos.WITH_STOP_SERVER
    dedicated_host_id: str | None = None
    extendparam: ExtendParam | None = None
    cpu_options: CpuOptions | None = None


class ResizeBody(BaseModel):
    model_config = _STRICT
    resize: ResizeOption
    dry_run: bool = False


class NovaResizeArgs(BaseModel):
    model_config = _STRICT
    flavorRef: str = Field(min_length=1, max_length=255)
    disk_config: str | None = Field(default=None, alias="OS-DCF:diskConfig", pattern="^(AUTO|MANUAL)$")



@endpoint(ok=(200, 202), body=ResizeBody, errors=404)    # 202: a dry run
async def resize_server(request: Request, ctx: Ctx) -> Response:
    body = parse(ResizeBody, await read_json(request, ctx.services.settings.max_body_bytes))
    if body.resize.dedicated_host_id is not None:
        raise invalid("resize.dedicated_host_id: this region has no dedicated hosts")
    req = resize.Resize(flavor_id=body.resize.flavorRef, mode=body.resize.mode)

    job_id = await accept_or_dry_run(ctx, body.dry_run, resize.accept, ctx.ident, request.path_params["server_id"],
                                     req)
    if job_id is None:
        return json({}, status=202)
    ctx.services.submitted()
    return json({"job_id": job_id})


_LIST_QUERY = {"instance_uuid": str, "source_flavor_id": str, "source_flavor_name": str, "sort_key": str,
               "sort_dir": str, "limit": int, "marker": str}


def _view(flavor: dict[str, Any], base: str, project_id: str) -> dict[str, Any]:
    view = v1_view(flavor, base, project_id)
    view["extra_specs"] = view.pop("os_extra_specs")
    del view["attachableQuantity"]
    return view


@endpoint(ok=200, query=_LIST_QUERY, errors=404)
async def list_resize_flavors(request: Request, ctx: Ctx) -> Response:
    q = request.query_params
    found = await ctx.services.store.run(
        resize.list_targets, ctx.ident, instance_uuid=q.get("instance_uuid") or None,
        source_flavor_id=q.get("source_flavor_id") or None, source_flavor_name=q.get("source_flavor_name") or None,
        sort_key=q.get("sort_key") or "flavorid", sort_dir=(q.get("sort_dir") or "asc").lower(),
        limit=capped_limit(request, MAX_LIMIT, MAX_LIMIT), marker=q.get("marker") or None)
    base, pid = ctx.services.settings.endpoint, ctx.ident.project_id
    return json({"flavors": [_view(f, base, pid) for f in found]})


# --- Nova actions (http/nova.py dispatches them) -------------------------------------------------------------

def _no_args(action: str, args: Any) -> None:
    if args is not None and args != {}:
        raise invalid(f"{action} takes no arguments (null or {{}})")


async def _resize(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    if not isinstance(args, dict):
        raise invalid(f"{action} must be an object")
    body = parse(NovaResizeArgs, args)
    flavor_id = body.flavorRef.rstrip("/").rpartition("/")[2]      # an id, or the flavor's URL
    await ctx.services.store.run(resize.accept, ctx.ident, server_id, resize.Resize(flavor_id, nova=True))
    ctx.services.submitted()
    return Response(status_code=202)


async def _confirm(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    _no_args(action, args)
    await ctx.services.store.run(resize.confirm, ctx.ident, server_id)
    return Response(status_code=204)


async def _revert(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    _no_args(action, args)
    await ctx.services.store.run(resize.accept_revert, ctx.ident, server_id)
    ctx.services.submitted()
    return Response(status_code=202)


_NO_ARGS = {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]}
NOVA_ACTIONS: dict = {"resize": _resize, "confirmResize": _confirm, "revertResize": _revert}
NOVA_ACTION_ARGS: dict = {"resize": NovaResizeArgs, "confirmResize": _NO_ARGS, "revertResize": _NO_ARGS}

routes = [
    Route("/v1/{project_id}/cloudservers/resize_flavors", list_resize_flavors, methods=["GET"]),
    Route("/v2.1/{project_id}/resize_flavors", list_resize_flavors, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/resize", resize_server, methods=["POST"]),
    Route("/v1.1/{project_id}/cloudservers/{server_id}/resize", resize_server, methods=["POST"]),
]
