"""The web console's static files (docs/console.md), served from the package (src/ecsd/console/).

    GET /console              the console's page (index.html)
    GET /console/{asset}      its scripts, style sheets and vendored libraries (with their licences)

No authentication is needed for these files: they hold no data. The console itself signs in with
the user's own password through ``POST /v3/auth/tokens`` and calls the public API with that token,
so it can do nothing the API would not allow (no reference page: this is not part of the ECS API).

The files are read once, on a worker thread at first use, and answered from memory; nothing here
reads a file on the event loop. Every answer carries a strong ``ETag`` (``If-None-Match`` gives 304)
and ``Cache-Control: no-cache`` (revalidate: an upgrade of ecsd is seen at once), and a strict
Content-Security-Policy: scripts, styles and connections from this origin only, no inline script
but the page's import map (allowed by its hash, computed here), no framing.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain.errors import EcsError
from ecsd.http.core import documented

PACKAGE_DIR = "console"
INDEX = "index.html"
TYPES = {".html": "text/html; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}
PLAIN = "text/plain; charset=utf-8"        # LICENSE and other files without a known suffix
_IMPORT_MAP = re.compile(rb'<script type="importmap">(.*?)</script>', re.DOTALL)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    files: dict[str, Asset]
    csp: str


def content_security_policy(index: bytes) -> str:
    """Only this origin; the one inline script allowed is the page's import map, by its SHA-256."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
                      for m in _IMPORT_MAP.finditer(index))
    return ("default-src 'none'; " + f"script-src 'self' {hashes}".strip() + "; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _media_type(name: str) -> str:
    dot = name.rfind(".")
    return TYPES.get(name[dot:].lower(), PLAIN) if dot > name.rfind("/") else PLAIN


@functools.cache
def load() -> Assets:
    """Every file of the console, keyed by its path under ``/console/`` (blocking: run on a thread)."""
    files: dict[str, Asset] = {}

    def walk(node, prefix: str) -> None:
        for item in node.iterdir():
            if item.name.startswith(".") or item.name == "__pycache__":
                continue
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
                continue
            body = item.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[prefix + item.name] = Asset(body, _media_type(item.name), etag)

    walk(resources.files("ecsd").joinpath(PACKAGE_DIR), "")
    return Assets(files, content_security_policy(files[INDEX].body))


async def assets() -> Assets:
    if load.cache_info().currsize:
        return load()
    return await asyncio.to_thread(load)


def _answer(request: Request, asset: Asset, csp: str) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Content-Security-Policy": csp}
    given = request.headers.get("if-none-match", "")
    if asset.etag in {tag.strip().removeprefix("W/") for tag in given.split(",")} or given.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@documented(ok=(200, 304))
async def console_page(request: Request) -> Response:
    """The web console (no authentication: the page signs in with the user's password)."""
    served = await assets()
    return _answer(request, served.files[INDEX], served.csp)


console_page.media_type = "text/html"       # type: ignore[attr-defined]  # http/openapi.py reads it


@documented(ok=(200, 304), errors=404)
async def console_asset(request: Request) -> Response:
    """A static file of the web console; its media type follows its name (``.mjs``: JavaScript)."""
    served = await assets()
    name = request.path_params["asset"] or INDEX
    asset = served.files.get(name)
    if asset is None:
        raise EcsError("Common.0404")
    return _answer(request, asset, served.csp)


console_asset.media_type = "*/*"        # type: ignore[attr-defined]  # one of several, per file


routes = [Route("/console", console_page, methods=["GET"]),
          Route("/console/{asset:path}", console_asset, methods=["GET"])]
