"""The remote console of a server with a VNC display (the local driver): the console URL's page is noVNC,
its websocket ``/websockify?token=T`` is proxied to the display's unix socket (http/vnc_proxy.py).

The app runs the simulated driver with ``vnc_socket`` added (the local driver's method), pointing at a
small fake display (a unix socket that greets as RFB 3.8 and echoes) or, in the slow tests, at a bare
QEMU with no guest (``-S``: its VNC server answers at once), whose RFB handshake is completed here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from starlette.websockets import WebSocketDisconnect

from ecsd.domain import consoles
from ecsd.http import vnc_proxy
from tests.support import assert_error

V1 = "/v1/{pid}/cloudservers/%s/remote_console"
BODY = {"remote_console": {"protocol": "vnc", "type": "novnc"}}
GREETING = b"RFB 003.008\n"
QEMU = "qemu-system-x86_64"
CHROMIUM = "/usr/bin/chromium"


# --- displays --------------------------------------------------------------------------------------------

class FakeDisplay:
    """A unix socket that greets as an RFB 3.8 server, then echoes what it gets (``hang_up``: closes after
    the greeting). It runs on its own threads: the app's loop is the test client's."""

    def __init__(self, hang_up: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="vnc", dir="/tmp")        # short: a unix socket path has 108 bytes
        self.path = os.path.join(self.dir, "display.sock")
        self.hang_up = hang_up
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.sendall(GREETING)
                if outer.hang_up:
                    return
                while data := self.request.recv(65536):
                    self.request.sendall(data)

        self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def display():
    fake = FakeDisplay()
    yield fake
    fake.close()


@pytest.fixture
def server(api) -> str:
    return api.create_servers(name="vnc-me")[0]


def give_displays(api, monkeypatch, sockets: dict[str, str]) -> None:
    """The app's driver gets the local driver's ``vnc_socket``: these servers run with these displays."""
    driver = api.client.app.state.services.driver
    monkeypatch.setattr(driver, "vnc_socket", lambda server_id: sockets.get(server_id), raising=False)


def console_url(api, server: str) -> str:
    r = api.post(V1 % server, BODY)
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    parts = urlsplit(url)
    assert parts.path == consoles.CONSOLE_PATH          # the cloud's URL shape, whatever the driver
    return url


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def connect(api, token: str | None, subprotocols=("binary",)):
    path = vnc_proxy.WEBSOCKET_PATH + ("" if token is None else f"?token={token}")
    return api.client.websocket_connect(path, subprotocols=list(subprotocols))


def refused(api, token: str | None) -> WebSocketDisconnect:
    """The close frame that ends a session opened with this token before any byte of the display."""
    with connect(api, token) as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_bytes()
    return closed.value


class Stream:
    """Reads exact byte counts from a websocket's binary frames (a frame is any slice of the stream)."""

    def __init__(self, ws) -> None:
        self.ws, self.buffer = ws, b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self.ws.receive_bytes()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


# --- the websocket ---------------------------------------------------------------------------------------

def test_the_websocket_carries_bytes_both_ways_in_binary_frames(api, server, display, monkeypatch):
    give_displays(api, monkeypatch, {server: display.path})
    with connect(api, token_of(console_url(api, server))) as ws:
        assert ws.accepted_subprotocol == "binary"
        assert Stream(ws).read(len(GREETING)) == GREETING
        for payload in (b"RFB 003.008\n", bytes(range(256)) * 300):     # 76800 bytes: more than one read
            ws.send_bytes(payload)
            assert Stream(ws).read(len(payload)) == payload


def test_a_client_that_asks_for_no_subprotocol_gets_none(api, server, display, monkeypatch):
    give_displays(api, monkeypatch, {server: display.path})
    with connect(api, token_of(console_url(api, server)), subprotocols=()) as ws:
        assert ws.accepted_subprotocol is None
        assert Stream(ws).read(len(GREETING)) == GREETING


def test_missing_forged_and_expired_tokens_close_with_policy_violation(api, server, display, monkeypatch):
    give_displays(api, monkeypatch, {server: display.path})
    token = token_of(console_url(api, server))
    forged = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    for bad in (None, "", "abc", forged, "A" * 2000):
        closed = refused(api, bad)
        assert closed.code == 1008, (bad, closed)
        assert "token" in closed.reason
    now = consoles.clock.now()
    monkeypatch.setattr(consoles.clock, "now", lambda: now + consoles.CONSOLE_TTL + 1)
    closed = refused(api, token)
    assert (closed.code, closed.reason) == (1008, "the console token has expired; ask for a new console URL")
    assert vnc_proxy.active_sessions() == 0


def test_a_server_without_a_running_display_closes_with_policy_violation(api, server, monkeypatch):
    token = token_of(console_url(api, server))
    give_displays(api, monkeypatch, {})                       # stopped: vnc_socket answers None
    closed = refused(api, token)
    assert closed.code == 1008 and "not running" in closed.reason


def test_the_simulated_driver_has_no_displays_to_connect_to(api, server):
    closed = refused(api, token_of(console_url(api, server)))
    assert closed.code == 1008 and "no VNC displays" in closed.reason


def test_a_deleted_server_closes_with_policy_violation(api, server, display, monkeypatch):
    give_displays(api, monkeypatch, {server: display.path})
    token = token_of(console_url(api, server))
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": server}]})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    closed = refused(api, token)
    assert closed.code == 1008 and "Ecs.0114" in closed.reason


def test_a_display_that_does_not_answer_closes_with_an_internal_error(api, server, monkeypatch):
    give_displays(api, monkeypatch, {server: "/nonexistent/display.sock"})
    closed = refused(api, token_of(console_url(api, server)))
    assert closed.code == 1011


def test_the_session_ends_when_the_display_closes(api, server, monkeypatch):
    display = FakeDisplay(hang_up=True)
    try:
        give_displays(api, monkeypatch, {server: display.path})
        with connect(api, token_of(console_url(api, server))) as ws:
            assert Stream(ws).read(len(GREETING)) == GREETING
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_bytes()
        assert closed.value.code == 1000 and "display closed" in closed.value.reason
    finally:
        display.close()


def test_text_frames_are_refused(api, server, display, monkeypatch):
    give_displays(api, monkeypatch, {server: display.path})
    with connect(api, token_of(console_url(api, server))) as ws:
        Stream(ws).read(len(GREETING))
        ws.send_text("RFB 003.008\n")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
    assert closed.value.code == 1003


def test_an_idle_session_is_closed(api, server, display, monkeypatch):
    monkeypatch.setenv("ECSD_VNC_IDLE_TIMEOUT", "0.2")
    give_displays(api, monkeypatch, {server: display.path})
    with connect(api, token_of(console_url(api, server))) as ws:
        Stream(ws).read(len(GREETING))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()              # nothing moves either way: the proxy ends the session
    assert closed.value.code == 1000 and "idle" in closed.value.reason


def test_sessions_beyond_the_limit_are_told_to_try_again_later(api, server, display, monkeypatch):
    monkeypatch.setenv("ECSD_VNC_MAX_CONNECTIONS", "2")
    give_displays(api, monkeypatch, {server: display.path})
    token = token_of(console_url(api, server))
    with connect(api, token) as first, connect(api, token) as second:
        for ws in (first, second):
            assert Stream(ws).read(len(GREETING)) == GREETING
        assert vnc_proxy.active_sessions() == 2
        closed = refused(api, token)
        assert closed.code == 1013 and "try again later" in closed.reason
    assert vnc_proxy.active_sessions() == 0
    with connect(api, token) as again:                 # the slots are free again
        assert Stream(again).read(len(GREETING)) == GREETING


def test_a_plain_get_of_the_websocket_is_an_ecs_error(api):
    err = assert_error(api.client.get(vnc_proxy.WEBSOCKET_PATH + "?token=x"), 400, "Ecs.0005")
    assert "Upgrade: websocket" in err["message"]


# --- the page and noVNC's files --------------------------------------------------------------------------

def novnc_or_skip() -> str:
    if not os.path.isfile(os.path.join(vnc_proxy.novnc_dir(), vnc_proxy.RFB_MODULE)):
        pytest.skip(f"noVNC is not installed in {vnc_proxy.novnc_dir()} (apt-get install novnc)")
    return vnc_proxy.novnc_dir()


def test_the_console_page_of_a_server_with_a_display_is_novnc(api, server, display, monkeypatch):
    novnc_or_skip()
    give_displays(api, monkeypatch, {server: display.path})
    url = console_url(api, server)
    page = api.client.get(url[url.index(consoles.CONSOLE_PATH):])
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html") and page.headers["cache-control"] == "no-store"
    assert 'import RFB from "./novnc/core/rfb.js"' in page.text and "vnc-me" in page.text
    assert token_of(url) not in page.text          # the script reads it from the page's address
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp and "'unsafe-inline'" not in csp
    assert "connect-src 'self' ws://testserver wss://testserver" in csp
    module = api.client.get("/novnc/core/rfb.js")
    assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
    assert "export default class RFB" in module.text
    again = api.client.get("/novnc/core/rfb.js", headers={"If-None-Match": module.headers["etag"]})
    assert again.status_code == 304


def test_a_stopped_server_s_page_says_why_and_shows_its_output(api, server, monkeypatch):
    url = console_url(api, server)
    give_displays(api, monkeypatch, {})
    page = api.client.get(url[url.index(consoles.CONSOLE_PATH):])
    assert page.status_code == 200
    assert "not running" in page.text and "ecsd simulated machine" in page.text and "rfb.js" not in page.text


def test_without_novnc_the_page_says_how_to_install_it(api, server, display, monkeypatch, tmp_path):
    monkeypatch.setenv("ECSD_NOVNC_DIR", str(tmp_path))
    give_displays(api, monkeypatch, {server: display.path})
    url = console_url(api, server)
    page = api.client.get(url[url.index(consoles.CONSOLE_PATH):])
    assert page.status_code == 200
    assert "noVNC is not installed" in page.text and "apt-get install novnc" in page.text
    assert f"ws://testserver/websockify?token={quote(token_of(url), safe='')}" in page.text
    assert_error(api.client.get("/novnc/core/rfb.js"), 404, "Common.0404")
    with connect(api, token_of(url)) as ws:                 # the websocket works without noVNC
        assert Stream(ws).read(len(GREETING)) == GREETING


def test_novnc_files_refuse_paths_outside_the_directory(api, monkeypatch, tmp_path):
    root = tmp_path / "novnc"
    (root / "core").mkdir(parents=True)
    (root / "core" / "rfb.js").write_text("export default class RFB {}\n")
    (root / ".hidden.js").write_text("secret")
    (tmp_path / "outside.js").write_text("secret")
    (root / "LICENSE").write_text("licence")
    monkeypatch.setenv("ECSD_NOVNC_DIR", str(root))
    assert api.client.get("/novnc/core/rfb.js").status_code == 200
    for path in ("/novnc/%2e%2e/outside.js", "/novnc/core/%2e%2e/%2e%2e/outside.js", "/novnc/core/%2E%2E%2F..%2Foutside.js",
                 "/novnc/.hidden.js", "/novnc//core/rfb.js", "/novnc/LICENSE", "/novnc/",
                 "/novnc/%2Fetc%2Fpasswd", "/novnc/core", "/novnc/core/rfb.js%00.js"):
        r = api.client.get(path)
        assert r.status_code in (404, 400) and "secret" not in r.text, path
    for name in ("../outside.js", "core/../../outside.js", ".hidden.js", "/etc/passwd.js", "core//rfb.js", "core/./rfb.js",
                 "a\\b.js", "core/rfb.js\x00.js"):
        assert vnc_proxy.safe_path(name) is None, name
    assert vnc_proxy.safe_path("core/rfb.js") == "core/rfb.js"


# --- a real VNC server: QEMU ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qemu_display():
    """A bare QEMU (no disk, no guest, paused) with its VNC server on a unix socket; killed by its PID."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed")
    where = tempfile.mkdtemp(prefix="vnc", dir="/tmp")
    path = os.path.join(where, "vnc.sock")
    proc = subprocess.Popen([QEMU, "-S", "-nodefaults", "-display", "none", "-vga", "std", "-vnc", f"unix:{path}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"QEMU did not open its VNC socket: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
            time.sleep(0.05)
        yield path
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(where, ignore_errors=True)


def rfb_handshake(stream: Stream, send) -> tuple[int, int, str]:
    """RFB 3.8 over the websocket: version, security None, ClientInit (shared); the ServerInit's
    (width, height, desktop name)."""
    assert stream.read(12) == GREETING
    send(GREETING)
    count = stream.read(1)[0]
    assert count > 0, "the server refused the connection"
    types = stream.read(count)
    assert 1 in types, f"security type None not offered: {list(types)}"
    send(b"\x01")
    assert stream.read(4) == b"\x00\x00\x00\x00"            # SecurityResult: OK
    send(b"\x01")                                           # ClientInit: shared
    width, height = struct.unpack(">HH", stream.read(4))
    stream.read(16)                                          # pixel format
    (length,) = struct.unpack(">I", stream.read(4))
    return width, height, stream.read(length).decode()


@pytest.mark.slow
def test_the_websocket_reaches_qemus_vnc_server_and_completes_the_rfb_handshake(api, server, qemu_display,
                                                                                monkeypatch):
    give_displays(api, monkeypatch, {server: qemu_display})
    with connect(api, token_of(console_url(api, server))) as ws:
        assert ws.accepted_subprotocol == "binary"
        width, height, name = rfb_handshake(Stream(ws), ws.send_bytes)
    assert (width, height) in {(640, 480), (720, 400)} and name == "QEMU"
    # Several sessions opened at once: QEMU accepts one connection at a time (a backlog of one), the
    # proxy waits for its turn instead of failing the others.
    token = token_of(console_url(api, server))
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(connect(api, token)) for _ in range(8)]
        for ws in sessions:
            assert rfb_handshake(Stream(ws), ws.send_bytes)[2] == "QEMU"
    assert refused(api, "not-a-token").code == 1008


# --- noVNC in a browser ----------------------------------------------------------------------------------

def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.browser
def test_novnc_in_a_browser_connects_to_qemus_display(settings, creds, qemu_display):
    """The console URL opened in headless Chromium: noVNC's canvas is connected to QEMU's display."""
    novnc_or_skip()
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    import uvicorn

    from ecsd.app import create_app
    from tests.support import Api

    port = free_port()
    settings.host, settings.port = "127.0.0.1", port
    app = create_app(settings)
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not served.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        import httpx

        with httpx.Client(base_url=settings.endpoint, timeout=30) as http:
            api = Api(http, creds, token=creds.get("token"))
            sid = api.create_servers(name="browser-vnc")[0]
            driver = app.state.services.driver
            driver.vnc_socket = lambda server_id: qemu_display if server_id == sid else None
            url = api.post(V1 % sid, BODY).json()["remote_console"]["url"]
        assert url.startswith(settings.endpoint + consoles.CONSOLE_PATH)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            try:
                page = browser.new_page()
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                page.goto(url)
                page.wait_for_selector("body[data-state=connected]", timeout=20_000)
                assert page.locator("#screen canvas").count() == 1
                assert "Connected: QEMU" in page.locator("#status").inner_text()
                size = page.evaluate("() => [window.ecsdRfb._fbWidth, window.ecsdRfb._fbHeight]")
                assert tuple(size) in {(640, 480), (720, 400)}
                assert problems == [], problems            # no CSP violation, no module that failed to load
            finally:
                browser.close()
    finally:
        served.should_exit = True
        thread.join(timeout=30)


# --- the local driver end to end -------------------------------------------------------------------------

@pytest.fixture
def local_settings(settings, monkeypatch):
    """The usual test settings with the local driver (tests/test_local_driver.py's, one small server)."""
    from tests import local_images

    local_images.skip_unless_testable()
    kit = local_images.boot_kit()
    settings.driver = "local"
    for name, value in {"KERNEL": kit.kernel, "INITRD": kit.initrd, "ACCEL": "tcg", "MEMORY_MB": "256",
                        "BOOT_MARKER": local_images.MARKER_END, "BOOT_TIMEOUT": "90", "STOP_TIMEOUT": "20"}.items():
        monkeypatch.setenv(f"ECSD_LOCAL_{name}", value)
    yield settings
    import asyncio

    from ecsd.drivers.local import LocalDriver, LocalOptions

    leftover = LocalDriver(os.path.join(settings.data_dir, "local"), LocalOptions(accel="tcg"))
    for sid in leftover._server_ids():         # never leave a QEMU behind, whatever failed
        asyncio.run(leftover.destroy(sid))


@pytest.mark.slow
def test_a_local_server_s_console_is_its_own_qemu_display(local_settings, creds):
    """Through the API with the local driver: the console URL's websocket reaches the server's own QEMU VNC
    server; once the server is stopped the same token is refused and the page says why."""
    from starlette.testclient import TestClient

    from ecsd.app import create_app
    from ecsd.drivers.local.images import import_image, register
    from ecsd.store.db import Store
    from tests import local_images
    from tests.support import Api, server_body

    root = os.path.join(local_settings.data_dir, "local")
    row = import_image(os.path.join(root, "images"), local_images.os_image("A"), name="ecsd-test-os-A")
    store = Store(local_settings.url)
    with store.tx() as conn:
        register(conn, row)
    store.close()
    with TestClient(create_app(local_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        r = api.post("/v1/{pid}/cloudservers", server_body(row["id"], name="vnc-local"))
        assert r.status_code == 200, r.text
        job = api.wait_job(r.json()["job_id"], timeout=120)
        assert job["status"] == "SUCCESS", job
        sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
        assert client.app.state.services.driver.vnc_socket(sid) is not None
        url = console_url(api, sid)
        page = client.get(url[url.index(consoles.CONSOLE_PATH):])
        assert page.status_code == 200 and ("core/rfb.js" in page.text or "noVNC is not installed" in page.text)
        with connect(api, token_of(url)) as ws:
            width, height, name = rfb_handshake(Stream(ws), ws.send_bytes)
        assert width > 0 and height > 0 and sid in name          # QEMU names the desktop after -name
        api.stop(sid)
        closed = refused(api, token_of(url))
        assert closed.code == 1008 and "not running" in closed.reason
        assert "not running" in client.get(url[url.index(consoles.CONSOLE_PATH):]).text
        r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
        assert api.wait_job(r.json()["job_id"], timeout=60)["status"] == "SUCCESS"


@pytest.mark.slow
def test_sessions_opened_at_the_same_moment_all_reach_qemu(qemu_display):
    """QEMU listens with a backlog of one: connects beyond it fail at once (EAGAIN) unless tried again."""
    import asyncio

    async def greeting() -> bytes:
        reader, writer = await vnc_proxy.open_display(qemu_display)
        try:
            return await reader.readexactly(len(GREETING))
        finally:
            writer.close()

    async def all_at_once() -> list:
        return await asyncio.gather(*[greeting() for _ in range(32)], return_exceptions=True)

    assert asyncio.run(all_at_once()) == [GREETING] * 32


def test_a_display_that_is_gone_fails_at_once():
    import asyncio

    with pytest.raises(OSError):
        asyncio.run(vnc_proxy.open_display("/nonexistent/display.sock", patience=3600))


def test_an_idle_timeout_of_zero_never_closes(api, server, display, monkeypatch):
    monkeypatch.setenv("ECSD_VNC_IDLE_TIMEOUT", "0")
    give_displays(api, monkeypatch, {server: display.path})
    with connect(api, token_of(console_url(api, server))) as ws:
        stream = Stream(ws)
        assert stream.read(len(GREETING)) == GREETING
        ws.send_bytes(b"still here")
        assert stream.read(10) == b"still here"
