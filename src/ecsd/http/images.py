"""Image endpoints, three dialects over one catalogue.

* IMS ``GET /v2/cloudimages`` (what ``ImsClient.list_images`` calls): ``{"images": [...],
  "page_info": {"next_marker"?}}``. No project in the path: the caller's project is the token's;
  an ``X-Project-Id`` header, when sent, must name that project (else 400 ``Ecs.0023``).
* Glance v2 ``GET /v2/images`` and ``GET /v2/images/{image_id}`` (openstacksdk, openstackclient):
  the same image object; the list adds ``first``, ``schema`` and, when more follow, ``next``.
* The discarded Nova image proxy ``GET /v2.1/{project_id}/images[/detail]``,
  ``/images/{image_id}`` and ``/images/{image_id}/metadata``, and ``DELETE /images/{image_id}`` (as
  Glance's ``DELETE /v2/images/{image_id}``: a private image of the project, domain.delete_image): Nova field names, Nova status names
  (queued/saving -> SAVING, active -> ACTIVE, killed -> ERROR), ``images_links`` for paging.
* Nova ``createImage`` (an action of ``POST /v2.1/{project_id}/servers/{server_id}/action``, dispatched
  by http/nova.py through http/consoles.py's NOVA_ACTIONS; native_openstack_nova_apis/status_management/
  creating_an_image_using_an_ecs.rst): 202 with ``Location`` and ``{"image_id"}``; the rules are in
  ``domain/images.py`` (``create_from_server``).
* The token catalog's ``image`` endpoint is ``{base}/image``: ``GET /image`` is a Glance version
  document, and openstacksdk / python-openstackclient then use ``/image/v2/images[/{id}]`` (the
  same list and show). Without a root of its own, keystoneauth would discover Glance through
  ``GET /``, Nova's document, and land among Nova's ``/v2.1/{project_id}/...`` routes.

Choices made here:

* Every view carries every field the official IMS models know (``ImageInfo``,
  ``GlanceShowImageResponse``, ``GlanceShowImageListResponseBody``), typed as those models say:
  the Glance core (``min_disk``, ``min_ram``, ``size``, ``virtual_size`` integers, ``protected``
  and ``__system_support_market`` booleans) plus the IMS attributes, strings as IMS sends them
  (``"true"``/``"false"``, ``__os_bit`` ``"64"``, ``max_ram`` ``"0"``). The attribute values are
  derived in :func:`ecsd.domain.images.attributes` (docs/decisions.md, "Images and flavors"); the
  Nova views show the same attributes as ``metadata`` strings.
* Whether the image has Cloud-Init (Cloudbase-Init on Windows) is shown as
  ``__support_cloudinit`` (``"true"``/``"false"``), in the ``__support_*`` family of IMS flags. It
  can also be used as a list filter.
* Free-form ``properties`` of an image appear as further top-level attributes (IMS/Glance) or
  ``metadata`` entries (Nova). They never replace a column-backed or fixed attribute, but may
  override the defaults ``__support_xen`` (``"false"``: this cloud is KVM), ``__description``
  (``""``), ``__os_feature_list``, ``__support_agent_list`` and ``__image_displayname``.
  Properties starting with ``__ecsd`` belong to the drivers and appear in no view.
* ``checksum`` is a stable stand-in (MD5 of id and size): there are no image bytes to hash.
* An unknown, invisible or non-UUID image id is HTTP **404** with code ``Ecs.0031`` ("The image
  does not exist."): the reference gives Ecs.0031 with 400 for the ECS write APIs, but a read of
  a missing resource is a 404 for Glance and Nova clients (openstacksdk maps it to NotFound).
* Paging is by ``marker`` (an image id) and ``limit``. Defaults: IMS 500, Glance 25, Nova 1000.
  IMS rejects a ``limit`` outside 1..1000 with ``Ecs.0005``; Glance and Nova, as those services
  do, cap a larger limit at 1000 and reject only a negative or non-integer one. An unknown marker
  is ``Ecs.0005``. Default order: name, then id (IMS and Glance also take ``sort_key`` and
  ``sort_dir``); Nova lists use the same order.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import clock
from ecsd.domain import images as domain
from ecsd.domain.errors import EcsError, invalid
from ecsd.http.core import Ctx, Param, capped_limit, documented, endpoint, json, query_int

MAX_LIMIT = 1000
IMS_DEFAULT_LIMIT = 500
GLANCE_DEFAULT_LIMIT = 25
NOVA_DEFAULT_LIMIT = 1000

NOVA_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "deleted": "DELETED",
               "killed": "ERROR"}
NOVA_PROGRESS = {"queued": 25, "saving": 50, "active": 100}
# The query parameters (_base_query and domain.query_from_params read them) and headers of IMS and Glance.
QUERY = {"limit": int, "marker": str, "sort_key": str, "sort_dir": str, "protected": bool,
         **dict.fromkeys([*domain.STRING_FILTERS, *domain.CONSTANT_FILTERS], str),
         **dict.fromkeys(domain.BOOL_FILTERS, bool)}
PROJECT_HEADER = {"X-Project-Id": Param(str, description="With AK/SK: the project (signed); with a token: must "
                                                         "be the token's (else 400 Ecs.0023).")}
NOVA_QUERY = {"limit": int, "marker": str, "name": str, "status": str, "minDisk": int, "minRam": int,
              "changes-since": str}
# Nova status name (as a filter) -> the Glance statuses it covers.
NOVA_STATUS_FILTER = {"active": ("active",), "saving": ("queued", "saving"), "error": ("killed",),
                      "deleted": ("deleted",)}


# --- views -----------------------------------------------------------------------------------------

def image_view(image: dict[str, Any]) -> dict[str, Any]:
    """The IMS / Glance v2 image object: the typed Glance core and every IMS attribute (strings)."""
    iid = image["id"]
    view = domain.attributes(image)
    view.update({
        "id": iid,
        "name": image["name"],
        "status": image["status"],
        "visibility": image["visibility"],
        "owner": image["owner"] or "",
        "min_disk": image["min_disk"],
        "min_ram": image["min_ram"],
        "disk_format": image["disk_format"],
        "container_format": "bare",
        "size": image["size"],
        "virtual_size": domain.virtual_size(image),
        "checksum": hashlib.md5(f"{iid}:{image['size']}".encode()).hexdigest(),
        "protected": domain.is_protected(image),
        "tags": [],
        "created_at": clock.iso_s(image["created_at"]),
        "updated_at": clock.iso_s(image["updated_at"]),
        "self": f"/v2/images/{iid}",
        "file": f"/v2/images/{iid}/file",
        "schema": "/v2/schemas/image",
        "__system_support_market": domain.SUPPORT_MARKET,     # a boolean in the IMS model
    })
    return view


def _nova_links(base: str, project_id: str, image_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/v2.1/{project_id}/images/{image_id}"},
        {"rel": "bookmark", "href": f"{base}/{project_id}/images/{image_id}"},
        {"rel": "alternate", "type": "application/vnd.openstack.image", "href": f"{base}/v2/images/{image_id}"},
    ]


def nova_summary(image: dict[str, Any], base: str, project_id: str) -> dict[str, Any]:
    return {"id": image["id"], "name": image["name"], "links": _nova_links(base, project_id, image["id"])}


def nova_view(image: dict[str, Any], base: str, project_id: str) -> dict[str, Any]:
    status = image["status"]
    return {
        "id": image["id"],
        "name": image["name"],
        "status": NOVA_STATUS.get(status, "UNKNOWN"),
        "progress": NOVA_PROGRESS.get(status, 0),
        "minDisk": image["min_disk"],
        "minRam": image["min_ram"],
        "metadata": domain.attributes(image),
        "OS-EXT-IMG-SIZE:size": image["size"],
        "created": clock.iso_s(image["created_at"]),
        "updated": clock.iso_s(image["updated_at"]),
        "links": _nova_links(base, project_id, image["id"]),
    }


# --- request helpers -------------------------------------------------------------------------------

def _project(request: Request, ctx: Ctx) -> str:
    """The token's project; a signed ``X-Project-Id`` (Huawei SDK) must agree with it."""
    header = request.headers.get("x-project-id")
    if header:
        ctx.services.auth.check_project(ctx.ident, header)
    return ctx.ident.project_id


def _capped_limit(request: Request, default: int) -> int:
    """Glance and Nova: a limit above the maximum is lowered to it; a negative one is an error."""
    return capped_limit(request, default, MAX_LIMIT)


def _base_query(request: Request, *, default_limit: int, strict_limit: bool) -> domain.ImageQuery:
    params = request.query_params
    query = domain.query_from_params({k: v for k, v in params.items() if v != ""})
    if strict_limit:
        query.limit = query_int(request, "limit", default_limit, 1, MAX_LIMIT)
    else:
        query.limit = _capped_limit(request, default_limit)
    query.marker = params.get("marker") or None
    query.sort_key = params.get("sort_key") or "name"
    query.sort_dir = (params.get("sort_dir") or "asc").lower()
    return query


def _next_query(request: Request, marker: str) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
    items.append(("marker", marker))
    return urlencode(items)


def _not_found(image_id: str) -> EcsError:
    return EcsError("Ecs.0031", f"Image {image_id} could not be found.", status=404)


async def _page(ctx: Ctx, project_id: str, query: domain.ImageQuery) -> tuple[list[dict], bool]:
    query.requires_property = ctx.services.driver.boot_property      # only images this host can boot
    page, more = await ctx.services.store.run(domain.list_images, project_id, query)
    return page, more and bool(page)


async def _one(ctx: Ctx, project_id: str, image_id: str) -> dict[str, Any]:
    image = None
    if clock.is_uuid(image_id):
        image = await ctx.services.store.run(domain.visible_image, project_id, image_id)
    if image is None:
        raise _not_found(image_id)
    return image


# --- IMS -------------------------------------------------------------------------------------------

@endpoint(auth="token", ok=200, query=QUERY, headers=PROJECT_HEADER)
async def list_cloudimages(request: Request, ctx: Ctx):
    """``GET /v2/cloudimages``: the IMS image list."""
    project_id = _project(request, ctx)
    query = _base_query(request, default_limit=IMS_DEFAULT_LIMIT, strict_limit=True)
    page, more = await _page(ctx, project_id, query)
    page_info = {"next_marker": page[-1]["id"]} if more else {}
    return json({"images": [image_view(i) for i in page], "page_info": page_info})


# --- Glance v2 -------------------------------------------------------------------------------------

@endpoint(auth="token", ok=200, query=QUERY, headers=PROJECT_HEADER)
async def list_glance_images(request: Request, ctx: Ctx):
    """``GET /v2/images``: the Glance image list."""
    project_id = _project(request, ctx)
    query = _base_query(request, default_limit=GLANCE_DEFAULT_LIMIT, strict_limit=False)
    page, more = await _page(ctx, project_id, query)
    first = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "marker"])
    body: dict[str, Any] = {"images": [image_view(i) for i in page],
                            "first": "/v2/images" + (f"?{first}" if first else ""),
                            "schema": "/v2/schemas/images"}
    if more:
        body["next"] = "/v2/images?" + _next_query(request, page[-1]["id"])
    return json(body)


@endpoint(auth="token", ok=200, headers=PROJECT_HEADER, errors=404)
async def show_glance_image(request: Request, ctx: Ctx):
    """``GET /v2/images/{image_id}``: one image, at the top level of the body."""
    project_id = _project(request, ctx)
    return json(image_view(await _one(ctx, project_id, request.path_params["image_id"])))


@documented(ok=300)
async def glance_versions(request: Request):
    """``GET /image``: the Glance version document that points image clients at ``/image/v2``."""
    base = request.app.state.services.settings.endpoint
    return json({"versions": [{"id": "v2.9", "status": "CURRENT",
                               "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}]}, status=300)


# --- Nova image proxy (discarded, still served) ----------------------------------------------------

def _nova_query(request: Request) -> domain.ImageQuery:
    params = request.query_params
    query = domain.ImageQuery(limit=_capped_limit(request, NOVA_DEFAULT_LIMIT),
                              marker=params.get("marker") or None)
    if params.get("name"):
        query.equals["name"] = params["name"]
    status = (params.get("status") or "").strip().lower()
    if status:
        query.statuses = NOVA_STATUS_FILTER.get(status, (status,))
    for name, attr in (("minDisk", "min_disk"), ("minRam", "min_ram")):
        if params.get(name):
            setattr(query, attr, query_int(request, name, 0, 0, 2**31 - 1))
    since = params.get("changes-since")
    if since:
        try:
            when = datetime.fromisoformat(since.strip())
        except ValueError:
            raise invalid("changes-since must be an ISO 8601 time, such as 2013-06-09T06:42:18Z") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        query.changed_since = when.timestamp()
    return query


async def _nova_list(request: Request, ctx: Ctx, detail: bool):
    pid = request.path_params["project_id"]
    base = ctx.services.settings.endpoint
    page, more = await _page(ctx, pid, _nova_query(request))
    view = nova_view if detail else nova_summary
    body: dict[str, Any] = {"images": [view(i, base, pid) for i in page]}
    if more:
        path = f"{base}/v2.1/{pid}/images" + ("/detail" if detail else "")
        body["images_links"] = [{"rel": "next", "href": f"{path}?{_next_query(request, page[-1]['id'])}"}]
    return json(body)


@endpoint(ok=200, query=NOVA_QUERY)
async def nova_list_images(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/images``: ids, names and links."""
    return await _nova_list(request, ctx, detail=False)


@endpoint(ok=200, query=NOVA_QUERY)
async def nova_list_images_detail(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/images/detail``: full Nova image objects."""
    return await _nova_list(request, ctx, detail=True)


@endpoint(ok=200, errors=404)
async def nova_show_image(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/images/{image_id}``."""
    pid = request.path_params["project_id"]
    image = await _one(ctx, pid, request.path_params["image_id"])
    return json({"image": nova_view(image, ctx.services.settings.endpoint, pid)})


@endpoint(ok=204, errors=(403, 404))
async def nova_delete_image(request: Request, ctx: Ctx):
    """``DELETE /v2.1/{project_id}/images/{image_id}`` (discarded): a private image of the project."""
    await ctx.services.store.run(domain.delete_image, request.path_params["project_id"],
                                 request.path_params["image_id"])
    return Response(status_code=204)


@endpoint(auth="token", ok=204, headers=PROJECT_HEADER, errors=(403, 404))
async def delete_glance_image(request: Request, ctx: Ctx):
    """``DELETE /v2/images/{image_id}`` (openstacksdk's delete_image): a private image of the project."""
    await ctx.services.store.run(domain.delete_image, _project(request, ctx), request.path_params["image_id"])
    return Response(status_code=204)


@endpoint(ok=200, errors=404)
async def nova_image_metadata(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/images/{image_id}/metadata``."""
    image = await _one(ctx, request.path_params["project_id"], request.path_params["image_id"])
    return json({"metadata": domain.attributes(image)})


# --- Nova createImage (an action of POST /v2.1/{project_id}/servers/{server_id}/action) ---------------

CREATE_IMAGE_ARGS: dict[str, Any] = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": domain.MAX_IMAGE_NAME},
                   "metadata": {"type": "object", "maxProperties": domain.MAX_METADATA_ITEMS,
                                "additionalProperties": {"type": "string", "maxLength": domain.MAX_METADATA_TEXT}}}}


async def create_image_action(ctx: Ctx, server_id: str, action: str, args: Any) -> Response:
    """``createImage``: 202, the new image's URL in ``Location`` (before microversion 2.45) and its id as
    ``{"image_id"}`` (2.45 and later); both are sent, since an action is not told the microversion."""
    if not isinstance(args, dict):
        raise invalid(f"{action} must be an object")
    unknown = set(args) - {"name", "metadata"}
    if unknown:
        raise invalid(f"{action}: unknown field {min(unknown)}")
    metadata = domain.check_snapshot_request(args.get("name"), args.get("metadata"))
    image_id = await ctx.services.store.run(domain.create_from_server, ctx.ident, server_id, args["name"], metadata)
    location = f"{ctx.services.settings.endpoint}/v2/images/{image_id}"
    return json({"image_id": image_id}, status=202, headers={"Location": location})


routes = [
    Route("/v2/cloudimages", list_cloudimages, methods=["GET"]),
    Route("/v2/images", list_glance_images, methods=["GET"]),
    Route("/v2/images/{image_id}", show_glance_image, methods=["GET"]),
    Route("/v2/images/{image_id}", delete_glance_image, methods=["DELETE"]),
    Route("/image", glance_versions, methods=["GET"]),
    Route("/image/", glance_versions, methods=["GET"]),
    Route("/image/v2/images", list_glance_images, methods=["GET"]),
    Route("/image/v2/images/{image_id}", show_glance_image, methods=["GET"]),
    Route("/image/v2/images/{image_id}", delete_glance_image, methods=["DELETE"]),
    Route("/v2.1/{project_id}/images", nova_list_images, methods=["GET"]),
    Route("/v2.1/{project_id}/images/detail", nova_list_images_detail, methods=["GET"]),
    Route("/v2.1/{project_id}/images/{image_id}", nova_show_image, methods=["GET"]),
    Route("/v2.1/{project_id}/images/{image_id}", nova_delete_image, methods=["DELETE"]),
    Route("/v2.1/{project_id}/images/{image_id}/metadata", nova_image_metadata, methods=["GET"]),
]
