"""What every HTTP handler shares: JSON in and out, the ECS error body, request ids, the endpoint wrapper.

Handlers are written as ``async def handler(request, ctx)`` and wrapped with :func:`endpoint`, which
authenticates the caller, checks the project in the path, and turns every failure into the
documented ``{"error": {"code", "message"}}`` body. Nothing here knows a business rule.

Errors take one of three paths, each ending in the same body: the :func:`endpoint` wrapper (every
authenticated handler); the handlers registered on the app (``on_ecs_error``, ``on_http_exception``,
``on_client_disconnect``, ``on_unexpected``) for what happens outside it (health, the token
endpoint, 404/405); and ``http/server.py`` for requests refused before the application runs. A new
handler uses the wrapper; nothing else answers errors.

Every handler also declares what ``GET /openapi.json`` says of it, where it is written:
``@endpoint(ok=202, body=Model, query={"limit": int}, errors=404)`` (or ``@documented(...)`` for the
few handlers outside the wrapper). The declaration is stored on the function and read only when the
document is built (``http/openapi.py``); tests/test_openapi.py fails for a route without one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter as _perf_counter
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match

from ecsd.domain.actions import caller
from ecsd.domain.clock import new_hex_id
from ecsd.domain.errors import EcsError, invalid, invalid_model
from ecsd.domain.identity import Identity
from ecsd.metrics import request_id as _request_id
from ecsd.store.db import StoreBusy

log = logging.getLogger("ecsd.http")
M = TypeVar("M", bound=BaseModel)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSON:
    return JSON(data, status_code=status, headers=headers)


def no_content(status: int = 204) -> Response:
    return Response(status_code=status)


def error_response(err: EcsError) -> JSON:
    return JSON(err.body(), status_code=err.status, headers=err.headers)


# --- request ids -----------------------------------------------------------------------------------

_set_request_id = _request_id.set


class RequestIdMiddleware:
    """Pure ASGI: every response carries X-Request-Id (Huawei SDK) and X-Openstack-Request-Id (openstacksdk);
    the request id is in ``ecsd.metrics.request_id`` for the log records of the request's task. With
    ``observe`` (metrics.HttpObserver), each request's status and latency are handed to it at the end:
    the metrics ride this layer's send wrapper instead of adding one of their own."""

    def __init__(self, app, observe: Callable[[dict, int, float], None] | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        observe = self.observe
        started = _perf_counter() if observe is not None else 0.0
        rid = new_hex_id().encode()
        rid_text = rid.decode()
        scope.setdefault("state", {})["request_id"] = rid_text
        _set_request_id(rid_text)       # the request's own task: no reset needed
        status = 500                    # what an exception that escapes before any answer becomes

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid))
                headers.append((b"x-openstack-request-id", b"req-" + rid))
                message["headers"] = headers
            await send(message)

        if observe is None:
            return await self.app(scope, receive, send_with_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            observe(scope, status, _perf_counter() - started)


# --- error handlers (registered on the app) ----------------------------------------------------------

async def on_ecs_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EcsError)
    return error_response(exc)


def allowed_methods(request: Request) -> str:
    """The ``Allow`` of a 405: the methods of every route whose path matches, not only of the first
    (several routes may serve one path, one method each)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:      # RFC 9110: a 405 names the methods the resource has
        return error_response(EcsError("Common.0405", headers={"Allow": allowed_methods(request)}))
    if exc.status_code == 404:
        return error_response(EcsError("Common.0404"))
    return error_response(EcsError("Ecs.0000", str(exc.detail), status=exc.status_code))


async def on_client_disconnect(request: Request, _exc: Exception) -> Response:
    """The client went away mid-request (e.g. while sending its body): not an error of the service.
    Nothing is sent (the connection is gone); the status is what an access log would show."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


async def on_store_busy(request: Request, exc: Exception) -> Response:
    """Another process kept the SQLite database locked (store/db.py: WRITE_LOCK_WAIT): try again later."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(EcsError("Common.1503", "the database is busy", status=503,
                                   message="Api flow control Error because the database is busy."))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(EcsError("Common.0001"))


# --- request bodies -----------------------------------------------------------------------------------

async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as JSON: empty -> Common.0002, too large or not JSON -> Ecs.0005."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise invalid(f"request body larger than {max_bytes} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise invalid(f"request body larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    request.state.raw_body = raw
    if not raw.strip():
        raise EcsError("Common.0002")
    if b"\\u0000" in raw:       # a NUL in a JSON string: no text column of PostgreSQL can hold it
        raise invalid("request body strings must not contain NUL characters")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("request body is not valid JSON") from None


def parse(model: type[M], data: Any) -> M:
    """Validate with a pydantic model; the first problem becomes an Ecs.0005 detail."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_model(exc) from None


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer") from None
    if value < lo or value > hi:
        raise invalid(f"{name} must be between {lo} and {hi}")
    return value


def capped_limit(request: Request, default: int, maximum: int = 1000) -> int:
    """Nova / Glance paging: a ``limit`` above the maximum is lowered to it; a negative one is Ecs.0005."""
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid("limit must be an integer") from None
    if value < 0:
        raise invalid("limit must not be negative")
    return min(value, maximum)


# --- handler declarations: what GET /openapi.json says of a handler (http/openapi.py) ----------------

@dataclass(frozen=True)
class Param:
    """A query parameter or request header a handler reads: its JSON type (str, int, bool), whether
    it must be sent, and what it does."""

    type: type = str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class ApiDoc:
    """The declaration of one handler, read only when ``GET /openapi.json`` builds its document.

    ``ok``: every success status the handler answers (None: not declared; the document then says
    "default" and tests/test_openapi.py fails). ``body``: the pydantic model it parses the JSON body
    with, a JSON Schema (a dict in which a model class may stand for the model's schema) when it
    reads the body by hand, or :data:`NO_BODY`. ``errors``: the error statuses it answers beyond
    those every route of its kind has (http/openapi.py: ``common_errors``). ``empty``: success
    statuses without a JSON body besides 204 (e.g. Nova's 202 to an action).
    """

    auth: str
    ok: tuple[int, ...] | None
    body: Any = None
    query: Mapping[str, Param] | None = None
    headers: Mapping[str, Param] | None = None
    errors: tuple[int, ...] = ()
    empty: tuple[int, ...] = ()
    wrapped: bool = True        # by endpoint(): a NUL in the path is its 404, a store error its 503


API_DOC = "ecsd_api_doc"


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


# ``body=NO_BODY``: a POST, PUT or PATCH that reads no body (it must say so: tests/test_openapi.py).
NO_BODY: Any = _NoBody()

Statuses = int | tuple[int, ...]
Params = Mapping[str, "type | Param"]


def _params(given: Params | None) -> dict[str, Param] | None:
    if given is None:
        return None
    return {name: p if isinstance(p, Param) else Param(p) for name, p in given.items()}


def _statuses(given: Statuses | None) -> tuple[int, ...] | None:
    return (given,) if isinstance(given, int) else given


def _declare(fn: Any, auth: str, wrapped: bool, ok: Statuses | None, body: Any, query: Params | None,
             headers: Params | None, errors: Statuses, empty: Statuses) -> None:
    setattr(fn, API_DOC, ApiDoc(auth, _statuses(ok), body, _params(query), _params(headers),
                                _statuses(errors) or (), _statuses(empty) or (), wrapped))


def api_doc(handler: Any) -> ApiDoc | None:
    """The declaration of a route's handler, or None (a handler neither wrapped nor documented)."""
    return getattr(handler, API_DOC, None)


def documented(auth: str = "none", *, ok: Statuses, body: Any = None, query: Params | None = None,
               headers: Params | None = None, errors: Statuses = (), empty: Statuses = ()):
    """Declare a handler that is not wrapped by :func:`endpoint` (health, the token endpoint, ...):
    the same arguments; the handler itself is returned unchanged."""

    def mark(fn: Endpoint) -> Endpoint:
        _declare(fn, auth, False, ok, body, query, headers, errors, empty)
        return fn

    return mark


# --- the endpoint wrapper -----------------------------------------------------------------------------

@dataclass
class Ctx:
    """What a handler gets: the application's services, for authenticated calls who is calling, and the
    request (views that depend on a header, such as Nova's microversion, read it from here)."""

    services: Any
    identity: Identity | None
    request: Request | None = None

    @property
    def ident(self) -> Identity:
        assert self.identity is not None
        return self.identity


Handler = Callable[[Request, Ctx], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def endpoint(auth: str = "project", *, ok: Statuses | None = None, body: Any = None, query: Params | None = None,
             headers: Params | None = None, errors: Statuses = (),
             empty: Statuses = ()) -> Callable[[Handler], Endpoint]:
    """Wrap a handler. ``auth``: "project" (token + project in path), "token" (token only), "none".

    The other arguments declare the handler for ``GET /openapi.json`` (:class:`ApiDoc`); they are
    stored on the wrapper and never read while serving a request.
    """

    def wrap(fn: Handler) -> Endpoint:
        async def run(request: Request) -> Response:
            services = request.app.state.services
            try:
                # NUL: no text column of PostgreSQL can hold it. A path with one names nothing (404);
                # a query with one is malformed (400).
                if "\x00" in request.scope["path"]:
                    raise EcsError("Common.0404", "the path contains a NUL character")
                if b"%00" in request.scope.get("query_string", b""):
                    raise invalid("the query must not contain NUL characters")
                ident = None
                if auth != "none":
                    ident = await services.auth.authenticate(request)
                    if auth == "project":
                        services.auth.check_project(ident, request.path_params.get("project_id"))
                    # who acts, for the operation history that acceptance records (domain/actions.py)
                    caller.set((request.scope["state"]["request_id"], ident.user_id))
                return await fn(request, Ctx(services, ident, request))
            except EcsError as err:
                return error_response(err)
            except ClientDisconnect as exc:
                return await on_client_disconnect(request, exc)
            except StoreBusy as exc:
                return await on_store_busy(request, exc)
            except Exception:  # never a stack trace to the caller
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_response(EcsError("Common.0001"))

        run.__name__ = fn.__name__
        run.__qualname__ = fn.__qualname__
        run.__module__ = fn.__module__
        run.__doc__ = fn.__doc__
        _declare(run, auth, True, ok, body, query, headers, errors, empty)
        return run

    return wrap


# --- dry runs -----------------------------------------------------------------------------------------

class _DryRun(Exception):
    """Raised inside the acceptance transaction of a dry run, so that nothing it wrote is kept."""


async def accept_or_dry_run(ctx: Ctx, dry_run: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(conn, *args)`` through the store; with ``dry_run``, every check runs in the transaction and
    then it is rolled back: None (the caller answers 202 ``{}``), else what ``fn`` returned."""

    def run(conn):
        accepted = fn(conn, *args)
        if dry_run:
            raise _DryRun   # every check passed; roll the transaction back
        return accepted

    try:
        return await ctx.services.store.run(run)
    except _DryRun:
        return None
