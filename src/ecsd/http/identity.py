"""IAM (Keystone v3) endpoints: ``POST /v3/auth/tokens``, ``GET /v3/projects``, version documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route

from ecsd.domain import clock, identity, logins
from ecsd.domain.errors import EcsError
from ecsd.http.core import (
    Ctx,
    Param,
    documented,
    endpoint,
    error_response,
    json,
    no_content,
    parse,
    read_json,
)

# --- request model (only the password method with project scope is supported) ------------------


class _Named(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=64)


class _User(_Named):
    password: str = Field(max_length=256)
    domain: _Named | None = None


class _Password(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user: _User


class _Identity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    methods: list[str]
    password: _Password | None = None


class _Project(_Named):
    domain: _Named | None = None


class _Scope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    project: _Project | None = None


class _Auth(BaseModel):
    model_config = ConfigDict(extra="ignore")
    identity: _Identity
    scope: _Scope | None = None


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    auth: _Auth


_SUBJECT = {"X-Subject-Token": Param(str, required=True, description="The token to validate or revoke.")}
_PROJECT_FILTERS = {"name": str, "enabled": Param(str, description="1, true or yes: enabled projects; "
                                                                   "any other value: disabled ones.")}


def _catalog(endpoint_url: str, project_id: str, region: str) -> list[dict[str, Any]]:
    def entry(kind: str, name: str, url: str) -> dict[str, Any]:
        return {"type": kind, "name": name, "id": clock.new_hex_id(),
                "endpoints": [{"id": clock.new_hex_id(), "interface": "public", "region": region,
                               "region_id": region, "url": url}]}

    return [
        entry("identity", "keystone", f"{endpoint_url}/v3"),
        entry("compute", "nova", f"{endpoint_url}/v2.1/{project_id}"),
        entry("ecs", "ecs", f"{endpoint_url}/v1/{project_id}"),
        entry("ims", "ims", f"{endpoint_url}"),
        entry("image", "glance", f"{endpoint_url}/image"),
    ]


def token_body(ident: identity.Identity, endpoint_url: str, region: str) -> dict[str, Any]:
    domain = {"id": ident.domain_id, "name": ident.domain_name}
    return {"token": {
        "methods": ["password"],
        "expires_at": clock.iso_us(ident.expires_at) + "Z",
        "issued_at": clock.iso_us(ident.issued_at) + "Z",
        "user": {"id": ident.user_id, "name": ident.user_name, "domain": domain, "password_expires_at": ""},
        "project": {"id": ident.project_id, "name": ident.project_name, "domain": domain},
        "roles": [{"id": "0" * 31 + "1", "name": "te_admin"}, {"id": "0" * 31 + "2", "name": "op_user"}],
        "catalog": _catalog(endpoint_url, ident.project_id, region),
    }}


@documented(ok=201, body=TokenRequest, errors=(401, 429))
async def create_token(request: Request) -> Any:
    """Password login (domain/logins.py: throttles, hashing off the loop, one answer for every failure)."""
    services = request.app.state.services
    try:
        req = parse(TokenRequest, await read_json(request, services.settings.max_body_bytes))
        ident_in = req.auth.identity
        if "password" not in ident_in.methods or ident_in.password is None:
            raise EcsError("Ecs.0005", "only the password method is supported")
        user = ident_in.password.user
        if not user.id and not (user.name and user.domain and (user.domain.name or user.domain.id)):
            raise EcsError("Ecs.0005", "user needs an id, or a name with its domain")
        project = req.auth.scope.project if req.auth.scope else None
        if project is None or not (project.id or project.name):
            raise EcsError("Ecs.0005", "a project scope is required: ECS is a project-level service")
        login = logins.LoginRequest(
            password=user.password, user_id=user.id, user_name=user.name,
            domain_id=user.domain.id if user.domain else None, domain_name=user.domain.name if user.domain else None,
            project_id=project.id, project_name=project.name,
            project_domain_id=project.domain.id if project.domain else None,
            project_domain_name=project.domain.name if project.domain else None)
        address = request.client.host if request.client else ""
        value, ident = await services.logins.login(login, address)
    except EcsError as err:
        return error_response(err)
    services.auth.cache.put(value, ident, ident.expires_at)
    return json(token_body(ident, services.settings.endpoint, services.settings.region), status=201,
                headers={"X-Subject-Token": value})


@endpoint(auth="token", ok=200, headers=_SUBJECT)
async def validate_token(request: Request, ctx: Ctx) -> Any:
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise EcsError("Ecs.0005", "X-Subject-Token is missing")
    ident = await ctx.services.auth.authenticate_token(subject)
    return json(token_body(ident, ctx.services.settings.endpoint, ctx.services.settings.region),
                headers={"X-Subject-Token": subject})


@endpoint(auth="token", ok=204, headers=_SUBJECT, errors=404)
async def revoke_token(request: Request, ctx: Ctx) -> Any:
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise EcsError("Ecs.0005", "X-Subject-Token is missing")
    if not await ctx.services.store.run(identity.revoke_token, subject):
        raise EcsError("Common.0404", "The token does not exist.")
    ctx.services.auth.forget(subject)
    return no_content()


def _project_view(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p["id"], "name": p["name"], "domain_id": p["domain_id"], "description": p["description"],
            "enabled": bool(p["enabled"]), "is_domain": False, "parent_id": p["domain_id"],
            "links": {"self": f"/v3/projects/{p['id']}"}}


@endpoint(auth="token", ok=200, query=_PROJECT_FILTERS)
async def list_projects(request: Request, ctx: Ctx) -> Any:
    rows = await ctx.services.store.run(identity.user_projects, ctx.ident.user_id)
    name = request.query_params.get("name")
    if name is not None:
        rows = [r for r in rows if r["name"] == name]
    enabled = request.query_params.get("enabled")
    if enabled is not None:
        want = enabled.lower() in ("1", "true", "yes")
        rows = [r for r in rows if bool(r["enabled"]) == want]
    return json({"projects": [_project_view(r) for r in rows],
                 "links": {"self": "/v3/projects", "previous": None, "next": None}})


@endpoint(auth="token", ok=200, errors=404)
async def show_project(request: Request, ctx: Ctx) -> Any:
    """``GET /v3/projects/{ref}``: one project the caller belongs to (404 otherwise)."""
    ref = request.path_params["ref"]
    for p in await ctx.services.store.run(identity.user_projects, ctx.ident.user_id):
        if p["id"] == ref:
            return json({"project": _project_view(p)})
    raise EcsError("Common.0404", f"project {ref} does not exist or is not yours")


@endpoint(auth="token", ok=200)
async def list_auth_domains(request: Request, ctx: Ctx) -> Any:
    """``GET /v3/auth/domains``: the caller's domain (how the SDK finds a domain id for GlobalCredentials)."""
    ident = ctx.ident
    return json({"domains": [{"id": ident.domain_id, "name": ident.domain_name, "enabled": True, "description": "",
                              "links": {"self": f"/v3/domains/{ident.domain_id}"}}],
                 "links": {"self": "/v3/auth/domains", "previous": None, "next": None}})


@documented(ok=200)
async def identity_version(request: Request) -> Any:
    base = request.app.state.services.settings.endpoint
    return json({"version": {"id": "v3", "status": "stable", "updated": "2013-03-06T00:00:00Z",
                             "links": [{"rel": "self", "href": f"{base}/v3/"}],
                             "media-types": [{"base": "application/json",
                                              "type": "application/vnd.openstack.identity-v3+json"}]}})


routes = [
    Route("/v3", identity_version, methods=["GET"]),
    Route("/v3/", identity_version, methods=["GET"]),
    Route("/v3/auth/tokens", create_token, methods=["POST"]),
    Route("/v3/auth/tokens", validate_token, methods=["GET"]),
    Route("/v3/auth/tokens", revoke_token, methods=["DELETE"]),
    Route("/v3/projects", list_projects, methods=["GET"]),
    Route("/v3/projects/{ref}", show_project, methods=["GET"]),
    Route("/v3/auth/domains", list_auth_domains, methods=["GET"]),
    Route("/v3/auth/projects", list_projects, methods=["GET"]),
]
