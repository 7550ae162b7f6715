"""The request log: the last API calls this process answered, for a test's assertions.

An ASGI middleware (installed with the emulator only) records method, path, query, status, request
id, duration and the JSON body (up to 16 KiB) of each request outside ``/_ecsd/``, in a bounded ring
(``ECSD_REQUEST_LOG_SIZE``, default 1,000; 0: no log, no middleware). Secrets in bodies (passwords, admin passwords, user
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
    """The raw record of each call (a tuple, kept cheaply on the request path); formatted when read."""

    def __init__(self, size: int = 1000) -> None:
        self.entries: deque[tuple] = deque(maxlen=max(1, size))
        self._seq = itertools.count(1)

    def add(self, *raw: Any) -> None:
        self.entries.append((next(self._seq), *raw))

    def clear(self) -> None:
        self.entries.clear()

    def since(self, seq: int = 0) -> list[dict]:
        return [_entry(e) for e in list(self.entries) if e[0] > seq]


def _entry(e: tuple) -> dict:
    seq, wall, method, path, query, status, request_id, took, chunks, size = e
    return {"seq": seq, "time": clock.iso_ms(wall), "method": method, "path": path,
            "query": query.decode("latin-1"), "status": status, "request_id": request_id,
            "duration_ms": round(took * 1000, 3), "body": None if size > MAX_BODY else _body(b"".join(chunks))}


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return _mask(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


class RequestLogMiddleware:
    """Pure ASGI, outside the router: sees every request, including refused ones (401, 404). On the
    request path it only keeps references (the body's chunks, the status); reading the log formats."""

    def __init__(self, app, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        chunks: list[bytes] = []
        box = [0, 0]         # status, body size

        async def recording_receive():
            message = await receive()
            body = message.get("body")
            if body:
                box[1] += len(body)
                if box[1] <= MAX_BODY:
                    chunks.append(body)
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                box[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            self.log.add(time.time(), scope["method"], scope["path"], scope.get("query_string", b""), box[0],
                         (scope.get("state") or {}).get("request_id"), time.perf_counter() - started, chunks,
                         box[1])
