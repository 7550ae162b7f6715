"""Version documents: ``GET /`` and ``GET /v2.1`` (Nova style) and ``GET /v1`` (the ECS API).

openstacksdk and python-openstackclient read the compute microversion range from ``GET /v2.1``
(the catalog URL without its project id) and then send the highest microversion both sides know.
Advertising 2.60, as the reference does, is what lets key pairs (2.10), rebuild with a key name
(2.54) and the other newer calls work. The v2.0 entry is listed as SUPPORTED without
microversions, as the reference's example shows. Links use the server's own public base URL.
No authentication is needed for these documents.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from ecsd.http.core import Ctx, endpoint, json

MIN_MICROVERSION = "2.1"
MAX_MICROVERSION = "2.60"

_MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]


def _base(ctx: Ctx) -> str:
    return ctx.services.settings.endpoint


def v20_entry(base: str) -> dict[str, Any]:
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": f"{base}/v2/"}]}


def v21_entry(base: str, *, described: bool = False) -> dict[str, Any]:
    links: list[dict[str, Any]] = [{"rel": "self", "href": f"{base}/v2.1/"}]
    if described:
        links.append({"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"})
    return {"id": "v2.1", "status": "CURRENT", "version": MAX_MICROVERSION, "min_version": MIN_MICROVERSION,
            "updated": "2013-07-23T11:33:21Z", "links": links, "media-types": _MEDIA_TYPES}


def v1_entry(base: str) -> dict[str, Any]:
    return {"id": "v1", "status": "CURRENT", "version": "", "min_version": "",
            "updated": "2018-01-01T00:00:00Z", "links": [{"rel": "self", "href": f"{base}/v1/"}],
            "media-types": [{"base": "application/json", "type": "application/json"}]}


@endpoint(auth="none", ok=200)
async def all_versions(_request: Request, ctx: Ctx):
    """``GET /``: every compute API version."""
    base = _base(ctx)
    return json({"versions": [v20_entry(base), v21_entry(base)]})


@endpoint(auth="none", ok=200)
async def version_v21(_request: Request, ctx: Ctx):
    """``GET /v2.1``: the v2.1 API and its microversion range."""
    return json({"version": v21_entry(_base(ctx), described=True)})


@endpoint(auth="none", ok=200)
async def version_v1(_request: Request, ctx: Ctx):
    """``GET /v1``: the ECS v1 API (no microversions)."""
    return json({"version": v1_entry(_base(ctx))})


routes = [
    Route("/", all_versions, methods=["GET"]),
    Route("/v2.1", version_v21, methods=["GET"]),
    Route("/v2.1/", version_v21, methods=["GET"]),
    Route("/v1", version_v1, methods=["GET"]),
    Route("/v1/", version_v1, methods=["GET"]),
]
