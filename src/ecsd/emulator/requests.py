"""The request log: the last API calls this process answered, for a test's assertions.

An ASGI middleware (installed with the emulator only) records method, path, query, status, request
id, duration and the JSON body (up to 16 KiB) of each request outside ``/_ecsd/``, in a bounded ring
(``ECSD_REQUEST_LOG_SIZE``, default 1,000). Secrets in bodies (passwords, admin passwords, user
data, secret keys) are masked before they are kept. Nothing is written anywhere.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any

import orjson

from ecsd.domain import clock

PREFIX = "/_ecsd/"
MAX_BODY = 16 * 1024          # 1,000 entries hold at most ~16 MB of bodies
_SECRET_KEYS = {"password", "adminpass", "admin_pass", "user_data", "sk", "secret", "private_key"}
MASK = "******"


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if k.lower() in _SECRET_KEYS else _mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


class RequestLog:
    def __init__(self, size: int = 1000) -> None:
        self.entries: deque[dict] = deque(maxlen=max(1, size))
        self._seq = itertools.count(1)

    def add(self, entry: dict) -> None:
        entry["seq"] = next(self._seq)
        self.entries.append(entry)

    def clear(self) -> None:
        self.entries.clear()

    def since(self, seq: int = 0) -> list[dict]:
        return [e for e in self.entries if e["seq"] > seq]


def _body(raw: bytes, truncated: bool) -> Any:
    if truncated:
        return None
    if not raw:
        return None
    try:
        return _mask(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


class RequestLogMiddleware:
    """Pure ASGI, outside the router: sees every request, including refused ones (401, 404)."""

    def __init__(self, app, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        chunks: list[bytes] = []
        size = 0
        status = 0

        async def recording_receive():
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                size += len(body)
                if size <= MAX_BODY:
                    chunks.append(body)
            return message

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            state = scope.get("state") or {}
            self.log.add({
                "time": clock.iso_ms(clock.now()), "method": scope["method"], "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"), "status": status,
                "request_id": state.get("request_id"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "body": _body(b"".join(chunks), size > MAX_BODY)})
