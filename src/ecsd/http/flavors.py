"""Flavor endpoints: the ECS v1 list with extra specs, and the native Nova flavor API.

* ``GET /v1/{project_id}/cloudservers/flavors[?availability_zone=]``: ``vcpus`` and ``disk`` are
  strings there, as the reference shows; ``os_extra_specs`` carries every extra-spec key the
  reference documents, as strings (:func:`ecsd.domain.flavors.shown_specs`), and
  ``attachableQuantity`` what a new server of the flavor can attach. Which flavors an AZ sells is
  decided in :mod:`ecsd.domain.flavors`; an AZ this region does not have gives ``[]``.
* ``GET /v2.1/{project_id}/flavors`` (id, name, links), ``/flavors/detail``, ``/flavors/{id}``,
  ``/flavors/{id}/os-extra_specs`` and ``/flavors/{id}/os-extra_specs/{key}``. The lists take
  ``minDisk``, ``minRam``, ``sort_key`` (flavorid, name, memory_mb, vcpus, root_gb, ...; default
  flavorid), ``sort_dir`` (asc/desc), ``limit`` (default and cap 1000, as Nova's osapi_max_limit)
  and ``marker`` (a flavor id); ``flavors_links`` holds the next page's URL when more follow.
  ``os-extra_specs`` shows the same extra specs as the v1 list.
* From microversion 2.55 on (``OpenStack-API-Version: compute 2.55`` or
  ``X-OpenStack-Nova-API-Version``), flavor objects carry ``description`` (null), as Nova does.

Errors: an unknown flavor is HTTP 404 ``Ecs.0029`` ("The flavor does not exist."), an unknown
extra-spec key 404 ``Common.0404``; malformed query values, unknown sort keys and unknown markers
are 400 ``Ecs.0005``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.routing import Route

from ecsd.domain import flavors as domain
from ecsd.domain.errors import EcsError, invalid
from ecsd.http.core import Ctx, capped_limit, endpoint, json, query_int
from ecsd.http.keypairs import MICROVERSION_HEADERS

MAX_LIMIT = 1000
DESCRIPTION_MICROVERSION = (2, 55)
MAX_MICROVERSION = (2, 60)
# The query parameters of the Nova lists (_nova_list reads them).
LIST_QUERY = {"minDisk": int, "minRam": int, "sort_key": str, "sort_dir": str, "limit": int, "marker": str}


def microversion(request: Request) -> tuple[int, int]:
    """The compute microversion the client asked for; 2.1 when none (or an unreadable one) is sent."""
    raw = None
    header = request.headers.get("openstack-api-version")
    if header:
        parts = header.split()
        if len(parts) == 2 and parts[0].lower() == "compute":
            raw = parts[1]
    if raw is None:
        raw = request.headers.get("x-openstack-nova-api-version")
    if not raw:
        return (2, 1)
    if raw.strip().lower() == "latest":
        return MAX_MICROVERSION
    major, _, minor = raw.strip().partition(".")
    if major.isdigit() and minor.isdigit():
        return (int(major), int(minor))
    return (2, 1)


# --- views -----------------------------------------------------------------------------------------

def _links(base: str, project_id: str, flavor_id: str, with_type: bool = False) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = [
        {"rel": "self", "href": f"{base}/v2.1/{project_id}/flavors/{flavor_id}"},
        {"rel": "bookmark", "href": f"{base}/{project_id}/flavors/{flavor_id}"},
    ]
    if with_type:
        for link in links:
            link["type"] = None
    return links


def v1_view(flavor: dict[str, Any], base: str, project_id: str) -> dict[str, Any]:
    return {
        "id": flavor["id"],
        "name": flavor["name"],
        "vcpus": str(flavor["vcpus"]),
        "ram": flavor["ram"],
        "disk": str(flavor["disk"]),
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": bool(flavor["disabled"]),
        "rxtx_factor": 1.0,
        "rxtx_quota": None,
        "rxtx_cap": None,
        "os-flavor-access:is_public": True,
        "links": _links(base, project_id, flavor["id"], with_type=True),
        "os_extra_specs": flavor["extra_specs"],
        "attachableQuantity": flavor["attachable"],
    }


def nova_view(flavor: dict[str, Any], base: str, project_id: str, version: tuple[int, int]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": flavor["id"],
        "name": flavor["name"],
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": bool(flavor["disabled"]),
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": True,
        "links": _links(base, project_id, flavor["id"]),
    }
    if version >= DESCRIPTION_MICROVERSION:
        view["description"] = None
    return view


def nova_summary(flavor: dict[str, Any], base: str, project_id: str, version: tuple[int, int]) -> dict[str, Any]:
    view: dict[str, Any] = {"id": flavor["id"], "name": flavor["name"],
                            "links": _links(base, project_id, flavor["id"])}
    if version >= DESCRIPTION_MICROVERSION:
        view["description"] = None
    return view


# --- handlers --------------------------------------------------------------------------------------

@endpoint(ok=200, query={"availability_zone": str})
async def list_flavors_v1(request: Request, ctx: Ctx):
    """``GET /v1/{project_id}/cloudservers/flavors``."""
    pid = request.path_params["project_id"]
    az = request.query_params.get("availability_zone") or None
    if az is not None and len(az) > 64:
        raise invalid("availability_zone is longer than 64 characters")
    found = await ctx.services.store.run(domain.list_flavors_v1, az)
    base = ctx.services.settings.endpoint
    return json({"flavors": [v1_view(f, base, pid) for f in found]})


def _limit(request: Request) -> int:
    return capped_limit(request, MAX_LIMIT, MAX_LIMIT)


async def _nova_list(request: Request, ctx: Ctx, detail: bool):
    pid = request.path_params["project_id"]
    params = request.query_params
    kwargs: dict[str, Any] = {
        "sort_key": params.get("sort_key") or "flavorid",
        "sort_dir": (params.get("sort_dir") or "asc").lower(),
        "limit": _limit(request),
        "marker": params.get("marker") or None,
    }
    if params.get("minDisk"):
        kwargs["min_disk"] = query_int(request, "minDisk", 0, 0, 2**31 - 1)
    if params.get("minRam"):
        kwargs["min_ram"] = query_int(request, "minRam", 0, 0, 2**31 - 1)
    page, more = await ctx.services.store.run(domain.list_flavors, **kwargs)
    base = ctx.services.settings.endpoint
    version = microversion(request)
    view = nova_view if detail else nova_summary
    body: dict[str, Any] = {"flavors": [view(f, base, pid, version) for f in page]}
    if more and page:
        query = [(k, v) for k, v in params.multi_items() if k != "marker"] + [("marker", page[-1]["id"])]
        path = f"{base}/v2.1/{pid}/flavors" + ("/detail" if detail else "")
        body["flavors_links"] = [{"rel": "next", "href": f"{path}?{urlencode(query)}"}]
    return json(body)


@endpoint(ok=200, query=LIST_QUERY, headers=MICROVERSION_HEADERS)
async def list_flavors(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/flavors``."""
    return await _nova_list(request, ctx, detail=False)


@endpoint(ok=200, query=LIST_QUERY, headers=MICROVERSION_HEADERS)
async def list_flavors_detail(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/flavors/detail``."""
    return await _nova_list(request, ctx, detail=True)


async def _flavor(ctx: Ctx, flavor_id: str) -> dict[str, Any]:
    flavor = await ctx.services.store.run(domain.flavor_details, flavor_id)
    if flavor is None:
        raise EcsError("Ecs.0029", f"Flavor {flavor_id} could not be found.", status=404)
    return flavor


@endpoint(ok=200, headers=MICROVERSION_HEADERS, errors=404)
async def show_flavor(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/flavors/{flavor_id}``."""
    pid = request.path_params["project_id"]
    flavor = await _flavor(ctx, request.path_params["flavor_id"])
    return json({"flavor": nova_view(flavor, ctx.services.settings.endpoint, pid, microversion(request))})


@endpoint(ok=200, errors=404)
async def show_extra_specs(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/flavors/{flavor_id}/os-extra_specs``."""
    flavor = await _flavor(ctx, request.path_params["flavor_id"])
    return json({"extra_specs": flavor["extra_specs"]})


@endpoint(ok=200, errors=404)
async def show_extra_spec(request: Request, ctx: Ctx):
    """``GET /v2.1/{project_id}/flavors/{flavor_id}/os-extra_specs/{key}``: ``{key: value}``."""
    flavor = await _flavor(ctx, request.path_params["flavor_id"])
    key = request.path_params["key"]
    if key not in flavor["extra_specs"]:
        raise EcsError("Common.0404", f"Flavor {flavor['id']} has no extra spec {key}.")
    return json({key: flavor["extra_specs"][key]})


routes = [
    Route("/v1/{project_id}/cloudservers/flavors", list_flavors_v1, methods=["GET"]),
    Route("/v2.1/{project_id}/flavors", list_flavors, methods=["GET"]),
    Route("/v2.1/{project_id}/flavors/detail", list_flavors_detail, methods=["GET"]),
    Route("/v2.1/{project_id}/flavors/{flavor_id}", show_flavor, methods=["GET"]),
    Route("/v2.1/{project_id}/flavors/{flavor_id}/os-extra_specs", show_extra_specs, methods=["GET"]),
    Route("/v2.1/{project_id}/flavors/{flavor_id}/os-extra_specs/{key}", show_extra_spec, methods=["GET"]),
]
