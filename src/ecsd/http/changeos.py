"""Change OS and reinstall OS over HTTP: parse the body, call ``domain.changeos.accept``, return the job id.

    POST /v1/{project_id}/cloudservers/{server_id}/changeos      image without Cloud-Init
    POST /v2/{project_id}/cloudservers/{server_id}/changeos      image with Cloud-Init (user_data)
    POST /v1/{project_id}/cloudservers/{server_id}/reinstallos
    POST /v2/{project_id}/cloudservers/{server_id}/reinstallos

Bodies are validated strictly (wrong types and unknown fields are Ecs.0005), accepting exactly the
fields of the reference plus those the official SDK's models send (``adminpass``, ``isAutoPay``,
the encryption keys in v1 metadata).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.domain import changeos
from ecsd.domain.clock import is_uuid
from ecsd.domain.errors import invalid
from ecsd.http.core import Ctx, endpoint, json, parse, read_json

_STRICT = ConfigDict(extra="forbid", strict=True)


class MetadataV1(BaseModel):
    model_config = _STRICT
    BYOL: str | None = Field(default=None, max_length=16)
    system_encrypted: str | None = Field(default=None, alias="__system__encrypted")
    system_cmkid: str | None = Field(default=None, alias="__system__cmkid", min_length=1, max_length=64)

    @field_validator("system_encrypted")
    @classmethod
    def _enc(cls, v: str | None) -> str | None:
        if v is not None and v not in ("0", "1"):
            raise ValueError('must be "0" or "1"')
        return v


class MetadataV2(MetadataV1):
    user_data: str | None = Field(default=None, max_length=64 * 1024)


class _Common(BaseModel):
    model_config = _STRICT
    keyname: str | None = Field(default=None, min_length=1, max_length=64)
    userid: str | None = Field(default=None, min_length=1, max_length=64)
    adminpass: str | None = Field(default=None, max_length=64)
    mode: str | None = None
    isAutoPay: str | bool | None = None

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str | None) -> str | None:
        if v is not None and v != changeos.WITH_STOP_SERVER:
            raise ValueError(f'the only defined value is "{changeos.WITH_STOP_SERVER}"')
        return v


class ChangeV1(_Common):
    imageid: str
    metadata: MetadataV1 | None = None

    @field_validator("imageid")
    @classmethod
    def _uuid(cls, v: str) -> str:
        if not is_uuid(v):
            raise ValueError("must be a UUID")
        return v


class ChangeV2(ChangeV1):
    metadata: MetadataV2 | None = None


class ReinstallV1(_Common):
    metadata: MetadataV1 | None = None


class ReinstallV2(ReinstallV1):
    metadata: MetadataV2 | None = None


class ChangeBodyV1(BaseModel):
    model_config = _STRICT
    os_change: ChangeV1 = Field(alias="os-change")


class ChangeBodyV2(BaseModel):
    model_config = _STRICT
    os_change: ChangeV2 = Field(alias="os-change")


class ReinstallBodyV1(BaseModel):
    model_config = _STRICT
    os_reinstall: ReinstallV1 = Field(alias="os-reinstall")


class ReinstallBodyV2(BaseModel):
    model_config = _STRICT
    os_reinstall: ReinstallV2 = Field(alias="os-reinstall")


_BODIES = {(False, False): ChangeBodyV1, (False, True): ChangeBodyV2,
           (True, False): ReinstallBodyV1, (True, True): ReinstallBodyV2}


def to_domain(body: BaseModel, reinstall: bool, cloud_init: bool) -> changeos.OsChange:
    req = body.os_reinstall if reinstall else body.os_change  # type: ignore[attr-defined]
    meta = req.metadata
    user_data = getattr(meta, "user_data", None) if meta else None
    if user_data is not None:
        changeos.decode_user_data(user_data)
    encrypted = bool(meta and meta.system_encrypted == "1")
    if encrypted and not meta.system_cmkid:
        raise invalid("metadata.__system__cmkid is required when __system__encrypted is \"1\"")
    return changeos.OsChange(
        reinstall=reinstall, cloud_init=cloud_init, image_id=None if reinstall else req.imageid,
        keyname=req.keyname, userid=req.userid, adminpass=req.adminpass, mode=req.mode,
        byol=bool(meta and meta.BYOL == "true"), user_data=user_data, encrypted=encrypted,
        cmk_id=meta.system_cmkid if meta else None)


def _handler(reinstall: bool, cloud_init: bool):
    model = _BODIES[(reinstall, cloud_init)]

    @endpoint(ok=200, body=model, errors=404)
    async def handle(request: Request, ctx: Ctx) -> Response:
        body = parse(model, await read_json(request, ctx.services.settings.max_body_bytes))
        req = to_domain(body, reinstall, cloud_init)
        job_id = await ctx.services.store.run(changeos.accept, ctx.ident, request.path_params["server_id"], req,
                                              ctx.services.driver)
        ctx.services.submitted()
        return json({"job_id": job_id})

    handle.__name__ = f"{'reinstall' if reinstall else 'change'}_os_{'v2' if cloud_init else 'v1'}"
    return handle


routes = [
    Route("/v1/{project_id}/cloudservers/{server_id}/changeos", _handler(False, False), methods=["POST"]),
    Route("/v2/{project_id}/cloudservers/{server_id}/changeos", _handler(False, True), methods=["POST"]),
    Route("/v1/{project_id}/cloudservers/{server_id}/reinstallos", _handler(True, False), methods=["POST"]),
    Route("/v2/{project_id}/cloudservers/{server_id}/reinstallos", _handler(True, True), methods=["POST"]),
]
