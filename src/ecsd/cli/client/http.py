"""The HTTP side of the client CLI: one :class:`Client` that talks to an ecsd endpoint (or anything that
speaks the same API) and turns every failure into one of three exceptions with a one-line message.

Nothing here knows click or the commands; nothing here imports the server's packages.

* :class:`ApiError`: the service answered with an error status. The code and message come from the
  body, whichever dialect it is in: ECS ``{"error": {"code", "message"}}``, the Huawei gateway's
  ``{"error_code", "error_msg"}``, Keystone's ``{"error": {"code": 401, "title", "message"}}`` or
  Nova's ``{"itemNotFound": {"code", "message"}}``; else the status line and the start of the text.
* :class:`Unreachable`: no usable answer (connection refused, DNS, timeout, a body that is not JSON).
* :class:`NotFound`: a lookup by name found nothing, or found several (raised by the commands).

429 and 503 answers are retried after their ``Retry-After`` (seconds; 1 s when absent or not a
number), at most :data:`RETRIES` times and only when the wait is at most :data:`MAX_RETRY_AFTER`
seconds: GETs always, POSTs only when the caller says the request is safe to repeat (a create
carries an ``X-Client-Token``, so a repeat answers with the first job instead of a second one). A
throttled login (429 after failed logins) is reported at once, with the server's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

RETRIES = 5
MAX_RETRY_AFTER = 30.0
DEFAULT_TIMEOUT = 30.0

# The exit codes of the client CLI (session.py lists them all; docs/client-cli.md).
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_UNREACHABLE = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """A failure the CLI reports in one line (``str(exc)``) and ends with ``exit_code``."""

    exit_code = EXIT_API


class ApiError(ClientError):
    def __init__(self, status: int, code: str | None, message: str, request_id: str | None = None) -> None:
        self.status, self.code, self.message, self.request_id = status, code, message, request_id
        where = f"HTTP {status}" + (f", request {request_id}" if request_id else "")
        super().__init__(f"{code}: {message} ({where})" if code else f"{message} ({where})")


class NotFound(ClientError):
    pass


class Unreachable(ClientError):
    exit_code = EXIT_UNREACHABLE


class BadEndpoint(ClientError):
    exit_code = EXIT_USAGE


def error_of(resp: httpx.Response) -> ApiError:
    """The :class:`ApiError` an error response stands for."""
    rid = resp.headers.get("x-request-id") or resp.headers.get("x-openstack-request-id")
    try:
        body = resp.json()
    except ValueError:
        body = None
    code = message = None
    if isinstance(body, dict):
        if "error_code" in body or "error_msg" in body:           # Huawei API gateway / IAM
            code, message = body.get("error_code"), body.get("error_msg")
        elif len(body) == 1 and isinstance(next(iter(body.values())), dict):
            inner = next(iter(body.values()))                    # ECS "error", Keystone "error", Nova "badRequest"
            code, message = inner.get("code"), inner.get("message") or inner.get("title")
    if message is None:
        text = " ".join(resp.text.split())[:200]
        message = f"{resp.reason_phrase or 'error'}" + (f": {text}" if text else "")
    if isinstance(code, int):       # Keystone and Nova put the HTTP status there: it says nothing more
        code = None
    return ApiError(resp.status_code, str(code) if code else None, str(message), rid)


def retry_after(resp: httpx.Response) -> float:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


class Client:
    """Calls on one endpoint, with an ``X-Auth-Token`` once :meth:`login` has run.

    ``get``/``post``/``delete`` take a path (``/v1/{project_id}/...`` already filled in) and return
    the decoded JSON body (None for an empty one); errors raise :class:`ClientError` subclasses.
    """

    def __init__(self, endpoint: str, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project_id: str | None = None
        self.sleep = sleep
        try:
            url = httpx.URL(self.endpoint)
        except httpx.InvalidURL as exc:
            raise BadEndpoint(f"the endpoint {endpoint!r} is not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise BadEndpoint(f"the endpoint {endpoint!r} is not an http:// or https:// URL")
        self.http = httpx.Client(base_url=self.endpoint, timeout=timeout, transport=transport,
                                 headers={"Accept": "application/json", "User-Agent": "ecsd-cli"})

    def close(self) -> None:
        self.http.close()

    def login(self, creds: dict[str, Any]) -> None:
        """An IAM token (password method, scoped to the project by id), sent on every later call."""
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": creds["user_name"], "password": creds["password"], "domain": {"name": creds["domain_name"]}}}},
            "scope": {"project": {"id": creds["project_id"]}}}}
        resp = self._send("POST", "/v3/auth/tokens", json=body, retry=False)   # a throttled login says so
        token = resp.headers.get("x-subject-token")
        if not token:
            raise Unreachable(f"{self.endpoint} answered the token request without an X-Subject-Token header")
        self.http.headers["X-Auth-Token"] = token
        self.project_id = creds["project_id"]

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._decode(self._send("GET", path, params=clean, retry=True))

    def post(self, path: str, body: Any, *, headers: dict[str, str] | None = None, retry: bool = False) -> Any:
        return self._decode(self._send("POST", path, json=body, headers=headers, retry=retry))

    def delete(self, path: str) -> Any:
        return self._decode(self._send("DELETE", path, retry=False))

    # --- internals ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, retry: bool, **kw: Any) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            resp = self._once(method, path, **kw)
            if resp.status_code in (429, 503) and attempt < RETRIES:
                wait = retry_after(resp)
                if retry and wait <= MAX_RETRY_AFTER:
                    self.sleep(wait)
                    continue
            if resp.status_code >= 400:
                raise error_of(resp)
            return resp
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _once(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kw)
        except httpx.ConnectError as exc:
            raise Unreachable(f"cannot connect to {self.endpoint}: {_reason(exc)}") from None
        except httpx.TimeoutException:
            raise Unreachable(f"no answer from {self.endpoint} within {self.http.timeout.read} s") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"{method} {self.endpoint}{path} failed: {_reason(exc)}") from None

    def _decode(self, resp: httpx.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise Unreachable(f"{self.endpoint} answered {resp.request.method} {resp.request.url.path} "
                              f"with something that is not JSON") from None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is ecsd running there?)"
    return text
