"""Who holds which job: claims, leases, heartbeats, renewals and hand-backs (statements of the engine).

A worker holds a RUNNING job while ``owner`` is its name and ``lease_until`` has not passed; every
write the engine makes for the job is fenced on ``owner`` (engine.py). Leases follow the database's
clock on PostgreSQL and the process's on SQLite. Nothing here waits for a row another worker holds:
claims and heartbeats skip locked rows (``FOR UPDATE SKIP LOCKED``), so neither can deadlock with a
group commit nor fall behind one.

What happens after a crash: a dead worker's jobs stay RUNNING under its name until their lease has
passed; then any worker's claim takes them (a take-over) and resumes them at their checkpoint. A
worker restarting under its old name, and one shutting down, hand their jobs back at once.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from sqlalchemy import and_, func, select, true
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.store.schema import jobs


@dataclass
class Claimed:
    """A job a claim took: what the engine needs of its row."""

    job_id: str
    job_type: str
    project_id: str
    server_id: str | None
    parent_id: str | None
    params: str
    step: int
    attempts: int
    taken_over: bool = False     # its previous worker's lease had expired (not handed back)


def db_now(conn: Connection, is_sqlite: bool) -> float:
    """Lease clock: the database's on PostgreSQL, so that workers on machines with skewed clocks
    agree on when a lease has expired; the process's own on SQLite (one host)."""
    if is_sqlite:
        return clock.now()
    return float(conn.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one())


def claim(conn: Connection, owner: str, lease: float, limit: int, is_sqlite: bool,
          live: Container[str] = ()) -> tuple[list[Claimed], list[str]]:
    """(jobs claimed, jobs of ``live`` whose lease had run out and were renewed instead). ``live``: the
    jobs running in this process; one of them found stale (its heartbeat was late) is still running
    here, and claiming it would run it twice at once."""
    now = db_now(conn, is_sqlite)
    # Two index ranges of ix_jobs_claim (runnable, status, created_at), never a scan of finished jobs:
    # the oldest new jobs, then running jobs whose worker's lease has expired.
    fresh = (select(jobs.c.job_id).where(and_(jobs.c.runnable == true(), jobs.c.status == st.JOB_INIT))
             .order_by(jobs.c.created_at).limit(limit))
    stale = (select(jobs.c.job_id).where(and_(jobs.c.runnable == true(), jobs.c.status == st.JOB_RUNNING,
                                              jobs.c.lease_until < now))
             .order_by(jobs.c.created_at).limit(limit))
    ids: list[str] = []
    taken: set[str] = set()      # stale jobs a live owner held: a take-over (None: handed back on shutdown)
    ours: list[str] = []
    for pick in (stale.add_columns(jobs.c.owner), fresh.add_columns(jobs.c.owner)):
        if len(ids) >= limit:
            break
        if not is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        for job_id, previous in conn.execute(pick.limit(limit - len(ids))):
            if previous == owner and job_id in live:
                ours.append(job_id)
                continue
            ids.append(job_id)
            if previous is not None and previous != owner:
                taken.add(job_id)
    if ours:
        conn.execute(jobs.update().where(and_(jobs.c.job_id.in_(ours), owned_running(owner)))
                     .values(lease_until=now + lease))
    if not ids:
        return [], ours
    conn.execute(jobs.update().where(jobs.c.job_id.in_(ids)).values(
        status=st.JOB_RUNNING, owner=owner, lease_until=now + lease, attempts=jobs.c.attempts + 1,
        begin_time=func.coalesce(jobs.c.begin_time, now)))
    rows = conn.execute(select(jobs.c.job_id, jobs.c.job_type, jobs.c.project_id, jobs.c.server_id,
                               jobs.c.parent_id, jobs.c.params, jobs.c.step, jobs.c.attempts)
                        .where(jobs.c.job_id.in_(ids))).all()
    parents = {r.parent_id for r in rows if r.parent_id}
    if parents:
        conn.execute(jobs.update().where(and_(jobs.c.job_id.in_(parents), jobs.c.status == st.JOB_INIT))
                     .values(status=st.JOB_RUNNING, begin_time=func.coalesce(jobs.c.begin_time, now)))
    return [Claimed(*r, taken_over=r.job_id in taken) for r in rows], ours


@dataclass
class Lease:
    """Until when (``time.monotonic()``) a job's lease surely holds: counted from the moment its claim
    or renewal was sent, so the database's ``lease_until`` is never earlier."""

    until: float


def owned_running(owner: str):
    # runnable = true and status = 'RUNNING' keep this inside the in-flight range of ix_jobs_claim.
    return and_(jobs.c.runnable == true(), jobs.c.status == st.JOB_RUNNING, jobs.c.owner == owner)


def heartbeat(conn: Connection, owner: str, lease: float, is_sqlite: bool) -> list[str]:
    """Extend the leases of this worker's running jobs; returns the jobs renewed.

    PostgreSQL: rows another transaction holds are skipped, not waited for. Waiting is what made
    this statement deadlock with the group commit (the two lock a worker's job rows in different
    orders), and the aborted beat let every lease of the worker run out."""
    now = db_now(conn, is_sqlite)
    if is_sqlite:
        where = owned_running(owner)
    else:
        where = jobs.c.job_id.in_(select(jobs.c.job_id).where(owned_running(owner))
                                  .with_for_update(skip_locked=True).scalar_subquery())
    return list(conn.execute(jobs.update().where(where).values(lease_until=now + lease)
                             .returning(jobs.c.job_id)).scalars())


def renew(conn: Connection, job_id: str, owner: str, lease: float, is_sqlite: bool) -> bool:
    """Extend one job's lease if this worker still holds it."""
    return conn.execute(jobs.update().where(and_(jobs.c.job_id == job_id, owned_running(owner)))
                        .values(lease_until=db_now(conn, is_sqlite) + lease)).rowcount == 1


def hand_back(conn: Connection, job_id: str, owner: str) -> int:
    """A job whose task ended without finishing it: claimable again at once, from its checkpoint."""
    return conn.execute(jobs.update().where(and_(jobs.c.job_id == job_id, owned_running(owner)))
                        .values(owner=None, lease_until=0.0)).rowcount


def release(conn: Connection, owner: str) -> int:
    """On graceful shutdown: hand our unfinished jobs back at once instead of waiting for the lease."""
    return conn.execute(jobs.update().where(owned_running(owner)).values(owner=None, lease_until=0.0)).rowcount
