"""Server metadata over HTTP, the v1 update and the native (Nova) metadata API (domain/metadata.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import metadata
from ecsd.domain.errors import invalid
from ecsd.http.core import Ctx, endpoint, json, no_content, read_json


async def _body(request: Request, ctx: Ctx, field: str) -> Any:
    body = await read_json(request, ctx.services.settings.max_body_bytes)
    if not isinstance(body, dict) or field not in body:
        raise invalid(f"the body must be {{\"{field}\": {{...}}}}")
    if set(body) != {field}:
        raise invalid(f"unknown field(s) beside {field}: {', '.join(sorted(set(body) - {field}))}")
    return metadata.check_pairs(body[field])


def _pairs_body(field: str) -> dict[str, Any]:
    """The JSON Schema of the bodies _body reads (for GET /openapi.json)."""
    pair = {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_:.-]{1,255}$"},
            "additionalProperties": {"type": "string", "maxLength": 255}}
    return {"type": "object", "required": [field], "additionalProperties": False, "properties": {field: pair}}


def _ids(request: Request, ctx: Ctx) -> tuple[str, str]:
    return ctx.ident.project_id, request.path_params["server_id"]


@endpoint(ok=200, body=_pairs_body("metadata"), errors=404)
async def merge(request: Request, ctx: Ctx) -> Response:
    pairs = await _body(request, ctx, "metadata")
    return json({"metadata": await ctx.services.store.run(metadata.merge, *_ids(request, ctx), pairs)})


@endpoint(ok=200, body=_pairs_body("metadata"), errors=404)
async def replace(request: Request, ctx: Ctx) -> Response:
    pairs = await _body(request, ctx, "metadata")
    return json({"metadata": await ctx.services.store.run(metadata.replace, *_ids(request, ctx), pairs)})


@endpoint(ok=200, errors=404)
async def show_all(request: Request, ctx: Ctx) -> Response:
    return json({"metadata": await ctx.services.store.read(metadata.get_all, *_ids(request, ctx))})


@endpoint(ok=200, errors=404)
async def show_one(request: Request, ctx: Ctx) -> Response:
    key = request.path_params["key"]
    return json({"meta": {key: await ctx.services.store.read(metadata.get_one, *_ids(request, ctx), key)}})


@endpoint(ok=200, body=_pairs_body("meta"), errors=404)
async def set_one(request: Request, ctx: Ctx) -> Response:
    key = request.path_params["key"]
    pairs = await _body(request, ctx, "meta")
    if list(pairs) != [key]:
        raise invalid(f"meta must hold exactly the key of the path ({key})")
    await ctx.services.store.run(metadata.merge, *_ids(request, ctx), pairs)
    return json({"meta": pairs})


@endpoint(ok=204, errors=404)
async def delete_one(request: Request, ctx: Ctx) -> Response:
    await ctx.services.store.run(metadata.delete, *_ids(request, ctx), request.path_params["key"])
    return no_content()


_NOVA = "/v2.1/{project_id}/servers/{server_id}/metadata"
routes = [
    Route("/v1/{project_id}/cloudservers/{server_id}/metadata", merge, methods=["POST"]),
    # Not in the reference; the Huawei SDK's delete_server_metadata calls it.
    Route("/v1/{project_id}/cloudservers/{server_id}/metadata/{key}", delete_one, methods=["DELETE"]),
    Route(_NOVA, show_all, methods=["GET"]),
    Route(_NOVA, merge, methods=["POST"]),
    Route(_NOVA, replace, methods=["PUT"]),
    Route(_NOVA + "/{key}", show_one, methods=["GET"]),
    Route(_NOVA + "/{key}", set_one, methods=["PUT"]),
    Route(_NOVA + "/{key}", delete_one, methods=["DELETE"]),
]
