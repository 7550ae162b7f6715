"""The HTTP server in front of the application: uvicorn's httptools protocol with ecsd's limits.

What a single anonymous client could otherwise do to the process, and what stops it here
(defaults in :class:`HttpLimits`, docs/security.md; the choice of server in docs/decisions.md):

* pin memory with huge or unfinished request heads: the request line and headers of one request
  may take at most ``max_header_bytes`` (431 and close);
* pin sockets by connecting and sending nothing, or a head a byte at a time (slowloris): the head
  must arrive within ``header_timeout`` seconds of the connection, or of the first byte of a
  keep-alive connection's next request (408 and close; silent close when nothing came at all);
* trickle a body: a body must arrive within ``body_timeout`` seconds of its head (408 and close;
  the application sees a disconnect);
* open sockets without end: at most ``max_connections`` connections in all and
  ``max_connections_per_address`` from one client address (503 ``Common.1503`` and close);
* idle keep-alive connections close after ``keep_alive_timeout`` seconds (uvicorn's own timer);
* protocol upgrades (``Upgrade: h2c``, WebSocket) are not offered: the request is answered over HTTP/1.1.

A request the parser rejects before the application runs (bad request line, bad header syntax,
bad chunked framing) is answered with the ECS error body and an ``X-Request-Id`` as every other
error is, not uvicorn's plain-text "Invalid HTTP request received.", and logged at INFO (it is the
client's fault, not the service's).

The subclass hooks into uvicorn's ``HttpToolsProtocol`` (``data_received``, ``on_message_begin``,
``on_headers_complete``, ``on_message_complete``, ``send_400_response``); ``tests/test_http_limits.py``
runs a real ``ecsd serve`` against each limit, so an uvicorn change that moves these hooks fails there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ecsd.domain.clock import new_hex_id
from ecsd.domain.errors import EcsError

log = logging.getLogger("ecsd.http.server")


@dataclass
class HttpLimits:
    """Limits of the HTTP server; each can be set with ``ECSD_HTTP_<NAME>`` (docs/security.md)."""

    max_header_bytes: int = 64 * 1024        # request line + headers of one request
    header_timeout: float = 10.0             # seconds for a whole request head
    body_timeout: float = 30.0               # seconds for a whole body, from the end of its head
    keep_alive_timeout: float = 5.0          # idle seconds before a keep-alive connection is closed
    max_connections: int = 1024              # open connections in all
    max_connections_per_address: int = 256   # open connections from one client address

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HttpLimits:
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ECSD_HTTP_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                value = int(raw) if f.type in ("int", int) else float(raw)
            except ValueError:
                raise SystemExit(f"ECSD_HTTP_{f.name.upper()} must be a number, not {raw!r}") from None
            if value <= 0:
                raise SystemExit(f"ECSD_HTTP_{f.name.upper()} must be positive")
            values[f.name] = value
        return cls(**values)


def fit_to_fd_limit(limits: HttpLimits, reserve: int = 128) -> HttpLimits:
    """Raise the soft limit of open files to the hard one (at most 65,536), and lower
    ``max_connections`` if the files this process may open could not hold them and ``reserve`` more
    (database, logs, the local driver's sockets): a connection is refused with an answer rather than
    left in the kernel's queue by a failing ``accept``."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY and hard <= 65536 else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and limits.max_connections > soft - reserve:
        log.warning("at most %d open files: max_connections lowered from %d to %d", soft, limits.max_connections,
                    max(1, soft - reserve))
        limits.max_connections = max(1, soft - reserve)
        limits.max_connections_per_address = min(limits.max_connections_per_address, limits.max_connections)
    return limits


# Codes of the answers given here (domain/errors.py EXTRA holds their status and message).
MALFORMED = "Common.0400"
TIMEOUT = "Common.0408"
HEAD_TOO_LARGE = "Common.0431"
TOO_MANY_CONNECTIONS = "Common.1503"
# After a refusal, how long and how much of what the client still sends is read and dropped.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request that was refused."""


def _raw_error(err: EcsError) -> bytes:
    """A complete HTTP/1.1 response carrying ``err`` as the ECS error body, closing the connection."""
    body = orjson.dumps(err.body())
    rid = new_hex_id().encode()
    return b"".join([
        STATUS_LINE[err.status],
        b"content-type: application/json\r\n",
        b"content-length: ", str(len(body)).encode(), b"\r\n",
        b"x-request-id: ", rid, b"\r\n",
        b"x-openstack-request-id: req-", rid, b"\r\n",
        b"connection: close\r\n\r\n", body])


SWEEP_SECONDS = 0.5    # how often the deadlines of heads, bodies and lingering closes are checked


def protocol_class(limits: HttpLimits) -> type[HttpToolsProtocol]:
    """uvicorn's ``http=`` protocol class with ``limits`` (one per server: it counts its connections).

    Deadlines are plain numbers on each connection, checked by one sweep of all connections every
    ``SWEEP_SECONDS`` (so a timeout fires up to that much late): a timer per request would cost a
    heap push and leave a cancelled handle behind on every request."""
    per_address: Counter[str] = Counter()
    sweeping: list[asyncio.TimerHandle] = []
    live: set = set()

    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn in list(live):
            conn._check_deadlines(now)
        sweeping[:] = [loop.call_later(SWEEP_SECONDS, sweep, loop)] if live else []

    class EcsdHttpProtocol(HttpToolsProtocol):
        # Per connection: bytes of the current request head so far (None: not reading a head), and
        # the deadlines (loop time) of the head, of the body and of a lingering close (None: none).
        _head_bytes: int | None
        _head_deadline: float | None
        _body_deadline: float | None
        _close_deadline: float | None
        _address: str | None
        _lingering: int | None                        # bytes dropped since a refusal (None: none yet)
        _cycles: list                                 # this connection's requests not yet answered

        def connection_made(self, transport) -> None:  # type: ignore[override]
            self._head_bytes = 0
            self._lingering = None
            self._cycles = []
            self._head_deadline = self._body_deadline = self._close_deadline = None
            self._address = None
            super().connection_made(transport)
            address = self.client[0] if self.client else None
            if len(self.connections) > limits.max_connections or (
                    address is not None and per_address[address] >= limits.max_connections_per_address):
                log.info("refused a connection from %s: connection limit reached", address or "?")
                self._reject(EcsError(TOO_MANY_CONNECTIONS, "too many open connections",
                                      message="Api flow control Error because too many connections."), linger=False)
                return
            if address is not None:
                self._address = address
                per_address[address] += 1
            self._head_deadline = self.loop.time() + limits.header_timeout
            live.add(self)
            if not sweeping:
                sweeping.append(self.loop.call_later(SWEEP_SECONDS, sweep, self.loop))

        def connection_lost(self, exc: Exception | None) -> None:
            live.discard(self)
            self._cancel_timers()
            if self._address is not None:
                per_address[self._address] -= 1
                if per_address[self._address] <= 0:
                    del per_address[self._address]
                self._address = None
            super().connection_lost(exc)

        def _cancel_timers(self) -> None:
            self._head_deadline = self._body_deadline = None

        def _check_deadlines(self, now: float) -> None:
            if self._close_deadline is not None:
                if now >= self._close_deadline:
                    self.transport.close()
            elif self._head_deadline is not None and now >= self._head_deadline:
                self._head_deadline = None
                self._head_timed_out()
            elif self._body_deadline is not None and now >= self._body_deadline:
                self._body_deadline = None
                self._body_timed_out()

        def _reject(self, err: EcsError, linger: bool = True) -> None:
            """Answer ``err`` and end the connection. The close lingers: what the client is still
            sending is read and dropped (at most LINGER_BYTES, for LINGER_SECONDS) after a FIN, so that
            its kernel does not answer our close with a reset that discards the answer unread. A
            connection over the connection limits does not linger (it would hold a socket longer)."""
            self._cancel_timers()
            self._head_bytes = None
            # Every request of this connection still in the application (the running one and the
            # pipelined ones behind it) is cut off: its answer, if any, is dropped, never written
            # after ours.
            midway = False
            for cycle in self._cycles:
                if not cycle.response_complete:
                    midway = midway or cycle.response_started
                    cycle.disconnected = True
                    cycle.waiting_for_100_continue = False
                    cycle.message_event.set()
            self._cycles.clear()
            self.pipeline.clear()
            if self.transport.is_closing() or self._lingering is not None:
                return
            if midway:                                # half an answer is out: nothing can follow it
                self.transport.close()
                return
            self.transport.write(_raw_error(err))
            if not linger:
                self.transport.close()
                return
            self._lingering = 0
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.transport.resume_reading()
            self._close_deadline = self.loop.time() + LINGER_SECONDS

        # --- reading ----------------------------------------------------------------------------------

        def data_received(self, data: bytes) -> None:
            if self._lingering is not None:           # after a refusal: drop, within bounds
                self._lingering += len(data)
                if self._lingering > LINGER_BYTES:
                    self.transport.close()
                return
            self._unset_keepalive_if_required()
            if self._head_bytes is not None:
                self._head_bytes += len(data)
                if self._head_deadline is None:       # the first byte of a keep-alive connection's next request
                    self._head_deadline = self.loop.time() + limits.header_timeout
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                # Upgrade: h2c / websocket: not offered (ws="none"); the request is answered over HTTP/1.1.
                pass
            except httptools.HttpParserError as exc:
                if self._lingering is not None:       # a callback refused the request and stopped the parser
                    return
                log.info("malformed HTTP request from %s: %s", self._address or "?", exc)
                self._reject(EcsError(MALFORMED, str(exc)[:200] or None))
                return
            if self._head_bytes is not None and self._head_bytes > limits.max_header_bytes:
                self._too_large()

        def _too_large(self) -> None:
            log.info("refused a request head of more than %d bytes from %s", limits.max_header_bytes,
                     self._address or "?")
            self._reject(EcsError(HEAD_TOO_LARGE, f"the request line and headers may take at most "
                                                  f"{limits.max_header_bytes} bytes"))

        def on_message_begin(self) -> None:
            if self._head_bytes is None:              # a pipelined request: its bytes came with the last one
                self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            # The exact size of the head as parsed (data_received only counts reads, and a whole head
            # may come in one): the URL and every header with its separators.
            # Only where it could be over: more bytes came than the limit, or this is a pipelined request
            # whose bytes came with the one before (not counted).
            received = self._head_bytes
            if (not received or received > limits.max_header_bytes) and \
                    len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > limits.max_header_bytes:
                self._too_large()
                raise _Refused                        # stops the parser: this request never reaches the app
            self._head_bytes = None
            self._head_deadline = None
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None:
                if self._cycles:
                    self._cycles = [c for c in self._cycles if not c.response_complete]
                self._cycles.append(cycle)
                if cycle.more_body:
                    self._body_deadline = self.loop.time() + limits.body_timeout

        def on_message_complete(self) -> None:
            self._body_deadline = None
            super().on_message_complete()
            self._head_bytes = 0                      # what follows is the next request's head

        def send_400_response(self, msg: str) -> None:
            self._reject(EcsError(MALFORMED))

        # --- timers -------------------------------------------------------------------------------------

        def _head_timed_out(self) -> None:
            if self.transport.is_closing():
                return
            if not self._head_bytes:                  # nothing of a request came: just close
                self.transport.close()
                return
            log.info("closed a connection from %s: request head not complete within %.0f s",
                     self._address or "?", limits.header_timeout)
            self._reject(EcsError(TIMEOUT, f"the request head did not arrive within {limits.header_timeout:g} s"))

        def _body_timed_out(self) -> None:
            if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
                return
            log.info("closed a connection from %s: request body not complete within %.0f s",
                     self._address or "?", limits.body_timeout)
            if self.cycle.response_started:
                for cycle in self._cycles:
                    cycle.disconnected = True
                    cycle.message_event.set()
                self.transport.close()
                return
            self._reject(EcsError(TIMEOUT, f"the request body did not arrive within {limits.body_timeout:g} s"))

    return EcsdHttpProtocol
