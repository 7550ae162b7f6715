"""The HTTP server's limits, against a real `ecsd serve` over raw sockets (http/server.py).

Each test speaks to the process the way a hostile or broken client would and checks that the
answer is the ECS error body with a request id, or a closed connection, within the configured
bounds (set small here through ``ECSD_HTTP_*``).
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from tests.procs import Proc, read_json
from tests.support import token_request

pytestmark = pytest.mark.slow

ENV = {"ECSD_SIM_DELAY": "0", "ECSD_HTTP_HEADER_TIMEOUT": "1", "ECSD_HTTP_BODY_TIMEOUT": "1",
       "ECSD_HTTP_KEEP_ALIVE_TIMEOUT": "1", "ECSD_HTTP_MAX_HEADER_BYTES": "16384"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("limits"))
    log = os.path.join(data, "server.log")
    proc = Proc.serve(data, env=ENV, log_path=log)
    proc.data_dir = data
    proc.log_path = log
    try:
        yield proc
    finally:
        proc.stop()


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(5)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except TimeoutError:
        raise AssertionError(f"no end of answer within the socket timeout; got {out[:200]!r}") from None
    except ConnectionResetError:
        return out


def _exchange(server, data: bytes) -> bytes:
    with _connect(server) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_all(sock)


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return status, headers, body


def _assert_ecs_error(raw: bytes, status: int, code: str) -> None:
    got, headers, body = _parse(raw)
    assert got == status, raw[:300]
    assert headers.get("x-request-id"), headers
    assert json.loads(body)["error"]["code"] == code


def test_a_malformed_request_gets_the_ecs_error_body_and_a_request_id(server):
    _assert_ecs_error(_exchange(server, b"NOT-HTTP AT ALL\r\n\r\n"), 400, "Common.0400")
    _assert_ecs_error(_exchange(server, b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"), 400, "Common.0400")


def test_a_huge_request_head_is_refused_with_431(server):
    raw = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n")
    _assert_ecs_error(raw, 431, "Common.0431")


def test_many_headers_count_together(server):
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(400))     # ~44 KB
    _assert_ecs_error(_exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"),
                      431, "Common.0431")


def test_an_unfinished_head_gets_408_after_the_header_timeout(server):
    _assert_ecs_error(_exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"), 408, "Common.0408")


def test_a_connection_that_sends_nothing_is_closed(server):
    with _connect(server) as sock:
        assert _read_all(sock) == b""


def test_an_idle_keep_alive_connection_is_closed(server):
    with _connect(server) as sock:
        sock.settimeout(3)     # uvicorn's own default (5 s) would not do
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        assert _read_all(sock) == b""      # closed after the keep-alive timeout (1 s here), not left open


def test_a_trickled_body_gets_408_after_the_body_timeout(server):
    raw = _exchange(server, b"POST /v3/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 100\r\n\r\n{\"auth\":")
    _assert_ecs_error(raw, 408, "Common.0408")


def test_a_trailing_slash_redirect_never_names_the_request_host(server):
    status, headers, _ = _parse(_exchange(
        server, b"GET /healthz/?a=1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"))
    assert status == 307
    assert headers["location"] == "/healthz?a=1"


def test_a_client_gone_mid_body_is_not_an_error(server):
    creds = read_json(os.path.join(server.data_dir, "credentials.json"))
    body = json.dumps(token_request(creds)).encode()
    for path in (b"/v3/auth/tokens", b"/v1/" + creds["project_id"].encode() + b"/cloudservers"):
        with _connect(server) as sock:
            sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"X-Auth-Token: nope\r\nContent-Length: %d\r\n\r\n" % (len(body) + 50) + body[:20])
            time.sleep(0.2)
    time.sleep(0.3)
    with open(server.log_path, errors="replace") as fh:
        log = fh.read()
    assert "ERROR" not in log and "Traceback" not in log, log[-2000:]


def test_connections_beyond_the_per_address_limit_are_refused(tmp_path):
    proc = Proc.serve(str(tmp_path / "data"), env={**ENV, "ECSD_HTTP_HEADER_TIMEOUT": "10",
                                                   "ECSD_HTTP_MAX_CONNECTIONS_PER_ADDRESS": "4"})
    try:
        idle = [_connect(proc) for _ in range(4)]
        time.sleep(0.2)
        try:
            _assert_ecs_error(_exchange(proc, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                              503, "Common.1503")
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.2)
        status, _, _ = _parse(_exchange(proc, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        assert status == 200       # the count goes down as connections close
    finally:
        proc.stop()


def test_garbage_after_a_request_in_flight_is_answered_once_and_logs_no_error(server):
    """A request still in the application when the client's next bytes are refused: the refusal is the
    one answer, and the application's late answer is dropped, not written after it (no traceback)."""
    before = os.path.getsize(server.log_path)
    creds = read_json(os.path.join(server.data_dir, "credentials.json"))
    slow = (b"POST /v3/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(json.dumps(token_request(creds, "wrong-password-1"))), json.dumps(
                token_request(creds, "wrong-password-1")).encode()))
    for _ in range(3):
        raw = _exchange(server, slow + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + b"GARBAGE\r\n\r\n")
        assert raw.count(b"HTTP/1.1 ") == 1, raw[:400]
        _assert_ecs_error(raw, 400, "Common.0400")
    time.sleep(0.5)                      # the failed logins' answers come after their time floor
    with open(server.log_path, errors="replace") as fh:
        fh.seek(before)
        log = fh.read()
    assert "ERROR" not in log and "Traceback" not in log, log[-2000:]
