"""Consoles of a server: its console output and its remote (VNC) console.

* Console output (Nova ``os-getConsoleOutput``,
  native_openstack_nova_apis/ecs_console_management/obtaining_ecs_management_console_logs.rst). The
  driver keeps the console: the local driver the serial console of the server's current (or last)
  boot, the simulated driver a short synthetic log. Any live server of the project has one (404
  Ecs.0114 otherwise); ``length`` is the number of last lines, -1 or None for all (at most
  ``MAX_BYTES`` are returned).
* Remote console (Nova ``remote-consoles`` 2.6+ and ``os-getVNCConsole``, the v1 ``remote_console``;
  native_openstack_nova_apis/ecs_console_management/obtaining_a_vnc-based_remote_login_address_
  microversion_2.6_or_later.rst): a login URL for an ACTIVE server (else Ecs.0100), protocol ``vnc``
  and type ``novnc`` only (else Ecs.0005). A driver that hands out URLs of its own gives them
  (drivers/base.py, ``RemoteConsoles``); otherwise the URL is ecsd's own ``{endpoint}/vnc_auto.html?
  token=T`` (noVNC's page name, as the cloud's console URLs have it), whatever the driver:
  - a driver with VNC displays (``vnc_socket(server_id)``: the local driver, QEMU's own VNC server on
    a unix socket) gets noVNC's client there, whose websocket ``{endpoint}/websockify?token=T`` is
    proxied to that socket (http/vnc_proxy.py; :func:`vnc_socket_of` checks the token). A server that
    is not running (any more) has no display: the page says so and shows its last console output;
  - a driver without (the simulated driver) gets a page of the server's console output.
  The token is the project, the server and an expiry sealed with the installation's secret key
  (domain/sealing.py): unguessable, a new one per request, valid for ``CONSOLE_TTL`` seconds (the
  reference: 10 minutes) to open the page and to open a websocket (an open one is not cut at expiry,
  as Nova's), checked by any ecsd process of the installation without a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from cryptography.fernet import InvalidToken

from ecsd.domain import clock, sealing
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.identity import Identity
from ecsd.drivers.base import remote_consoles

MAX_BYTES = 1024 * 1024
CONSOLE_TTL = 600                  # seconds a remote console URL stays valid
CONSOLE_PATH = "/vnc_auto.html"        # the console page (noVNC's page name, as the cloud has it)
PROTOCOLS = {"vnc": ("novnc",)}    # protocol -> the console types served for it
MAX_TOKEN = 1024                   # longer than any token issued here


def parse_length(value: Any) -> int | None:
    """``length`` as the reference has it (an Integer >= -1; the example sends "50"): None for all lines;
    anything else is Ecs.0005."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid("os-getConsoleOutput.length must be an integer of at least -1")
    try:
        n = int(value)
    except ValueError:
        raise invalid("os-getConsoleOutput.length must be an integer of at least -1") from None
    if n < -1:
        raise invalid("os-getConsoleOutput.length must be an integer of at least -1")
    return None if n == -1 else n


def last_lines(text: str, length: int | None) -> str:
    if length is None:
        return text
    if length == 0:
        return ""
    return "\n".join(text.splitlines()[-length:])


async def console_output(store: Any, driver: Any, ident: Identity, server_id: str, length: int | None) -> str:
    """The last ``length`` lines of the server's console (all of them for None)."""
    server = await store.read(srv.load, ident.project_id, server_id)          # 404 Ecs.0114
    text = await driver.console_output(server["id"])
    return last_lines(text[-MAX_BYTES:], length)


# --- remote consoles ----------------------------------------------------------------------------------

def check_console_kind(protocol: Any, kind: Any) -> None:
    """``protocol`` ``vnc`` with ``type`` ``novnc`` (the reference's only values); else Ecs.0005."""
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise invalid(f"remote console protocol {protocol!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    if not isinstance(kind, str) or kind not in PROTOCOLS[protocol]:
        raise invalid(f"remote console type {kind!r} is not supported for {protocol}; "
                      f"use one of {', '.join(PROTOCOLS[protocol])}")


def issue_token(project_id: str, server_id: str) -> str:
    """A new token of the console page and its websocket for this server (valid for CONSOLE_TTL seconds)."""
    sealed = sealing.seal(orjson.dumps({"p": project_id, "s": server_id,
                                        "e": clock.now() + CONSOLE_TTL}).decode())
    assert sealed is not None
    return sealed[len(sealing.PREFIX):]


def read_token(token: str | None) -> tuple[str, str]:
    """(project id, server id) of a token :func:`issue_token` made; a missing, forged or expired one is
    404 Common.0404 (no such console: a console token is not an IAM credential)."""
    if not token or len(token) > MAX_TOKEN:
        raise EcsError("Common.0404", "a console token is missing or invalid")
    try:
        claims = orjson.loads(sealing.unseal(sealing.PREFIX + token) or "")
        project_id, server_id, expiry = claims["p"], claims["s"], float(claims["e"])
    except (InvalidToken, ValueError, KeyError, TypeError):   # forged, truncated, another key: all the same
        raise EcsError("Common.0404", "the console token is invalid") from None
    if expiry < clock.now():
        raise EcsError("Common.0404", "the console token has expired; ask for a new console URL")
    return project_id, server_id


async def remote_console_url(store: Any, driver: Any, ident: Identity, server_id: str, base: str) -> str:
    """The login URL of the server's remote console: 404 Ecs.0114, not ACTIVE Ecs.0100; a driver
    without URLs of its own gets ecsd's console page (the caller has checked protocol and type)."""
    server = await store.read(srv.load, ident.project_id, server_id)          # 404 Ecs.0114
    status = st.status_of(server["vm_state"], server["task_state"])
    if status != "ACTIVE":
        raise EcsError("Ecs.0100", f"server {server['id']} is {status}; a remote console needs it ACTIVE")
    consoles = remote_consoles(driver)
    url = await consoles.remote_console(server["id"]) if consoles is not None else None
    if url is not None:
        return url
    return f"{base}{CONSOLE_PATH}?token={quote(issue_token(ident.project_id, server['id']), safe='')}"


def vnc_displays(driver: Any) -> Any:
    """The driver's ``vnc_socket(server_id) -> path | None`` if it has VNC displays, else None."""
    found = getattr(driver, "vnc_socket", None)
    return found if callable(found) else None


@dataclass(frozen=True)
class ConsolePage:
    """What the console page shows: noVNC (``vnc``) or the console output (``output``, with ``reason``
    saying why there is no display when the driver has displays)."""

    server: dict[str, Any]
    kind: str                       # "vnc" | "output"
    output: str = ""
    reason: str = ""


async def console_page(store: Any, driver: Any, token: str | None) -> ConsolePage:
    """The console page of a token: a bad token 404 Common.0404, a server deleted since 404 Ecs.0114."""
    project_id, server_id = read_token(token)
    server = await store.read(srv.load, project_id, server_id)
    displays = vnc_displays(driver)
    if displays is not None and displays(server["id"]) is not None:
        return ConsolePage(server, "vnc")
    reason = "" if displays is None else ("the server is not running, so it has no display; start it and ask "
                                          "for a new console URL")
    text = await driver.console_output(server["id"])
    return ConsolePage(server, "output", text[-MAX_BYTES:], reason)


async def vnc_socket_of(store: Any, driver: Any, token: str | None) -> str:
    """The unix socket of the VNC display a websocket with this token may reach: a bad token 404
    Common.0404, a server deleted since 404 Ecs.0114, a driver without displays 404 Common.0404, a
    server that is not running 400 Ecs.0100."""
    project_id, server_id = read_token(token)
    server = await store.read(srv.load, project_id, server_id)
    displays = vnc_displays(driver)
    if displays is None:
        raise EcsError("Common.0404", "this ecsd's driver has no VNC displays (the simulated driver)")
    path = displays(server["id"])
    if path is None:
        raise EcsError("Ecs.0100", f"server {server['id']} is not running: it has no display")
    return path
