"""Console output of a server (Nova ``os-getConsoleOutput``,
native_openstack_nova_apis/ecs_console_management/obtaining_ecs_management_console_logs.rst).

The driver keeps the console: the local driver the serial console of the server's current (or last)
boot, the simulated driver a short synthetic log. Any live server of the project has one (404
Ecs.0114 otherwise); ``length`` is the number of last lines, -1 or None for all (at most
``MAX_BYTES`` are returned).
"""

from __future__ import annotations

from typing import Any

from ecsd.domain import servers as srv
from ecsd.domain.errors import invalid
from ecsd.domain.identity import Identity

MAX_BYTES = 1024 * 1024


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
