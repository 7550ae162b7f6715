"""Server tags over HTTP: the v1 (two-dimensional, key/value) and the Nova (one-string) APIs.

    POST   /v1/{project_id}/cloudservers/{server_id}/tags/action     batch create / delete -> 204
           (apis_recommended/tag_management/adding_tags_to_an_ecs_in_a_batch.rst, deleting_tags_...rst)
    GET    /v1/{project_id}/cloudservers/{server_id}/tags            {"tags": [{key, value}]}
    GET    /v1/{project_id}/cloudservers/tags                        {"tags": [{key, values}]} (project)
    POST   /v1/{project_id}/cloudservers/resource_instances/action   filter | count (querying_ecss_by_tag.rst;
           the path of the Huawei SDK's list_servers_by_tag; the reference's page says /servers/...)
    POST   /v1/{project_id}/servers/resource_instances/action        the same, at the reference's path
    POST   /v1/{project_id}/servers/{server_id}/tags/action          } the discarded v1 paths
    GET    /v1/{project_id}/servers/{server_id}/tags                 } (out-of-date_apis/tag_management),
    GET    /v1/{project_id}/servers/tags                             } served by the same handlers
    GET    /v2.1/{project_id}/servers/{server_id}/tags               {"tags": [...]}            } Nova,
    PUT    /v2.1/{project_id}/servers/{server_id}/tags               replace all -> {"tags"}    } micro-
    DELETE /v2.1/{project_id}/servers/{server_id}/tags               all -> 204                 } version
    GET    /v2.1/{project_id}/servers/{server_id}/tags/{tag}         204, or 404 Common.0404     } 2.26
    PUT    /v2.1/{project_id}/servers/{server_id}/tags/{tag}         201 (new) or 204 (had it)   } (else 404)
    DELETE /v2.1/{project_id}/servers/{server_id}/tags/{tag}         204, or 404 Common.0404     }

The rules and their codes are in domain/tags.py. Malformed bodies (wrong types, unknown fields, a
create without ``value``) are Ecs.0005.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import tags
from ecsd.domain.errors import EcsError, invalid
from ecsd.http.core import NO_BODY, Ctx, endpoint, json, no_content, parse, read_json
from ecsd.http.keypairs import MICROVERSION_HEADERS, compute_microversion

_STRICT = ConfigDict(extra="forbid", strict=True)
NOVA_TAGS_MICROVERSION = (2, 26)


# --- models -------------------------------------------------------------------------------------------

class _TagIn(BaseModel):
    model_config = _STRICT
    key: str
    value: str | None = None


class TagsAction(BaseModel):
    """The body of ``tags/action``: the SDK's BatchCreateServerTagsRequestBody / BatchDeleteServerTagsRequestBody."""

    model_config = _STRICT
    action: Literal["create", "delete"]
    tags: list[_TagIn]

    def to_create(self) -> list[tags.Tag]:
        missing = [t.key for t in self.tags if t.value is None]
        if missing:
            raise invalid(f"tags[].value is required to create a tag (key {missing[0]})")
        return [tags.Tag(t.key, t.value or "") for t in self.tags]

    def to_delete(self) -> list[tuple[str, str | None]]:
        return [(t.key, t.value) for t in self.tags]


class _TagFilter(BaseModel):
    model_config = _STRICT
    key: str = Field(min_length=1, max_length=127)
    values: list[str] | None = None


class _Match(BaseModel):
    model_config = _STRICT
    key: Literal["resource_name"]
    value: str = Field(min_length=1, max_length=255)


class ServersByTag(BaseModel):
    """The body of ``resource_instances/action`` (the SDK's ListServersByTagRequestBody, with the
    ``tags_any`` / ``not_tags_any`` of the Tag Management Service beside it)."""

    model_config = _STRICT
    action: Literal["filter", "count"]
    limit: str | int | None = None
    offset: str | int | None = None
    tags: list[_TagFilter] | None = None
    tags_any: list[_TagFilter] | None = None
    not_tags: list[_TagFilter] | None = None
    not_tags_any: list[_TagFilter] | None = None
    matches: list[_Match] | None = None

    def to_domain(self) -> tags.TagQuery:
        lists = {name: _filters(name, getattr(self, name)) for name in ("tags", "tags_any", "not_tags", "not_tags_any")}
        matches = self.matches or []
        if len(matches) > 1:
            raise invalid("matches: the key resource_name may be given once")
        count_only = self.action == "count"
        return tags.TagQuery(
            count_only=count_only, **lists, name=matches[0].value if matches else None,
            limit=1000 if count_only else _number("limit", self.limit, 1000, 1000),
            offset=0 if count_only else _number("offset", self.offset, 0, None))


def _filters(name: str, given: list[_TagFilter] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """One tag list of the query; a key twice, or a value twice under one key, is Ecs.0005."""
    out = []
    for f in given or []:
        values = tuple(f.values or ())
        if any(k == f.key for k, _ in out):
            raise invalid(f"{name}: the key {f.key} is given twice")
        if len(set(values)) != len(values):
            raise invalid(f"{name}: a value of key {f.key} is given twice")
        if any(len(v) > 255 for v in values):
            raise invalid(f"{name}: a value of key {f.key} has more than 255 characters")
        out.append((f.key, values))
    return tuple(out)


def _number(name: str, raw: str | int | None, default: int, maximum: int | None) -> int:
    """``limit`` / ``offset``: a string (or integer) of a number from 0 (to ``maximum``); else Ecs.0005."""
    if raw is None:
        return default
    text = str(raw)
    if not text.isascii() or not text.isdigit():
        raise invalid(f"{name} must be a number that is not negative")
    value = int(text)
    if maximum is not None and value > maximum:
        raise invalid(f"{name} must be at most {maximum}")
    return value


class NovaTagsIn(BaseModel):
    model_config = _STRICT
    tags: list[str]


# --- v1 ---------------------------------------------------------------------------------------------

def _ids(request: Request, ctx: Ctx) -> tuple[str, str]:
    return ctx.ident.project_id, request.path_params["server_id"]


def _pair(t: tags.Tag) -> dict[str, str]:
    return {"key": t.key, "value": t.value}


@endpoint(ok=204, body=TagsAction, errors=404)
async def batch_server_tags_action(request: Request, ctx: Ctx) -> Response:
    """``action: create`` (batch_create_server_tags) or ``action: delete`` (batch_delete_server_tags)."""
    body = parse(TagsAction, await read_json(request, ctx.services.settings.max_body_bytes))
    if body.action == "create":
        await ctx.services.store.run(tags.batch_create_server_tags, *_ids(request, ctx),
                                     tags.check_v1_create(body.to_create()))
    else:
        await ctx.services.store.run(tags.batch_delete_server_tags, *_ids(request, ctx),
                                     tags.check_v1_delete(body.to_delete()))
    return no_content()


@endpoint(ok=200, errors=404)
async def show_server_tags(request: Request, ctx: Ctx) -> Response:
    found = await ctx.services.store.read(tags.show_server_tags, *_ids(request, ctx))
    return json({"tags": [_pair(t) for t in found]})


@endpoint(ok=200)
async def list_server_tags(request: Request, ctx: Ctx) -> Response:
    """The project's tags (the SDK's list_server_tags)."""
    found = await ctx.services.store.read(tags.list_project_tags, ctx.ident.project_id)
    return json({"tags": [{"key": key, "values": values} for key, values in found]})


@endpoint(ok=200, body=ServersByTag)
async def list_servers_by_tag(request: Request, ctx: Ctx) -> Response:
    query = parse(ServersByTag, await read_json(request, ctx.services.settings.max_body_bytes)).to_domain()
    total, found = await ctx.services.store.read(tags.list_servers_by_tag, ctx.ident.project_id, query)
    if query.count_only:
        return json({"total_count": total})
    return json({"resources": [{"resource_id": sid, "resource_detail": None, "resource_name": name,
                                "tags": [_pair(t) for t in pairs]} for sid, name, pairs in found],
                 "total_count": total})


# --- Nova (2.26) --------------------------------------------------------------------------------------

def _nova(request: Request) -> None:
    """Nova serves its tag API from microversion 2.26; asked for an older one, the route is not there."""
    version = compute_microversion(request)
    if version is None or version < NOVA_TAGS_MICROVERSION:
        raise EcsError("Common.0404", "server tags need compute microversion 2.26 or later "
                                      "(X-OpenStack-Nova-API-Version: 2.26)")


@endpoint(ok=200, headers=MICROVERSION_HEADERS, errors=404)
async def nova_list_server_tags(request: Request, ctx: Ctx) -> Response:
    _nova(request)
    return json({"tags": await ctx.services.store.read(tags.nova_tags, *_ids(request, ctx))})


@endpoint(ok=200, body=NovaTagsIn, headers=MICROVERSION_HEADERS, errors=404)
async def nova_replace_server_tags(request: Request, ctx: Ctx) -> Response:
    _nova(request)
    body = parse(NovaTagsIn, await read_json(request, ctx.services.settings.max_body_bytes))
    shown = await ctx.services.store.run(tags.replace_nova_tags, *_ids(request, ctx),
                                         tags.check_nova_tags(body.tags))
    return json({"tags": shown})


@endpoint(ok=204, headers=MICROVERSION_HEADERS, errors=404)
async def nova_delete_server_tags(request: Request, ctx: Ctx) -> Response:
    _nova(request)
    await ctx.services.store.run(tags.delete_nova_tags, *_ids(request, ctx))
    return no_content()


@endpoint(ok=204, headers=MICROVERSION_HEADERS, errors=404)
async def nova_show_server_tag(request: Request, ctx: Ctx) -> Response:
    _nova(request)
    await ctx.services.store.read(tags.check_nova_tag_exists, *_ids(request, ctx), request.path_params["tag"])
    return no_content()


@endpoint(ok=(201, 204), body=NO_BODY, headers=MICROVERSION_HEADERS, errors=404)
async def nova_add_server_tag(request: Request, ctx: Ctx) -> Response:
    """201 with the reference's JSON body when the tag is new (and Nova's Location), 204 when it was there."""
    _nova(request)
    tag = tags.check_nova_tag(request.path_params["tag"])
    if not await ctx.services.store.run(tags.add_nova_tag, *_ids(request, ctx), tag):
        return no_content()
    return json({"message": "<br /><br />\n\n\n", "code": "201 Created", "title": "Created"}, status=201,
                headers={"Location": str(request.url)})


@endpoint(ok=204, headers=MICROVERSION_HEADERS, errors=404)
async def nova_delete_server_tag(request: Request, ctx: Ctx) -> Response:
    _nova(request)
    await ctx.services.store.run(tags.delete_nova_tag, *_ids(request, ctx), request.path_params["tag"])
    return no_content()


_NOVA = "/v2.1/{project_id}/servers/{server_id}/tags"
routes = [
    Route("/v1/{project_id}/cloudservers/tags", list_server_tags, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/resource_instances/action", list_servers_by_tag, methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/tags", show_server_tags, methods=["GET"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/tags/action", batch_server_tags_action, methods=["POST"]),
    Route("/v1/{project_id}/servers/resource_instances/action", list_servers_by_tag, methods=["POST"]),
    Route("/v1/{project_id}/servers/tags", list_server_tags, methods=["GET"]),
    Route("/v1/{project_id}/servers/{server_id}/tags", show_server_tags, methods=["GET"]),
    Route("/v1/{project_id}/servers/{server_id}/tags/action", batch_server_tags_action, methods=["POST"]),
    Route(_NOVA, nova_list_server_tags, methods=["GET"]),
    Route(_NOVA, nova_replace_server_tags, methods=["PUT"]),
    Route(_NOVA, nova_delete_server_tags, methods=["DELETE"]),
    Route(_NOVA + "/{tag}", nova_show_server_tag, methods=["GET"]),
    Route(_NOVA + "/{tag}", nova_add_server_tag, methods=["PUT"]),
    Route(_NOVA + "/{tag}", nova_delete_server_tag, methods=["DELETE"]),
]
