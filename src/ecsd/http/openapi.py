"""``GET /openapi.json``: the OpenAPI 3.1 document of every route the application serves.

The document is generated, never written by hand, so that it cannot drift from what is served:

* the operations are the application's route table (``request.app.routes``, mounts included; HEAD,
  which Starlette adds to every GET, is left out as in docs/api-coverage.md), each path parameter
  taken from the route's path;
* what an operation takes and answers is its handler's declaration (``http/core.py``:
  ``@endpoint(ok=..., body=..., query=..., headers=..., errors=..., empty=...)`` or ``@documented``):
  the success statuses it really answers, the pydantic model it parses its body with (whose
  ``model_json_schema`` becomes the request schema; nested models are lifted into
  ``components/schemas``), the query parameters and headers it reads, and the error statuses
  particular to it;
* the error statuses every route of a kind has are added here (:func:`common_errors`): the refusals
  of ``http/server.py`` (400, 408, 431, 503), ``on_unexpected`` (500), the store being busy (503),
  the wrapper's 404 for a NUL in a path parameter, 401 for authenticated routes. Every error is the
  ECS body ``{"error": {"code", "message"[, "details"]}}`` (``components/schemas/EcsError``), IAM's
  token endpoint included.

Routes under ``/_ecsd/`` (the emulator's controls) are tagged ``emulator``, secured by the operator
token, and answer 404 without it (or with the emulator off). A route that dispatches several methods
itself names the handler of each in its ``emulator_handlers`` attribute; each of those is declared
with ``@documented``. A handler without a declaration still gets an operation, with its path
parameters, any JSON body and a ``default`` response, so the document stays valid; the test suite
(tests/test_openapi.py) fails for it.

The document is built once per application, on the first request, and served from memory; no
authentication is needed. Nothing here runs while any other request is served.
"""

from __future__ import annotations

import re
import sys
from http import HTTPStatus
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

import ecsd
from ecsd.http.core import JSON, NO_BODY, ApiDoc, Param, api_doc, documented

OPENAPI_VERSION = "3.1.0"
EMULATOR_PREFIX = "/_ecsd/"
REF = "#/components/schemas/{model}"
METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")     # HEAD: as GET, not listed
# A route serving several methods through one dispatcher names the handler of each here (http/emulator.py).
HANDLERS_ATTR = "emulator_handlers"
# A handler answering something else than JSON names the media type of its successes here (http/consoles.py).
MEDIA_TYPE_ATTR = "media_type"
_PARAM = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")
_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", float: "number"}
_CONVERTOR_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"},
                    "uuid": {"type": "string", "format": "uuid"}, "path": {"type": "string", "minLength": 1}}

# What each error status means here; every one carries the ECS error body.
ERRORS: dict[int, str] = {
    400: "Ecs.0005 (a malformed or out-of-range parameter or body), Ecs.0023 (a project the caller may not "
         "use) or another 400 code of the ECS catalogue; Common.0400 for an HTTP request the server "
         "could not parse.",
    401: "Common.0013 (no credentials, a bad or expired token, a wrong password) or APIGW.0301 (an AK/SK "
         "signature that does not verify).",
    403: "Ecs.0003 (not permitted) or a quota of the caller (Ecs.0001 for key pairs).",
    404: "The resource does not exist or is not the caller's (Ecs.0114, Ecs.0314, Ecs.0031, Ecs.0029, "
         "Common.0404).",
    408: "Common.0408: the request head or body did not arrive in time (http/server.py).",
    409: "The resource exists already.",
    429: "APIGW.0308: too many failed logins from this address, or too many being verified; see Retry-After.",
    431: "Common.0431: the request line and headers are too large (http/server.py).",
    500: "Common.0001: an unexpected error (logged with the request id).",
    503: "Common.1503: the database is busy, or the server has too many open connections.",
}
EMULATOR_ERRORS = {404}     # without the operator token every route there answers as an unknown path

SECURITY_SCHEMES = {
    "iamToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                 "description": "An IAM token: the X-Subject-Token of POST /v3/auth/tokens."},
    "akSk": {"type": "apiKey", "in": "header", "name": "Authorization",
             "description": "SDK-HMAC-SHA256 (AK/SK signing, as the Huawei Cloud SDK signs): "
                            "`SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...` with X-Sdk-Date; "
                            "routes without a project in the path take it from a signed X-Project-Id."},
    "operatorToken": {"type": "apiKey", "in": "header", "name": "X-Ecsd-Operator-Token",
                      "description": "The operator token of the emulator controls (ECSD_OPERATOR_TOKEN, "
                                     "credentials.json: operator_token)."},
    "operatorBearer": {"type": "http", "scheme": "bearer",
                       "description": "The operator token as `Authorization: Bearer <token>`."},
}

ERROR_BODY = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "description": "e.g. Ecs.0005, Common.0013"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
        }}},
}


# What the document says of a handler nobody declared: only what its route shows.
UNDECLARED = ApiDoc(auth="unknown", ok=None, wrapped=False)


def common_errors(doc: ApiDoc, path_params: list[str], emulator: bool) -> set[int]:
    """The error statuses every route of this kind can answer, whatever its handler does."""
    statuses = {400, 408, 431, 500, 503}
    if doc.wrapped and path_params:
        statuses.add(404)           # endpoint(): a NUL in a path parameter names nothing
    if doc.auth in ("project", "token"):
        statuses.add(401)
    if emulator:
        statuses |= EMULATOR_ERRORS
    return statuses


# --- walking the routes ---------------------------------------------------------------------------------

def operations(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str, Any]]:
    """(method, path as the router has it, handler) of every HTTP route, mounts included, in order."""
    found = []
    for route in routes:
        if isinstance(route, Mount):
            found += operations(list(getattr(route, "routes", None) or []), prefix + route.path)
        elif isinstance(route, Route):
            handler = route.endpoint
            per_method = getattr(route, HANDLERS_ATTR, None)
            if per_method:
                methods = [(m, per_method[m]) for m in METHODS if m in per_method]
            elif route.methods is not None:
                methods = [(m, handler) for m in METHODS if m in route.methods]
            else:       # a class endpoint: the methods it defines
                methods = [(m, getattr(handler, m.lower())) for m in METHODS if hasattr(handler, m.lower())]
            found += [(m, prefix + route.path, h) for m, h in methods]
    return found


def openapi_path(path: str) -> str:
    """``/a/{id:int}`` -> ``/a/{id}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


# --- schemas ----------------------------------------------------------------------------------------------

def _models(value: Any, into: list[type[BaseModel]]) -> None:
    if isinstance(value, type) and issubclass(value, BaseModel):
        if value not in into:
            into.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _models(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _models(item, into)


def _resolve(value: Any, refs: dict[type[BaseModel], dict]) -> Any:
    """A declared body schema with each model class replaced by its $ref."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        return refs[value]
    if isinstance(value, dict):
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v, refs) for v in value]
    return value


def _param(name: str, where: str, p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": where, "required": p.required,
                           "schema": {"type": _JSON_TYPES.get(p.type, "string")}}
    if p.description:
        out["description"] = p.description
    return out


def _path_param(name: str, convertor: str | None) -> dict[str, Any]:
    schema = _CONVERTOR_TYPES.get(convertor or "", {"type": "string", "minLength": 1, "pattern": "^[^/]+$"})
    out: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": dict(schema)}
    if name == "project_id":
        out["description"] = "The caller's project (the token's, or the AK/SK's); another one is 400 Ecs.0023."
    return out


# --- the document -----------------------------------------------------------------------------------------

def _summary(handler: Any) -> str:
    doc = (getattr(handler, "__doc__", None) or "").strip()
    if doc:
        return doc.splitlines()[0].strip()
    return getattr(handler, "__name__", "handler").replace("_", " ")


def _tag(handler: Any, path: str) -> str:
    if path.startswith(EMULATOR_PREFIX):
        return "emulator"
    return (getattr(handler, "__module__", None) or "ecsd").rsplit(".", 1)[-1]


def _security(doc: ApiDoc, emulator: bool) -> list[dict[str, list]] | None:
    if emulator:
        return [{"operatorToken": []}, {"operatorBearer": []}]
    if doc.auth in ("project", "token"):
        return [{"iamToken": []}, {"akSk": []}]
    return None


def _responses(doc: ApiDoc, errors: set[int], media_type: str = JSON.media_type) -> dict[str, Any]:
    """A success status declared by the handler wins over the same status as an error (/readyz's 503).
    ``media_type``: what a success answers with (a handler's ``media_type`` attribute, else JSON)."""
    out: dict[str, Any] = {}
    ok = doc.ok or ()
    for status in sorted(set(ok) | errors):
        if status not in ok:
            out[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
            continue
        entry: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if status not in (204, 304) and status not in doc.empty:
            entry["content"] = {media_type: {}}
        out[str(status)] = entry
    if doc.ok is None:
        out["default"] = {"description": "Not declared (http/core.py: endpoint(ok=...)): any answer."}
    return out


def _operation(method: str, path: str, handler: Any, doc: ApiDoc, refs: dict, op_ids: set[str],
               used_errors: set[int]) -> dict[str, Any]:
    emulator = path.startswith(EMULATOR_PREFIX)
    params = [(m.group(1), m.group(2)) for m in _PARAM.finditer(path)]
    tag = _tag(handler, path)
    op_id = base = f"{tag}.{getattr(handler, '__name__', 'handler')}"
    n = 1
    while op_id in op_ids:
        n += 1
        op_id = f"{base}_{n}"
    op_ids.add(op_id)
    errors = common_errors(doc, [name for name, _ in params], emulator) | set(doc.errors)
    used_errors |= errors - set(doc.ok or ())
    op: dict[str, Any] = {"operationId": op_id, "summary": _summary(handler), "tags": [tag]}
    parameters = [_path_param(name, conv) for name, conv in params]
    parameters += [_param(name, "query", p) for name, p in (doc.query or {}).items()]
    parameters += [_param(name, "header", p) for name, p in (doc.headers or {}).items()]
    if parameters:
        op["parameters"] = parameters
    if doc.body is not None and doc.body is not NO_BODY:
        op["requestBody"] = {"required": True, "content": {JSON.media_type: {"schema": _resolve(doc.body, refs)}}}
    elif doc.ok is None and method in ("POST", "PUT", "PATCH"):
        op["requestBody"] = {"required": False, "content": {JSON.media_type: {"schema": {}}}}
    security = _security(doc, emulator)
    if security is not None:
        op["security"] = security
    op["responses"] = _responses(doc, errors, getattr(handler, MEDIA_TYPE_ATTR, None) or JSON.media_type)
    return op


def _tags(names: list[str]) -> list[dict[str, str]]:
    out = []
    for name in names:
        module = sys.modules.get(f"ecsd.http.{name}")
        first = ((module.__doc__ if module else None) or "").strip().splitlines()
        out.append({"name": name, "description": first[0] if first else name})
    return out


def build(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of these routes."""
    ops = []
    seen: set[tuple[str, str]] = set()
    for method, path, handler in operations(routes):
        key = (method, openapi_path(path))
        if key not in seen:             # a later route of the same method and path is never reached
            seen.add(key)
            ops.append((method, path, handler, api_doc(handler) or UNDECLARED))

    models: list[type[BaseModel]] = []
    for _, _, _, doc in ops:
        _models(doc.body, models)
    keyed, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    refs = {m: keyed[(m, "validation")] for m in models}

    paths: dict[str, dict[str, Any]] = {}
    op_ids: set[str] = set()
    used_errors: set[int] = set()
    tags: list[str] = []
    for method, path, handler, doc in ops:
        op = _operation(method, path, handler, doc, refs, op_ids, used_errors)
        paths.setdefault(openapi_path(path), {})[method.lower()] = op
        if op["tags"][0] not in tags:
            tags.append(op["tags"][0])

    responses = {f"Error{s}": {"description": ERRORS.get(s, HTTPStatus(s).phrase),
                               "content": {JSON.media_type: {"schema": {"$ref": "#/components/schemas/EcsError"}}}}
                 for s in sorted(used_errors)}
    if "Error429" in responses:
        responses["Error429"]["headers"] = {"Retry-After": {"description": "Seconds to wait.",
                                                            "schema": {"type": "integer"}}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "ecsd", "version": ecsd.__version__,
                 "description": "The Open Telekom Cloud / Huawei Cloud ECS API (with the IAM, IMS, Glance and "
                                "Nova routes its clients use) as served by this ecsd. Generated from the "
                                "route table and the handlers' declarations (src/ecsd/http/openapi.py)."},
        "tags": _tags(tags),
        "paths": paths,
        "components": {
            "schemas": {"EcsError": ERROR_BODY, **defs.get("$defs", {})},
            "responses": responses,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@documented(ok=200)
async def openapi_json(request: Request) -> Response:
    """The OpenAPI document of this API (no authentication)."""
    state = request.app.state
    body = getattr(state, "openapi_document", None)
    if body is None:
        body = orjson.dumps(build(request.app.routes))
        state.openapi_document = body
    return Response(body, media_type=JSON.media_type)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
