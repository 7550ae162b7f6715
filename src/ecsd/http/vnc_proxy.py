"""VNC over websocket for servers with a display (the local driver), as Nova's novncproxy does it.

    GET /vnc_auto.html?token=T     (http/consoles.py) the console page: noVNC's client for a server with
                                   a display (:func:`novnc_page`), else the page of its console output
    GET /websockify?token=T        Upgrade: websocket. The VNC session: bytes both ways between the
                                   websocket (binary frames, subprotocol ``binary`` when asked for) and
                                   the server's VNC unix socket (QEMU's own VNC server). Without the
                                   upgrade: 400 Ecs.0005 (it is not a page).
    GET /novnc/{path}              noVNC's files (Debian's ``novnc`` package, read-only)

No reference page: the API's URLs (domain/consoles.py) lead here. There is no IAM authentication on
these routes, as on the cloud's console host: the token in the URL is the credential (the project, the
server and an expiry sealed with the installation's key, 10 minutes, domain/consoles.py). The page
and its files are served without it: they hold no data.

The websocket is accepted, then the token is checked: a missing, forged or expired one, a server
deleted since, a server that is not running or a driver without displays close it with 1008 (policy
violation) and the reason, which noVNC shows. The token is checked when a session opens, not during
it (as Nova's proxy). At most ``ECSD_VNC_MAX_CONNECTIONS`` (64) sessions run in one process (more
close with 1013, try again later). A session without a byte either way for ``ECSD_VNC_IDLE_TIMEOUT``
seconds (900; 0: never) is closed with 1000: QEMU sends nothing while the screen does not change, so a
console only looked at counts as idle. Everything runs on the event loop with asyncio streams; the
proxy holds at most one read (64 KiB) per direction, and waits its turn at QEMU's socket
(:func:`open_display`).

noVNC: ``ECSD_NOVNC_DIR`` (default /usr/share/novnc, ``apt-get install novnc``; version 1.3 tested). The
page is ours (a small ES module importing noVNC's ``core/rfb.js``), so that the console URL keeps the
cloud's shape; noVNC's own pages (``/novnc/vnc.html``) work too with ``?path=websockify%3Ftoken%3DT``.
Without noVNC the page says how to install it, and the websocket still serves any noVNC client.
Files are read on a worker thread the first time and answered from memory, with a strong ETag;
a path with an empty, dot or dot-dot segment, or of a type not listed in ``TYPES``, is 404.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route, get_route_path
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ecsd.domain import consoles
from ecsd.domain.errors import EcsError, invalid
from ecsd.envvars import number
from ecsd.http.core import Ctx, documented, endpoint

WEBSOCKET_PATH = "/websockify"
NOVNC_PATH = "/novnc"
DEFAULT_NOVNC_DIR = "/usr/share/novnc"
RFB_MODULE = "core/rfb.js"                  # what the page imports; its presence means "noVNC is installed"
MAX_CONNECTIONS = 64                        # sessions per process (ECSD_VNC_MAX_CONNECTIONS)
IDLE_TIMEOUT = 900.0                        # seconds without a byte either way (ECSD_VNC_IDLE_TIMEOUT)
CHUNK = 64 * 1024
DISPLAY_PATIENCE = 5.0                      # seconds to wait for QEMU to accept (backlog of one)
POLICY_VIOLATION, TRY_AGAIN_LATER, UNSUPPORTED_DATA, INTERNAL_ERROR = 1008, 1013, 1003, 1011
TYPES = {".js": "text/javascript; charset=utf-8", ".html": "text/html; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
         ".oga": "audio/ogg", ".mp3": "audio/mpeg"}
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def novnc_dir() -> str:
    return os.environ.get("ECSD_NOVNC_DIR") or DEFAULT_NOVNC_DIR


# --- noVNC's files ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class File:
    body: bytes
    media_type: str
    etag: str


_files: dict[tuple[str, str], File] = {}      # (directory, path) -> file: what exists, so bounded


def safe_path(path: str) -> str | None:
    """``path`` when every segment is a plain name (no empty, ``.``, ``..``, hidden or odd one) and its type is
    served, else None: nothing outside the directory can be named."""
    parts = path.split("/")
    if not all(_SEGMENT.fullmatch(p) for p in parts) or any(p in (".", "..") for p in parts):
        return None
    return path if os.path.splitext(parts[-1])[1].lower() in TYPES else None


def _read(root: str, path: str) -> File | None:
    """The file, or None (blocking: run on a thread). Symbolic links the package made are followed."""
    full = os.path.join(root, path)
    try:
        if not os.path.isfile(full):
            return None
        with open(full, "rb") as fh:
            body = fh.read()
    except OSError:
        return None
    return File(body, TYPES[os.path.splitext(path)[1].lower()], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


async def novnc_file(path: str) -> File | None:
    """A file of noVNC, read once per process (the files of a package change only with an upgrade); a
    miss is not remembered (that would let anyone fill the memory with names)."""
    name = safe_path(path)
    if name is None:
        return None
    key = (novnc_dir(), name)
    found = _files.get(key)
    if found is None:
        found = await asyncio.to_thread(_read, *key)
        if found is not None:
            _files[key] = found
    return found


async def novnc_installed() -> bool:
    return await novnc_file(RFB_MODULE) is not None


@documented(ok=(200, 304), errors=404)
async def novnc_asset(request: Request) -> Response:
    """A file of noVNC (the remote console's client), from ECSD_NOVNC_DIR."""
    found = await novnc_file(request.path_params["path"])
    if found is None:
        raise EcsError("Common.0404", "no such noVNC file")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer"}
    given = request.headers.get("if-none-match", "")
    if found.etag in {tag.strip().removeprefix("W/") for tag in given.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


novnc_asset.media_type = "*/*"     # type: ignore[attr-defined]  # one of several, per file (http/openapi.py)


# --- the console page ------------------------------------------------------------------------------------

# The page's one script, constant (the token is read from the page's own URL), allowed by its hash.
# ``path``: noVNC's parameter, the websocket's path from the host's root; by default the websocket beside
# this page (so that a prefix of the endpoint is kept).
_SCRIPT = """
import RFB from "./novnc/core/rfb.js";
const query = new URLSearchParams(location.search);
const status = (text) => { document.getElementById("status").textContent = text; };
const url = query.get("path") !== null ? new URL("/" + query.get("path"), location.href)
                                        : new URL("websockify", location.href);
if (query.get("path") === null) url.searchParams.set("token", query.get("token") || "");
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const rfb = new RFB(document.getElementById("screen"), url.href, {shared: true, wsProtocols: ["binary"]});
let name = document.title;
rfb.scaleViewport = true;
rfb.addEventListener("desktopname", (e) => { name = e.detail.name; });
rfb.addEventListener("connect", () => { status("Connected: " + name); document.body.dataset.state = "connected"; });
rfb.addEventListener("disconnect", (e) => {
  document.body.dataset.state = "disconnected";
  status(e.detail.clean ? "Disconnected (ask for a new console URL to reconnect)"
                        : "The connection failed or was refused; ask for a new console URL");
});
rfb.addEventListener("securityfailure", (e) => { status("Refused: " + (e.detail.reason || e.detail.status)); });
document.getElementById("cad").addEventListener("click", () => rfb.sendCtrlAltDel());
window.ecsdRfb = rfb;
"""
_STYLE = """
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; background: #3a3a3a; font: 13px sans-serif; }
#bar { display: flex; justify-content: space-between; align-items: center; padding: 4px 8px;
       background: #2b4a6f; color: #fff; }
#screen { flex: 1; overflow: hidden; }
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# connect-src names ws:// and wss:// of the page's own host: not every browser counts them as 'self'.
_CSP = (f"default-src 'none'; script-src 'self' {_hash(_SCRIPT)}; style-src 'self' {_hash(_STYLE)}; "
        "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; connect-src 'self'")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<link rel="icon" href="data:,">
<title>Console of {name}</title>
<style>{style}</style>
<script type="module">{script}</script>
</head><body data-state="connecting">
<div id="bar"><span id="status">Connecting to the console of {name} ({id})</span>
<button id="cad" type="button">Send Ctrl+Alt+Del</button></div>
<div id="screen"></div>
</body></html>
"""

_MISSING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Console of {name}: noVNC is not installed</title></head>
<body><h1>Console of {name}: noVNC is not installed</h1>
<p>Server {id} has a VNC display, but this ecsd finds no noVNC client in <code>{dir}</code> (it needs
<code>{dir}/{rfb}</code>). Install it on the ecsd host (Debian, Ubuntu: <code>apt-get install novnc</code>) or
set <code>ECSD_NOVNC_DIR</code> to a noVNC directory, then reload this page within 10 minutes of asking for the URL.</p>
<p>The display is already served over a websocket: any noVNC client can connect to
<code>{websocket}</code> (the same token) with the subprotocol <code>binary</code>.</p>
</body></html>
"""


def _websocket_url(request: Request) -> str:
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}{WEBSOCKET_PATH}?token={quote(request.query_params.get('token', ''), safe='')}"


async def novnc_page(request: Request, server: dict[str, Any]) -> Response:
    """noVNC's client connected to the server's display through :func:`websockify`, or (without noVNC)
    a page saying how to install it."""
    name, sid = html.escape(server["name"]), html.escape(server["id"])
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
    if not await novnc_installed():
        page = _MISSING.format(name=name, id=sid, dir=html.escape(novnc_dir()), rfb=RFB_MODULE,
                               websocket=html.escape(_websocket_url(request)))
        return HTMLResponse(page, headers=headers)
    host = request.headers.get("host", "")
    headers["Content-Security-Policy"] = _CSP + (f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else "")
    return HTMLResponse(_PAGE.format(name=name, id=sid, style=_STYLE, script=_SCRIPT), headers=headers)


# --- the websocket ---------------------------------------------------------------------------------------

_active = 0          # sessions open in this process


def limits() -> tuple[int, float]:
    return (number("ECSD_VNC_MAX_CONNECTIONS", MAX_CONNECTIONS, int),
            number("ECSD_VNC_IDLE_TIMEOUT", IDLE_TIMEOUT, float))


def active_sessions() -> int:
    return _active


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close unless the client already has; a reason is at most 123 bytes on the wire."""
    if websocket.application_state != WebSocketState.CONNECTED or websocket.client_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code, reason.encode()[:123].decode("utf-8", "ignore"))


async def websockify(websocket: WebSocket) -> None:
    """One VNC session: check the token, connect to the display's socket, pump until either side ends."""
    global _active
    services = websocket.app.state.services
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="binary" if "binary" in offered else None)
    most, idle = limits()
    if _active >= most:
        await _close(websocket, TRY_AGAIN_LATER, f"this ecsd already serves {most} console sessions; try again later")
        return
    _active += 1
    try:
        try:
            path = await consoles.vnc_socket_of(services.store, services.driver, websocket.query_params.get("token"))
        except EcsError as err:
            await _close(websocket, POLICY_VIOLATION, err.detail or f"{err.code}: {err.message}")
            return
        try:
            reader, writer = await open_display(path)
        except OSError:
            await _close(websocket, INTERNAL_ERROR, "the server's display does not answer")
            return
        try:
            code, reason = await pump(websocket, reader, writer, idle)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await _close(websocket, code, reason)
    finally:
        _active -= 1


async def open_display(path: str, patience: float = DISPLAY_PATIENCE) -> tuple[asyncio.StreamReader,
                                                                              asyncio.StreamWriter]:
    """Streams on the display's unix socket. QEMU listens with a backlog of one: a non-blocking connect while
    another one waits to be accepted fails with EAGAIN (asyncio then reports EINVAL), so that one is tried
    again every 20 ms for ``patience`` seconds; any other error (no socket, refused) is raised at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        except OSError:
            sock.close()
            raise
        return await asyncio.open_unix_connection(sock=sock)


async def pump(websocket: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               idle: float) -> tuple[int, str]:
    """Bytes both ways until one side closes, a text frame arrives, or nothing moved for ``idle`` seconds:
    (close code, reason) for the websocket."""
    loop = asyncio.get_running_loop()
    last = loop.time()

    async def upstream() -> tuple[int, str]:          # the browser's input to the display
        nonlocal last
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return 1000, "the client closed the console"
            data = message.get("bytes")
            if data is None:
                return UNSUPPORTED_DATA, "a VNC session takes binary frames only"
            last = loop.time()
            writer.write(data)
            await writer.drain()

    async def downstream() -> tuple[int, str]:        # the display's output to the browser
        nonlocal last
        while True:
            data = await reader.read(CHUNK)
            if not data:
                return 1000, "the server's display closed (the server stopped or rebooted its machine)"
            last = loop.time()
            await websocket.send_bytes(data)

    async def watch() -> tuple[int, str]:
        if idle <= 0:                                  # 0: no idle timeout
            await asyncio.Event().wait()
        while (left := last + idle - loop.time()) > 0:
            await asyncio.sleep(left)
        return 1000, f"the console was idle for {idle:g} seconds"

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream()), asyncio.create_task(watch())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(iter(done))
    if first.cancelled() or first.exception() is not None:
        return 1000, "the connection ended"            # a reset socket or a vanished client
    return first.result()


# --- routes ----------------------------------------------------------------------------------------------

@endpoint(auth="none", ok=101, empty=101, query={"token": str}, errors=400)
async def websockify_get(request: Request, ctx: Ctx) -> Response:
    """The VNC websocket of a console URL's token (``Upgrade: websocket``; a plain GET is 400 Ecs.0005)."""
    raise invalid(f"{WEBSOCKET_PATH} is a websocket: connect with Upgrade: websocket, the subprotocol binary "
                  "and the token of a console URL")


class UpgradeRoute(Route):
    """A GET route whose path also takes websockets (one entry in the route table and the docs)."""

    def __init__(self, path: str, endpoint: Any, websocket_endpoint: Any) -> None:
        super().__init__(path, endpoint, methods=["GET"])
        self.websocket_endpoint = websocket_endpoint

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "websocket":
            match = self.path_regex.fullmatch(get_route_path(scope))
            return (Match.FULL, {"endpoint": self.websocket_endpoint}) if match else (Match.NONE, {})
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket_endpoint(WebSocket(scope, receive, send))
            return
        await super().handle(scope, receive, send)


routes = [UpgradeRoute(WEBSOCKET_PATH, websockify_get, websockify),
          Route(NOVNC_PATH + "/{path:path}", novnc_asset, methods=["GET"])]
