"""Version documents: ``GET /`` (Nova style) and ``GET /{api_version}``: ``/v1`` (the ECS API),
``/v2`` and ``/v2.1``.

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

from ecsd.domain.errors import EcsError
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


def _v20_described(base: str) -> dict[str, Any]:
    return {**v20_entry(base), "media-types": _MEDIA_TYPES[:1]}


_NAMED = {"v1": lambda base: v1_entry(base), "v2": _v20_described, "v2.0": _v20_described,
          "v2.1": lambda base: v21_entry(base, described=True)}


@endpoint(auth="none", ok=200, errors=404)
async def show_version(request: Request, ctx: Ctx):
    """``GET /{api_version}`` (querying_a_specified_api_version.rst): ``/v1``, ``/v2`` and ``/v2.1``,
    in any case (the reference writes "V2"); any other name is 404 Common.0404, as an unknown path."""
    name = request.path_params.get("api_version") or request.scope["path"].strip("/")
    entry = _NAMED.get(name.lower())
    if entry is None:
        raise EcsError("Common.0404")
    return json({"version": entry(_base(ctx))})


routes = [Route("/", all_versions, methods=["GET"])]
# With a trailing slash, only the names served: another "/x/" must still get Starlette's redirect to "/x".
routes += [Route(f"/{name}/", show_version, methods=["GET"]) for name in ("v1", "v2", "v2.0", "v2.1")]

# A parameter in the first segment matches every one-segment path: app.py puts this after all other routes.
named_routes = [Route("/{api_version}", show_version, methods=["GET"])]
