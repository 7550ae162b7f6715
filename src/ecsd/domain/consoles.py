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
  and type ``novnc`` only (else Ecs.0005). A driver with a display of its own gives its URL
  (drivers/base.py, ``RemoteConsoles``). A driver without one (the simulated driver; the local
  driver until it has VNC) gets ecsd's own console page, ``{endpoint}/vnc_auto.html?token=...``
  (noVNC's page name, as the cloud's console URLs have it), which shows the server's console output
  (the local driver's serial log, the simulated driver's boot log). The token is the
  project, the server and an expiry sealed with the installation's secret key (domain/sealing.py):
  unguessable, a new one per request, valid for ``CONSOLE_TTL`` seconds (the reference: 10 minutes),
  checked by any ecsd process of the installation without a table.
"""

from __future__ import annotations

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
SIMULATED_CONSOLE_PATH = "/vnc_auto.html"
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
    """A new token of the simulated console page for this server (valid for CONSOLE_TTL seconds)."""
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
    """The login URL of the server's remote console: 404 Ecs.0114, not ACTIVE Ecs.0100, a driver
    without a display of its own gets the console page (the caller has checked protocol and type)."""
    server = await store.read(srv.load, ident.project_id, server_id)          # 404 Ecs.0114
    status = st.status_of(server["vm_state"], server["task_state"])
    if status != "ACTIVE":
        raise EcsError("Ecs.0100", f"server {server['id']} is {status}; a remote console needs it ACTIVE")
    consoles = remote_consoles(driver)
    url = await consoles.remote_console(server["id"]) if consoles is not None else None
    if url is not None:
        return url
    return f"{base}{SIMULATED_CONSOLE_PATH}?token={quote(issue_token(ident.project_id, server['id']), safe='')}"


async def simulated_console(store: Any, driver: Any, token: str | None) -> tuple[dict[str, Any], str]:
    """(the server, its console output) for the simulated console page: a bad token 404 Common.0404, a
    server deleted since 404 Ecs.0114."""
    project_id, server_id = read_token(token)
    server = await store.read(srv.load, project_id, server_id)
    text = await driver.console_output(server["id"])
    return server, text[-MAX_BYTES:]
