"""Nova key pair endpoints (``/v2.1/{project_id}/os-keypairs``), scoped to the calling user.

* ``POST   /v2.1/{project_id}/os-keypairs``                 create or import -> 200
* ``GET    /v2.1/{project_id}/os-keypairs``                 list (``limit``, ``marker``) -> 200
* ``GET    /v2.1/{project_id}/os-keypairs/{keypair_name}``  show -> 200, unknown -> 404
* ``DELETE /v2.1/{project_id}/os-keypairs/{keypair_name}``  delete -> 204 (202 if the request asks
  for a compute microversion below 2.2, as Nova answers there), unknown -> 404

A ``user_id`` in the body (create) or query (list, show, delete) may only name the caller: key
pairs of other users are never reachable, so another id is refused with 403 ``Ecs.0003``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import clock
from ecsd.domain import keypairs as kp
from ecsd.domain.errors import EcsError, invalid
from ecsd.http.core import Ctx, Param, endpoint, json, no_content, parse, query_int, read_json

LIST_LIMIT_MAX = 1000
_USER = {"user_id": Param(str, description="Only the caller's own id (another: 403 Ecs.0003).")}
# The headers compute_microversion (and flavors.microversion) read.
MICROVERSION_HEADERS = {"OpenStack-API-Version": str, "X-OpenStack-Nova-API-Version": str}


class _KeypairIn(BaseModel):
    # Nova's schema forbids unknown members of "keypair"; strict: no "1" -> 1 style coercion.
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    public_key: str | None = None
    type: str | None = None
    user_id: str | None = None


class CreateKeypair(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    keypair: _KeypairIn


# --- helpers --------------------------------------------------------------------------------------------

def compute_microversion(request: Request) -> tuple[int, int] | None:
    """The compute microversion the client asked for, or None (none given, or not understood).

    ``OpenStack-API-Version: compute X.Y`` wins over ``X-OpenStack-Nova-API-Version: X.Y``;
    ``latest`` counts as the newest.
    """
    value = None
    for part in request.headers.get("openstack-api-version", "").split(","):
        words = part.split()
        if len(words) == 2 and words[0].lower() == "compute":
            value = words[1]
    if value is None:
        value = request.headers.get("x-openstack-nova-api-version")
    if not value:
        return None
    value = value.strip().lower()
    if value == "latest":
        return (2, 10**6)
    major, dot, minor = value.partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def owner(ctx: Ctx, requested: str | None) -> str:
    """The user whose key pairs a call works on: always the caller."""
    mine = ctx.ident.user_id
    if requested and requested != mine:
        raise EcsError("Ecs.0003", "key pairs of another user cannot be managed; user_id must be your own")
    return mine


def _query_user(request: Request) -> str | None:
    return request.query_params.get("user_id")


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {"fingerprint": row["fingerprint"], "name": row["name"], "type": row["type"],
            "public_key": row["public_key"]}


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    return {"public_key": row["public_key"], "name": row["name"], "fingerprint": row["fingerprint"],
            "created_at": clock.iso_us(row["created_at"]), "deleted": False, "deleted_at": None,
            "id": row["id"], "updated_at": None, "user_id": row["user_id"], "type": row["type"]}


# --- handlers ----------------------------------------------------------------------------------------------

@endpoint(ok=200, body=CreateKeypair, errors=(403, 409))
async def create_keypair(request: Request, ctx: Ctx) -> Response:
    body = parse(CreateKeypair, await read_json(request, ctx.services.settings.max_body_bytes)).keypair
    user_id = owner(ctx, body.user_id)
    kp.check_name(body.name)
    key_type = body.type if body.type is not None else "ssh"
    kp.check_type(key_type)
    store = ctx.services.store
    private_key = None
    if body.public_key is not None:
        public_key, fingerprint = kp.parse_public_key(body.public_key, key_type)
    else:
        await store.run(kp.check_can_add, user_id, body.name)  # fail fast before generating a key
        public_key, private_key, fingerprint = await run_in_threadpool(kp.generate, key_type, body.name)
    row = await store.run(kp.add_keypair, user_id, body.name, key_type, public_key, fingerprint)
    out = {"name": row["name"], "public_key": row["public_key"], "fingerprint": row["fingerprint"],
           "user_id": row["user_id"], "type": row["type"]}
    if private_key is not None:
        out["private_key"] = private_key
    return json({"keypair": out})


@endpoint(ok=200, query={**_USER, "limit": int, "marker": str}, errors=403)
async def list_keypairs(request: Request, ctx: Ctx) -> Response:
    user_id = owner(ctx, _query_user(request))
    limit: int | None = query_int(request, "limit", 0, 1, LIST_LIMIT_MAX)
    if limit == 0:  # not given: everything (a user holds at most kp.QUOTA key pairs)
        limit = None
    marker = request.query_params.get("marker")
    if marker == "":
        raise invalid("marker must not be empty")
    rows, more = await ctx.services.store.run(kp.list_keypairs, user_id, limit, marker)
    out: dict[str, Any] = {"keypairs": [{"keypair": _summary(r)} for r in rows]}
    if more and rows:
        project_id = request.path_params["project_id"]
        query = urlencode({"limit": limit, "marker": rows[-1]["name"]})
        href = f"{ctx.services.settings.endpoint}/v2.1/{project_id}/os-keypairs?{query}"
        out["keypairs_links"] = [{"href": href, "rel": "next"}]
    return json(out)


@endpoint(ok=200, query=_USER, errors=(403, 404))
async def show_keypair(request: Request, ctx: Ctx) -> Response:
    user_id = owner(ctx, _query_user(request))
    row = await ctx.services.store.run(kp.get_keypair, user_id, request.path_params["keypair_name"])
    return json({"keypair": _detail(row)})


@endpoint(ok=(202, 204), empty=202, query=_USER, headers=MICROVERSION_HEADERS, errors=(403, 404))
async def delete_keypair(request: Request, ctx: Ctx) -> Response:
    user_id = owner(ctx, _query_user(request))
    await ctx.services.store.run(kp.delete_keypair, user_id, request.path_params["keypair_name"])
    version = compute_microversion(request)
    return no_content(202 if version is not None and version < (2, 2) else 204)


routes = [
    Route("/v2.1/{project_id}/os-keypairs", create_keypair, methods=["POST"]),
    Route("/v2.1/{project_id}/os-keypairs", list_keypairs, methods=["GET"]),
    Route("/v2.1/{project_id}/os-keypairs/{keypair_name}", show_keypair, methods=["GET"]),
    Route("/v2.1/{project_id}/os-keypairs/{keypair_name}", delete_keypair, methods=["DELETE"]),
]
