"""Server groups (v1 and Nova) and a server's automatic recovery, over HTTP.

    POST   /v1/{project_id}/cloudservers/os-server-groups                          create -> 200
    GET    /v1/{project_id}/cloudservers/os-server-groups                          list (limit, marker) -> 200
    GET    /v1/{project_id}/cloudservers/os-server-groups/{server_group_id}        show -> 200
    DELETE /v1/{project_id}/cloudservers/os-server-groups/{server_group_id}        delete -> 204
    POST   /v1/{project_id}/cloudservers/os-server-groups/{server_group_id}/action add_member | remove_member -> 200
    POST   /v2.1/{project_id}/os-server-groups                                     creating_an_ecs_group.rst
    GET    /v2.1/{project_id}/os-server-groups                                     querying_ecs_groups.rst
    GET    /v2.1/{project_id}/os-server-groups/{server_group_id}      querying_details_about_an_ecs_group.rst
    DELETE /v2.1/{project_id}/os-server-groups/{server_group_id}      deleting_an_ecs_group.rst -> 204
    GET    /v1/{project_id}/cloudservers/{server_id}/autorecovery    querying_automatic_recovery_of_an_ecs_discarded.rst
    PUT    /v1/{project_id}/cloudservers/{server_id}/autorecovery    managing_automatic_recovery_of_an_ecs_discarded.rst

The Nova pages are under native_openstack_nova_apis/ecs_group_management/ of the reference, the
automatic-recovery ones under out-of-date_apis/status_management/. The v1 group paths are not in the
reference; they, their bodies and their answers are the Huawei SDK's (``CreateServerGroupRequestBody``,
``ListServerGroupsResponse``, ``AddServerGroupMemberRequestBody``, ...). Handlers are named after the
SDK's operations. The rules live in ``domain/server_groups.py``.

These literal paths sit beside ``/cloudservers/{server_id}``: this module's routes come before
``http/servers.py`` in ``app.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import server_groups as sg
from ecsd.domain.errors import invalid
from ecsd.http.core import Ctx, endpoint, json, no_content, parse, query_int, read_json
from ecsd.http.keypairs import MICROVERSION_HEADERS, compute_microversion

_STRICT = ConfigDict(extra="forbid", strict=True)
LIST_LIMIT_MAX = 1000


class _GroupIn(BaseModel):
    model_config = _STRICT
    name: str
    policies: list[str]


class CreateServerGroup(BaseModel):
    model_config = _STRICT
    server_group: _GroupIn


class _Member(BaseModel):
    model_config = _STRICT
    instance_uuid: str


class MemberAction(BaseModel):
    model_config = _STRICT
    add_member: _Member | None = None
    remove_member: _Member | None = None

    @model_validator(mode="after")
    def _one(self) -> MemberAction:
        if (self.add_member is None) == (self.remove_member is None):
            raise ValueError("give exactly one of add_member and remove_member")
        return self


class AutoRecovery(BaseModel):
    model_config = _STRICT
    support_auto_recovery: Literal["true", "false"]


# --- views ----------------------------------------------------------------------------------------------

def _view(group: dict[str, Any]) -> dict[str, Any]:
    """The v1 view (the SDK's CreateServerGroupResult / ShowServerGroupResult / ListServerGroupsResult)."""
    return {"id": group["id"], "name": group["name"], "policies": group["policies"], "members": group["members"],
            "metadata": {}}


def _nova_view(group: dict[str, Any], request: Request) -> dict[str, Any]:
    """Nova's view: project_id and user_id from microversion 2.13 (as the reference says)."""
    out = _view(group)
    version = compute_microversion(request)
    if version is not None and version >= (2, 13):
        out["project_id"] = group["project_id"]
        out["user_id"] = group["user_id"]
    return out


# --- v1 ------------------------------------------------------------------------------------------------------

async def _create(request: Request, ctx: Ctx) -> dict[str, Any]:
    body = parse(CreateServerGroup, await read_json(request, ctx.services.settings.max_body_bytes)).server_group
    return await ctx.services.store.run(sg.create_group, ctx.ident, body.name, body.policies)


@endpoint(ok=200, body=CreateServerGroup)
async def create_server_group(request: Request, ctx: Ctx) -> Response:
    return json({"server_group": _view(await _create(request, ctx))})


@endpoint(ok=200, query={"limit": int, "marker": str})
async def list_server_groups(request: Request, ctx: Ctx) -> Response:
    limit: int | None = query_int(request, "limit", 0, 1, LIST_LIMIT_MAX) or None    # not given: all
    marker = request.query_params.get("marker")
    if marker == "":
        raise invalid("marker must not be empty")
    groups, more = await ctx.services.store.read(sg.list_groups, ctx.ident.project_id, limit, marker)
    page_info = {"next_marker": groups[-1]["id"]} if more and groups else {}
    return json({"server_groups": [_view(g) for g in groups], "page_info": page_info})


@endpoint(ok=200, errors=404)
async def show_server_group(request: Request, ctx: Ctx) -> Response:
    group = await ctx.services.store.read(sg.get_group, ctx.ident.project_id, request.path_params["server_group_id"])
    return json({"server_group": _view(group)})


@endpoint(ok=204, errors=404)
async def delete_server_group(request: Request, ctx: Ctx) -> Response:
    await ctx.services.store.run(sg.delete_group, ctx.ident.project_id, request.path_params["server_group_id"])
    return no_content()


@endpoint(ok=200, empty=200, body=MemberAction, errors=404)
async def server_group_action(request: Request, ctx: Ctx) -> Response:
    """The SDK's ``add_server_group_member`` and ``delete_server_group_member`` (one path)."""
    body = parse(MemberAction, await read_json(request, ctx.services.settings.max_body_bytes))
    pid, group_id = ctx.ident.project_id, request.path_params["server_group_id"]
    if body.add_member is not None:
        await ctx.services.store.run(sg.add_member, pid, group_id, body.add_member.instance_uuid)
    else:
        assert body.remove_member is not None
        await ctx.services.store.run(sg.remove_member, pid, group_id, body.remove_member.instance_uuid)
    return no_content(200)


# --- Nova ----------------------------------------------------------------------------------------------------

@endpoint(ok=200, body=CreateServerGroup, headers=MICROVERSION_HEADERS)
async def nova_create_server_group(request: Request, ctx: Ctx) -> Response:
    return json({"server_group": _nova_view(await _create(request, ctx), request)})


@endpoint(ok=200, query={"limit": int, "offset": int}, headers=MICROVERSION_HEADERS)
async def nova_list_server_groups(request: Request, ctx: Ctx) -> Response:
    limit = query_int(request, "limit", LIST_LIMIT_MAX, 0, LIST_LIMIT_MAX)
    offset = query_int(request, "offset", 0, 0, 2**31 - 1)
    groups = await ctx.services.store.read(sg.list_groups_from, ctx.ident.project_id, limit, offset)
    return json({"server_groups": [_nova_view(g, request) for g in groups]})


@endpoint(ok=200, headers=MICROVERSION_HEADERS, errors=404)
async def nova_show_server_group(request: Request, ctx: Ctx) -> Response:
    group = await ctx.services.store.read(sg.get_group, ctx.ident.project_id, request.path_params["server_group_id"])
    return json({"server_group": _nova_view(group, request)})


# --- automatic recovery --------------------------------------------------------------------------------------

@endpoint(ok=200, errors=404)
async def show_server_auto_recovery(request: Request, ctx: Ctx) -> Response:
    enabled = await ctx.services.store.read(sg.auto_recovery, ctx.ident.project_id, request.path_params["server_id"])
    return json({"support_auto_recovery": "true" if enabled else "false"})


@endpoint(ok=204, body=AutoRecovery, errors=404)
async def update_server_auto_recovery(request: Request, ctx: Ctx) -> Response:
    body = parse(AutoRecovery, await read_json(request, ctx.services.settings.max_body_bytes))
    await ctx.services.store.run(sg.set_auto_recovery, ctx.ident.project_id, request.path_params["server_id"],
                                 body.support_auto_recovery == "true")
    return no_content()


_V1 = "/v1/{project_id}/cloudservers/os-server-groups"
_NOVA = "/v2.1/{project_id}/os-server-groups"

routes = [
    Route(_V1, create_server_group, methods=["POST"]),
    Route(_V1, list_server_groups, methods=["GET"]),
    Route(_V1 + "/{server_group_id}", show_server_group, methods=["GET"]),
    Route(_V1 + "/{server_group_id}", delete_server_group, methods=["DELETE"]),
    Route(_V1 + "/{server_group_id}/action", server_group_action, methods=["POST"]),
    Route(_NOVA, nova_create_server_group, methods=["POST"]),
    Route(_NOVA, nova_list_server_groups, methods=["GET"]),
    Route(_NOVA + "/{server_group_id}", nova_show_server_group, methods=["GET"]),
    Route(_NOVA + "/{server_group_id}", delete_server_group, methods=["DELETE"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/autorecovery", show_server_auto_recovery, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/autorecovery", update_server_auto_recovery, methods=["PUT"]),
]
