"""Who is calling: an ``X-Auth-Token`` (Keystone style) or an AK/SK signature (Huawei SDK style).

* ``X-Auth-Token`` present: token authentication, exactly as before (it wins when both are sent).
* Otherwise ``Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...``: the
  body is read, the signature recomputed with the AK's secret key (:mod:`ecsd.http.signing`) and
  compared in constant time. The caller is the AK's user; the project is the one in the path
  (``/v1/{project_id}/...``, ``/v2.1/{project_id}/...``) or, for paths without one (IMS
  ``/v2/cloudimages``, Glance ``/v2/images``), the signed ``X-Project-Id`` header. When both are
  present they must agree. IAM paths (``/v3/...``) may also be called without a project.
* Neither: 401 ``Common.0013``.

Error codes (every body is the ECS ``{"error": {"code", "message", "details"}}``, which both the
Huawei SDK and openstacksdk read):

* 401 ``Common.0013``: no credentials at all, or a bad/expired token (openstacksdk re-authenticates
  on 401, never on 403).
* 401 ``APIGW.0301``: anything wrong with a signature: unknown, inactive or revoked AK, wrong SK,
  tampered method/path/query/signed header/body, stale (> 15 min), future or malformed
  ``X-Sdk-Date``, ``host``/``x-sdk-date`` not signed, another algorithm (SDK-HMAC-SM3, ...), an
  unsigned ``X-Project-Id``, or ``X-Security-Token`` (temporary credentials are not supported).
  ``APIGW.0301`` is the code Huawei's API gateway answers with for failed AK/SK authentication.
* 400 ``Ecs.0023``: the project in the path or ``X-Project-Id`` is not one the caller may use (not a
  member, unknown, or the SDK's literal ``{project_id}``), or path and header disagree. The same
  code is used for tokens, as the ECS reference documents it.
* 400 ``Ecs.0005``: a signed request to a project-level API without any project, or a signed body
  sent without Content-Length (chunked), or larger than the body limit.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.requests import Request

from ecsd.domain import access_keys, clock, identity
from ecsd.domain.cache import TtlCache
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.identity import Identity
from ecsd.http import signing

log = logging.getLogger("ecsd.auth")

SIGNATURE_ERROR = "APIGW.0301"
_SIGNATURE_MESSAGE = "Incorrect IAM authentication information: verify aksk signature fail."
# An unknown AK costs the same HMAC as a known one, so timing does not tell them apart.
_DUMMY_SK = access_keys.new_secret_key()
# last_used_at is written at most this often per key (it is informative, not exact).
TOUCH_INTERVAL = 60.0
DEFAULT_MAX_BODY = 256 * 1024


def signature_error(detail: str) -> EcsError:
    return EcsError(SIGNATURE_ERROR, detail, status=401, message=_SIGNATURE_MESSAGE)


def _plausible_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isprintable()


class Authenticator:
    def __init__(self, store, cache_ttl: float = 5.0, settings=None) -> None:
        self.store = store
        self.settings = settings                        # None: taken from the app on first use
        self.cache: TtlCache[Identity] = TtlCache(cache_ttl)              # token value -> Identity
        self.scopes: TtlCache[Identity] = TtlCache(cache_ttl)             # "user_id project_id" -> Identity
        self.keys: TtlCache[access_keys.AccessKey] = TtlCache(cache_ttl, 10_000)  # ak -> key, SK decrypted
        self.max_skew = signing.MAX_SKEW
        self._box = None
        self._touched: dict[str, float] = {}

    async def authenticate(self, request: Request) -> Identity:
        token = request.headers.get("x-auth-token")
        if token:
            return await self.authenticate_token(token)
        authorization = request.headers.get("authorization")
        if authorization:
            return await self.authenticate_signature(request, authorization)
        raise EcsError("Common.0013", "Neither X-Auth-Token nor an SDK-HMAC-SHA256 Authorization header "
                                      "was sent.", status=401)

    async def authenticate_token(self, token: str) -> Identity:
        ident = self.cache.get(token)
        if ident is None:
            if len(token) > 16384:
                raise EcsError("Common.0013", "The token is not valid.", status=401)
            ident = await self.store.run(identity.lookup_token, token)
            if ident is None:
                raise EcsError("Common.0013", "The token is not valid or has expired.", status=401)
            self.cache.put(token, ident, ident.expires_at)
        return ident

    # --- AK/SK --------------------------------------------------------------------------------------------

    async def authenticate_signature(self, request: Request, authorization: str) -> Identity:
        if "x-security-token" in request.headers:
            raise signature_error("Temporary security credentials (X-Security-Token) are not supported; "
                                  "sign with a permanent AK/SK.")
        if not signing.is_signature_scheme(authorization):
            raise signature_error(f"Unsupported Authorization scheme; sign with {signing.ALGORITHM}.")
        body = await self._read_body(request)
        scope = request.scope
        raw_path = scope.get("raw_path") or quote(scope["path"], safe="/").encode("ascii")
        try:
            prepared = signing.prepare(authorization=authorization, method=request.method, raw_path=raw_path,
                                       raw_query=scope.get("query_string", b""), headers=scope["headers"],
                                       body=body, now=clock.now(), max_skew=self.max_skew)
        except signing.SignatureError as exc:
            raise signature_error(str(exc)) from None

        key = await self._access_key(request, prepared.access_key)
        matches = signing.verify(prepared, key.sk if key is not None else _DUMMY_SK)
        if key is None:
            raise signature_error("The access key (AK) does not exist.")
        if not matches:
            log.debug("signature mismatch for %s; canonical request:\n%s", key.ak,
                      prepared.canonical_request.decode("utf-8", "replace"))
            raise signature_error("The request signature does not match the one computed with the "
                                  "access key's secret (check the SK, and that nothing changed the request).")
        if key.status != access_keys.ACTIVE:
            raise signature_error("The access key (AK) is not active.")
        if not key.user_enabled:
            raise signature_error("The user or domain owning the access key is disabled.")
        ident = await self._scope(request, key, prepared)
        await self._touch(key.ak)
        return ident

    async def _read_body(self, request: Request) -> bytes:
        """The whole body, bounded, and cached by Starlette so that handlers (read_json) read it again."""
        services = getattr(request.app.state, "services", None)
        limit = getattr(getattr(services, "settings", None), "max_body_bytes", DEFAULT_MAX_BODY)
        length = request.headers.get("content-length")
        if length is None:
            if "transfer-encoding" in request.headers:
                raise invalid("a signed request must carry its body with a Content-Length")
            return await request.body()
        if not length.isdigit():
            raise invalid("Content-Length is not a number")
        if int(length) > limit:
            raise invalid(f"request body larger than {limit} bytes")
        return await request.body()

    def _secret_box(self, request: Request):
        if self._box is None:
            settings = self.settings or request.app.state.services.settings
            self._box = access_keys.secret_box(settings)
        return self._box

    async def _access_key(self, request: Request, ak: str) -> access_keys.AccessKey | None:
        if not access_keys.looks_like_access_key(ak):
            return None
        key = self.keys.get(ak)
        if key is None:
            try:
                key = await self.store.run(access_keys.lookup, self._secret_box(request), ak)
            except access_keys.SecretKeyError as exc:
                log.error("%s", exc)
                raise EcsError("Common.0001") from None
            if key is None:
                return None
            self.keys.put(key.ak, key)
        return key

    async def _scope(self, request: Request, key: access_keys.AccessKey,
                     prepared: signing.Prepared) -> Identity:
        # GlobalCredentials name the account in X-Domain-Id: signed, and the access key's own.
        domains = signing.header_values(request.scope["headers"], "x-domain-id")
        if domains:
            if "x-domain-id" not in prepared.signed_headers:
                raise signature_error("X-Domain-Id must be among the signed headers.")
            if domains[0].decode("latin-1").strip() != key.domain_id:
                raise signature_error("X-Domain-Id is not the account that owns the access key.")
        path_project = request.path_params.get("project_id")
        header_project = None
        sent = signing.header_values(request.scope["headers"], "x-project-id")
        if sent:
            if "x-project-id" not in prepared.signed_headers:
                raise signature_error("X-Project-Id must be among the signed headers.")
            header_project = sent[0].decode("latin-1").strip()
        if path_project is not None and header_project is not None and path_project != header_project:
            raise EcsError("Ecs.0023", "X-Project-Id and the project in the path differ.")
        project_id = path_project if path_project is not None else header_project
        if project_id is None:
            path = request.url.path
            if path == "/v3" or path.startswith("/v3/"):
                # IAM calls (e.g. the SDK looking up its project by name) need no project.
                now = clock.now()
                return Identity(key.user_id, key.user_name, key.domain_id, key.domain_name, "", "",
                                now + identity.SIGNED_IDENTITY_TTL, now)
            raise invalid("a signed request to this API needs a project: sign an X-Project-Id header")
        if not _plausible_id(project_id):
            raise EcsError("Ecs.0023", "The project is unknown or not available to this access key's user.")
        cache_key = f"{key.user_id} {project_id}"
        ident = self.scopes.get(cache_key)
        if ident is None:
            ident = await self.store.run(identity.scoped_identity, key.user_id, project_id)
            if ident is None:
                raise EcsError("Ecs.0023", "The project is unknown or not available to this access key's "
                                           "user.")
            self.scopes.put(cache_key, ident, ident.expires_at)
        return ident

    async def _touch(self, ak: str) -> None:
        now = clock.now()
        if now - self._touched.get(ak, 0.0) < TOUCH_INTERVAL:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[ak] = now
        try:
            await self.store.run(access_keys.touch, ak, now)
        except Exception:  # informative only: never fail a request over it
            log.warning("could not record the last use of access key %s", ak, exc_info=True)

    # --- shared ---------------------------------------------------------------------------------------

    @staticmethod
    def check_project(ident: Identity, project_id: str | None) -> None:
        if project_id is not None and project_id != ident.project_id:
            raise EcsError("Ecs.0023")

    def forget(self, token: str) -> None:
        self.cache.drop(token)

    def forget_access_key(self, ak: str) -> None:
        self.keys.drop(ak)
