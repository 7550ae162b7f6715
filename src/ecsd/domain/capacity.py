"""Host capacity: creates, starts and growing resizes are admitted by the memory the host gives its servers.

One host runs every server, and memory is what it cannot overcommit (QEMU gets each server's flavor
RAM; vCPUs are threads and may outnumber the CPUs, as a cloud overcommits them). The driver declares
the host's budget, ``driver.memory_budget()``: MB the running servers may be given together (local:
``ECSD_LOCAL_MEMORY_BUDGET_MB``, default half the host's RAM; simulated: ``ECSD_SIM_MEMORY_BUDGET_MB``,
unset = no limit). An operation that would pass it is refused at acceptance with 400 Ecs.0319
("Insufficient resources for this flavor. Try another flavor."), before any quota is charged or
any job submitted: a create (v1 and Nova, ``count`` servers all or nothing; Nova's ``min_count``
creates fewer if they fit), a start (v1 batch ``os-start``, all or nothing; Nova ``os-start``), and
the resize or revert of a running server to more memory (the difference). The local driver refuses
a launch beyond its budget too (DriverError), a last line of defence that this check should make
unreachable.

Which servers count (:func:`in_use`), read from the database in the acceptance transaction so that
every API process and worker agrees (the driver's own count, of QEMU processes, is per host process
and only knows machines already launched). A server counts its flavor's RAM while it holds host
memory or an accepted operation is about to give it some:

* running (power_state RUNNING): ACTIVE, REBOOT, HARD_REBOOT, VERIFY_RESIZE of a running server,
  and a running server being stopped or deleted (its machine holds memory until it is gone);
* BUILD: every accepted create ends by booting the server;
* SHUTOFF being started (powering-on) and REBUILD from SHUTOFF or ERROR: both jobs end by starting it;
* RESIZE / REVERT_RESIZE of a server that was running (the job starts it again): the larger of its
  current flavor and the one it goes to, so that memory freed by the stop cannot be given away meanwhile.

Not counted: SHUTOFF at rest, a stopped server being resized (it stays stopped), ERROR (power_state
NOSTATE: its machine is gone), deleted servers. A server whose flavor has left the catalogue counts
0 (the driver's check still applies).

Concurrency: two acceptances at the same moment must not both pass when only one fits. On SQLite
every write transaction begins IMMEDIATE (store/db.py), so acceptances, across processes too, run
one after another, and the calls of a group commit one after another on one connection, each seeing
the ones before it. On PostgreSQL (READ COMMITTED) the check first takes a transaction-scoped
advisory lock (:data:`_LOCK_KEY`), released at commit, so the count it then reads includes every
acceptance committed before it. Only acceptances that add memory take it, and only when the driver
has a budget: the simulated default pays nothing. Transitions that free memory (a stop or delete
finishing) need no lock: a count read just before them is merely pessimistic.
"""

from __future__ import annotations

import weakref
from typing import Any

import orjson
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.engine import Connection, Engine

from ecsd.domain import states as st
from ecsd.domain.errors import EcsError
from ecsd.store.schema import flavors, jobs, servers

# --- the budget: one per store engine ---------------------------------------------------------------------
# Acceptance runs as fn(conn, ...) through Store.run, and the batch and resize handlers hand it no driver;
# the budget is registered once per database engine when the app builds its driver (app.py), so that two
# apps in one process (tests) keep their own.
_BUDGETS: weakref.WeakKeyDictionary[Engine, int | None] = weakref.WeakKeyDictionary()


def configure(engine: Engine, driver: Any) -> None:
    """Admit by ``driver.memory_budget()`` (MB, None = unlimited) on the database behind ``engine``."""
    budget = getattr(driver, "memory_budget", None)
    _BUDGETS[engine] = budget() if budget is not None else None


def budget_of(conn: Connection) -> int | None:
    """The host's memory budget in MB for acceptances on ``conn`` (None: no limit)."""
    return _BUDGETS.get(conn.engine)


# --- counting ----------------------------------------------------------------------------------------------

_RESIZE_JOBS = (st.RESIZE_SERVER, st.REVERT_RESIZE)
# Tasks whose job ends by starting the server, whatever its power state now.
_STARTING_TASKS = (st.POWERING_ON, st.REBUILDING, st.REBUILD_BDM, st.REBUILD_SPAWNING)
_RAM = func.coalesce(flavors.c.ram, 0)
_WITH_FLAVOR_AND_JOB = (servers.outerjoin(flavors, flavors.c.id == servers.c.flavor_id)
                        .outerjoin(jobs, jobs.c.job_id == servers.c.job_id))

# Built once: every counted acceptance runs them (both dialects).
_COUNTED = select(func.coalesce(func.sum(_RAM), 0)).select_from(_WITH_FLAVOR_AND_JOB).where(
    servers.c.deleted.is_(False),
    or_(jobs.c.job_type.is_(None), jobs.c.job_type.not_in(_RESIZE_JOBS)),
    or_(servers.c.power_state == st.POWER_RUNNING, servers.c.vm_state == st.BUILDING,
        servers.c.task_state.in_(_STARTING_TASKS)))
_RESIZING = select(_RAM.label("ram"), jobs.c.params).select_from(_WITH_FLAVOR_AND_JOB).where(
    servers.c.deleted.is_(False), jobs.c.job_type.in_(_RESIZE_JOBS))
_RAM_OF = select(func.coalesce(func.sum(_RAM), 0)).select_from(
    servers.outerjoin(flavors, flavors.c.id == servers.c.flavor_id)).where(
    servers.c.id.in_(bindparam("ids", expanding=True)))

# pg_advisory_xact_lock(key): "ecsd" and "host memory" in one bigint, taken by every admission on PostgreSQL.
_LOCK_KEY = 0x6563_7364_6D65_6D00
_LOCK = select(func.pg_advisory_xact_lock(bindparam("key")))


def in_use(conn: Connection) -> int:
    """MB of flavor RAM of the servers that hold, or are about to hold, host memory (see the module doc)."""
    used = int(conn.execute(_COUNTED).scalar_one())
    for row in conn.execute(_RESIZING):
        params = orjson.loads(row.params or "{}")
        if params.get("need_stop"):       # a running server: started again, with the larger of both flavors
            used += max(int(row.ram), int(params.get("ram") or 0))
    return used


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"key": _LOCK_KEY})


def admit(conn: Connection, ram_each: int, count: int = 1, min_count: int | None = None) -> int:
    """How many of ``count`` new servers of ``ram_each`` MB to create: ``count`` if they all fit, else
    as many as fit when that is at least ``min_count`` (Nova), else 400 Ecs.0319. Call it in the
    acceptance transaction before anything is written; with no budget it reads nothing."""
    budget = budget_of(conn)
    if budget is None or ram_each <= 0:
        return count
    _lock(conn)
    used = in_use(conn)
    fits = max(0, budget - used) // ram_each
    if fits >= count:
        return count
    if min_count is not None and fits >= min_count:
        return fits
    raise EcsError("Ecs.0319", _refusal(budget, used, ram_each * (count if min_count is None else min_count)))


def check(conn: Connection, more_mb: int) -> None:
    """400 Ecs.0319 unless the host can give its servers ``more_mb`` MB more (nothing to check if <= 0)."""
    budget = budget_of(conn)
    if budget is None or more_mb <= 0:
        return
    _lock(conn)
    used = in_use(conn)
    if used + more_mb > budget:
        raise EcsError("Ecs.0319", _refusal(budget, used, more_mb))


def check_start(conn: Connection, server_ids: list[str]) -> None:
    """400 Ecs.0319 unless these stopped servers, started together, fit beside the servers counted now."""
    if budget_of(conn) is None or not server_ids:
        return
    check(conn, int(conn.execute(_RAM_OF, {"ids": server_ids}).scalar_one()))


def _refusal(budget: int, used: int, need: int) -> str:
    return (f"this host gives its servers {budget} MB of memory; {used} MB are taken and {need} MB more "
            "are needed")

