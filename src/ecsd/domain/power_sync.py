"""Power-state sync: a server whose machine stopped on its own shows SHUTOFF.

A guest can power itself off, crash, or be killed on the host; the control plane only learns of it
by asking the driver (Nova's ``_sync_power_states``). :func:`watch` asks the driver every
``interval`` seconds for servers it started whose machine is gone (``dead_servers()``) and moves
those the database shows ACTIVE with no operation in flight to SHUTOFF (vm_state stopped, power
state SHUTDOWN), from which the owner may start them again.

A server is moved only after two consecutive sweeps found it dead with its row unchanged in
between, and the update is a compare-and-set on that row: a start or any other operation that ran
meanwhile (and changed ``updated_at``) wins, so a server caught in the middle of booting is never
stopped by mistake. Servers with a job in flight are left to the job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.store.schema import servers

log = logging.getLogger("ecsd.power_sync")


def settle(conn: Connection, dead: list[str], suspects: dict[str, float]) -> list[str]:
    """One sweep. ``suspects``: server id -> updated_at when last found dead (kept by the caller).
    Returns the servers moved to SHUTOFF."""
    rows = conn.execute(select(servers.c.id, servers.c.updated_at).where(and_(
        servers.c.id.in_(dead), servers.c.deleted.is_(False), servers.c.vm_state == st.ACTIVE,
        servers.c.task_state.is_(None), servers.c.job_id.is_(None)))).all() if dead else []
    seen = {r.id: r.updated_at for r in rows}
    moved = []
    for server_id, updated_at in seen.items():
        if suspects.get(server_id) != updated_at:
            continue        # first sighting, or the row changed since: look again next sweep
        res = conn.execute(servers.update().where(and_(
            servers.c.id == server_id, servers.c.updated_at == updated_at, servers.c.vm_state == st.ACTIVE,
            servers.c.task_state.is_(None), servers.c.job_id.is_(None), servers.c.deleted.is_(False)))
            .values(vm_state=st.STOPPED, power_state=st.POWER_SHUTDOWN, updated_at=clock.now()))
        if res.rowcount == 1:
            moved.append(server_id)
    suspects.clear()
    suspects.update((sid, at) for sid, at in seen.items() if sid not in moved)
    return moved


async def watch(store: Any, driver: Any, interval: float) -> None:
    """Sweep until cancelled; a driver that cannot tell (no ``dead_servers``) is not watched."""
    if interval <= 0 or not hasattr(driver, "dead_servers"):
        return
    suspects: dict[str, float] = {}
    while True:
        await asyncio.sleep(interval)
        try:
            dead = await driver.dead_servers()
            if not dead:
                suspects.clear()
                continue        # nothing to look at: no transaction
            moved = await store.run(settle, dead, suspects)
            for server_id in moved:
                log.warning("server %s stopped on its own: now SHUTOFF", server_id)
        except Exception:  # never let a sweep end the watch; the next one tries again
            log.exception("power-state sync failed")
