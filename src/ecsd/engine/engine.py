"""The job engine: durable ECS jobs run as asyncio tasks, with leases, fenced checkpoints and resume.

A job is a row of ``jobs`` (the same row ``GET /v1/{project_id}/jobs/{job_id}`` shows). Its type
declares an ordered list of steps; each step has an idempotent *act* (driver work, awaited) and a
*record* (database changes) that commits in one transaction with the checkpoint ``step = i + 1``.

* Claim, lease, heartbeat (``leases.py``): a worker takes INIT jobs, and RUNNING jobs whose lease
  has expired (their worker died), by setting ``owner`` and ``lease_until``, and extends the leases
  of all its jobs with one statement. It resumes a job at ``step``, the first step not yet
  checkpointed.
* Fence: every checkpoint and the final status update are ``WHERE job_id = ? AND owner = ?``; a
  worker that lost its lease finds no row and stops before doing more.
* A worker never starts driver work on a lease it cannot vouch for: before each act, a job whose
  last known renewal is more than half a lease old renews its own lease first, and stops if it no
  longer holds it. A claim never takes a job that is still running in the same process.
* A job interrupted by the database (a failed checkpoint) is handed back by its worker as soon as the
  database answers, and resumed from its checkpoint by whichever worker claims it.
* Group commit: checkpoints of all running jobs are queued and committed together, each inside
  its own savepoint (one failing record rolls back only itself), so that thousands of short steps
  cost a few transactions instead of one each.
* No thread per job: thousands of jobs are coroutines on one event loop.

The engine knows nothing of servers: job types are handed in by the domain (``domain/jobtypes.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, select, true
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.engine import leases
from ecsd.store.db import Store, note_accepted
from ecsd.store.prepared import Prepared
from ecsd.store.schema import jobs

log = logging.getLogger("ecsd.engine")


class StepFailed(Exception):
    """Raised by a step's act: the job fails with this ECS error code and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class JobContext:
    job_id: str
    job_type: str
    project_id: str
    server_id: str | None
    parent_id: str | None
    params: dict[str, Any]
    attempts: int
    driver: Any
    step: int = 0          # steps completed (checkpointed) so far
    step_started: float = 0.0     # when the running step began (its event's start)


@dataclass(frozen=True)
class Step:
    name: str
    act: Callable[[JobContext], Awaitable[None]] | None = None
    record: Callable[[Connection, JobContext], None] | None = None
    error_code: str = "Common.0001"     # the job's error_code when act raises something unexpected


@dataclass(frozen=True)
class JobType:
    name: str
    steps: tuple[Step, ...]
    # Settles the domain state when the job fails; runs in the transaction that marks the job FAIL.
    on_fail: Callable[[Connection, JobContext, str, str], None] | None = None
    # Undoes driver work of a failed job (e.g. deletes a half-created disk); idempotent, best effort.
    cleanup: Callable[[JobContext], Awaitable[None]] | None = None


# --- statements (plain functions of a connection: they run inside Store.run) ----------------------

@functools.lru_cache(maxsize=32)
def _fence_statement(columns: tuple[str, ...]):
    """UPDATE jobs SET <columns> WHERE job_id = ? AND owner = ? AND status = 'RUNNING', built once per
    set of columns (statement construction costs more than the query on this hot path)."""
    return jobs.update().where(and_(jobs.c.job_id == bindparam("f_job"), jobs.c.owner == bindparam("f_owner"),
                                    jobs.c.status == st.JOB_RUNNING)).values(
        {name: (jobs.c.events + bindparam("v_events")) if name == "events" else bindparam(f"v_{name}")
         for name in columns})


def _event(name: str, start: float, error: str | None = None) -> str:
    """One finished step, as ``jobs.events`` keeps them: JSON objects each followed by a comma, appended
    by the statement that records the step (domain/actions.py reads them as the action's events)."""
    item: dict[str, Any] = {"step": name, "start": start, "end": clock.now()}
    if error is not None:
        item["error"] = error
    return orjson.dumps(item).decode() + ","


def _fence(conn: Connection, job_id: str, holder: str, **values: Any) -> bool:
    params = {f"v_{k}": v for k, v in values.items()}
    params.update(f_job=job_id, f_owner=holder)
    return conn.execute(_fence_statement(tuple(sorted(values))), params).rowcount == 1


def settle_parent(conn: Connection, parent_id: str | None) -> None:
    """When the last sub-job of a batch ends, the parent ends: SUCCESS iff every sub-job succeeded (G6)."""
    if not parent_id:
        return
    # Lock the parent first: sub-jobs finishing at the same moment then settle one after the other,
    # and the last one sees every sibling's final status (READ COMMITTED reads afresh per statement).
    conn.execute(select(jobs.c.job_id).where(jobs.c.job_id == parent_id).with_for_update())
    counts = dict(conn.execute(select(jobs.c.status, func.count()).where(jobs.c.parent_id == parent_id)
                               .group_by(jobs.c.status)).all())
    if counts.get(st.JOB_INIT) or counts.get(st.JOB_RUNNING):
        return
    now = clock.now()
    if counts.get(st.JOB_FAIL):
        first = conn.execute(select(jobs.c.error_code).where(and_(jobs.c.parent_id == parent_id,
                                                                  jobs.c.status == st.JOB_FAIL))
                             .order_by(jobs.c.end_time).limit(1)).scalar()
        values = {"status": st.JOB_FAIL, "error_code": "Common.0021",
                  "fail_reason": f"{counts[st.JOB_FAIL]} of {sum(counts.values())} sub-jobs failed (first: {first})"}
    else:
        values = {"status": st.JOB_SUCCESS}
    conn.execute(jobs.update().where(and_(jobs.c.job_id == parent_id,
                                          jobs.c.status.in_(st.JOB_IN_FLIGHT)))
                 .values(end_time=now, begin_time=func.coalesce(jobs.c.begin_time, now), **values))


def _checkpoint(conn: Connection, ctx: JobContext, owner: str, index: int, step: Step, last: bool) -> bool:
    values: dict[str, Any] = {"step": index + 1, "events": _event(step.name, ctx.step_started)}
    if last:
        values.update(status=st.JOB_SUCCESS, end_time=clock.now(), owner=None, lease_until=None)
    if not _fence(conn, ctx.job_id, owner, **values):
        return False
    if step.record is not None:
        step.record(conn, ctx)
    if last:
        settle_parent(conn, ctx.parent_id)
    return True


def _fail(conn: Connection, ctx: JobContext, owner: str, jt: JobType, code: str, reason: str) -> bool:
    step = jt.steps[ctx.step].name if ctx.step < len(jt.steps) else "job"
    event = _event(step, ctx.step_started or clock.now(), f"{code}: {reason}"[:1024])
    if not _fence(conn, ctx.job_id, owner, status=st.JOB_FAIL, error_code=code, fail_reason=reason[:1024],
                  end_time=clock.now(), owner=None, lease_until=None, events=event):
        return False
    if jt.on_fail is not None:
        jt.on_fail(conn, ctx, code, reason)
    settle_parent(conn, ctx.parent_id)
    return True


def _apply(conn: Connection, calls: list[tuple[Callable[..., Any], tuple]]) -> list[Any]:
    """Run queued writes in one transaction. If any raises, the whole transaction rolls back
    (``_BatchFailed``) and the engine applies them one transaction each, so that the failure stays
    with the job that queued it."""
    try:
        return [fn(conn, *args) for fn, args in calls]
    except Exception as exc:
        raise _BatchFailed() from exc


def _nothing(conn: Connection) -> None:
    return None


def _apply_one(conn: Connection, fn: Callable[..., Any], args: tuple) -> Any:
    return fn(conn, *args)


class _BatchFailed(Exception):
    pass


class _Interrupted(Exception):
    """The database failed the engine's own bookkeeping of a job (not its step): hand it back."""


# --- the engine ------------------------------------------------------------------------------------

def queue_state(conn: Connection) -> tuple[int, float | None]:
    """(jobs waiting to be claimed, creation time of the oldest): one range of ix_jobs_claim."""
    depth, oldest = conn.execute(select(func.count(), func.min(jobs.c.created_at)).where(
        and_(jobs.c.runnable == true(), jobs.c.status == st.JOB_INIT))).one()
    return int(depth), oldest


@dataclass
class EngineStats:
    """What this engine did, as plain counters (read by ecsd/metrics.py when scraped). Written on the
    event loop only; keys are job types, step names and statuses: bounded sets."""

    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    lost_leases: int = 0
    claimed_by_type: Counter = field(default_factory=Counter)     # job type -> claims
    running: Counter = field(default_factory=Counter)             # job type -> running now
    finished: Counter = field(default_factory=Counter)            # (job type, SUCCESS|FAIL) -> jobs
    takeovers: Counter = field(default_factory=Counter)           # job type -> claims after a lease expired
    act_errors: Counter = field(default_factory=Counter)          # (job type, step, failed|crashed) -> acts
    # Called with (job type, step, seconds) when a step is checkpointed: its act and its checkpoint.
    on_step: Callable[[str, str, float], None] | None = None


class Engine:
    def __init__(self, store: Store, driver: Any, types: dict[str, JobType], *, owner: str,
                 lease_seconds: float = 15.0, max_inflight: int = 10000, poll_interval: float = 0.5) -> None:
        self.store = store
        self.driver = driver
        self.types = types
        self.owner = owner
        self.lease = lease_seconds
        self.max_inflight = max_inflight
        self.poll_interval = poll_interval
        self.stats = EngineStats()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        # Jobs running here -> their lease as this process knows it.
        self._live: dict[str, leases.Lease] = {}
        self._loops: list[asyncio.Task] = []
        self._accepting = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending: list[tuple[Callable[..., Any], tuple, asyncio.Future]] = []
        self._flush_wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        # Awaited before each step when set (the emulator's faults and holds, emulator/controls.py); it
        # may raise StepFailed. None costs nothing: the emulator sets it only while a fault or hold exists.
        self.step_hook: Callable[[JobContext, Step], Awaitable[None]] | None = None

    # lifecycle
    async def start(self) -> None:
        # A worker restarting under its old name takes its own jobs back at once.
        await self.store.run(leases.release, self.owner)
        self._accepting = True
        self._flusher = asyncio.create_task(self._flush(), name="ecsd-group-commit")
        self._loops = [asyncio.create_task(self._dispatch(), name="ecsd-dispatch"),
                       asyncio.create_task(self._beat(), name="ecsd-heartbeat")]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running steps finish for ``grace`` seconds; hand the rest back."""
        self._accepting = False
        self._wake.set()
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.store.run(leases.release, self.owner)

    async def abandon_all(self) -> int:
        """Cancel every job running here and wait until the checkpoints already queued are written.

        For the emulator's reset and restore, which replace the jobs' rows: nothing may write after.
        Returns how many jobs were running."""
        running = list(self._tasks)
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if self._flusher is not None:
            await self._write(_nothing)     # once this is written, so is everything queued before it
        if running:
            # Handed back, as on shutdown: if their rows survive (a restore that is refused), they
            # are claimed again at once instead of staying leased to tasks that no longer exist.
            await self.store.run(leases.release, self.owner)
            self._wake.set()
        return len(running)

    def notify(self) -> None:
        """A job was submitted in this process: look for work now instead of at the next poll."""
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # loops
    async def _dispatch(self) -> None:
        while self._accepting:
            free = self.max_inflight - len(self._tasks)
            claimed: list[leases.Claimed] = []
            if free > 0:
                sent = time.monotonic()
                try:
                    claimed, renewed = await self.store.run(leases.claim, self.owner, self.lease, min(free, 500),
                                                            self.store.is_sqlite, self._live)
                except Exception:  # database briefly unreachable: retry at the next poll
                    log.exception("claiming jobs failed")
                else:
                    self._extend(renewed, sent)
            stats = self.stats
            for job in claimed:
                stats.claimed += 1
                stats.claimed_by_type[job.job_type] += 1
                if job.taken_over:
                    stats.takeovers[job.job_type] += 1
                self._idle.clear()
                lease = self._live[job.job_id] = leases.Lease(sent + self.lease)
                task = asyncio.create_task(self._run(job, lease), name=f"job-{job.job_id}")
                self._tasks.add(task)
                task.add_done_callback(self._done)
            if len(claimed) == 0 or free <= len(claimed):
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    pass

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()
        self._wake.set()  # a slot is free

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Queue a write for the next group commit and wait for its own result."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((fn, args, future))
        self._flush_wake.set()
        return await future

    async def _flush(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self.store.run(_apply, [(fn, args) for fn, args, _ in batch])
                except _BatchFailed:
                    results = [await self._apply_alone(fn, args) for fn, args, _ in batch]
                except Exception as exc:  # noqa: BLE001 - the transaction itself failed (database away)
                    results = [exc] * len(batch)
                for (_fn, _args, future), result in zip(batch, results, strict=True):
                    if future.done():        # its job was cancelled meanwhile
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)

    async def _apply_alone(self, fn: Callable[..., Any], args: tuple) -> Any:
        try:
            return await self.store.run(_apply_one, fn, args)
        except Exception as exc:  # noqa: BLE001 - handed to the job that queued it
            return exc

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            sent = time.monotonic()
            try:
                renewed = await self.store.run(leases.heartbeat, self.owner, self.lease, self.store.is_sqlite)
            except Exception:
                log.exception("lease heartbeat failed")
            else:
                self._extend(renewed, sent)

    def _extend(self, job_ids: list[str], sent: float) -> None:
        live = self._live
        until = sent + self.lease
        for job_id in job_ids:
            lease = live.get(job_id)
            if lease is not None and lease.until < until:
                lease.until = until

    async def _lease_held(self, ctx: JobContext, lease: leases.Lease) -> bool:
        """Whether this worker may start driver work for the job: yes while at least half of its lease
        is surely left; otherwise only after renewing it (False: another worker holds it now)."""
        if time.monotonic() < lease.until - self.lease / 2:
            return True
        sent = time.monotonic()
        try:
            held = await self.store.run(leases.renew, ctx.job_id, self.owner, self.lease, self.store.is_sqlite)
        except Exception as exc:
            raise _Interrupted(f"renewing the lease failed: {exc}") from exc
        if held:
            lease.until = max(lease.until, sent + self.lease)
            return True
        self.stats.lost_leases += 1
        log.warning("job %s: lease lost before step %s; stopping", ctx.job_id, ctx.step)
        return False

    async def _give_back(self, job_id: str) -> None:
        """Hand an interrupted job back as soon as the database answers (the task stays alive, and so
        counted as running here, until then: no claim in this process can take the job meanwhile)."""
        delay = 0.1
        while True:
            try:
                await self.store.run(leases.hand_back, job_id, self.owner)
                self._wake.set()
                return
            except Exception:  # noqa: BLE001 - still unreachable: try again
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.lease / 3)

    # one job
    async def _run(self, job: leases.Claimed, lease: leases.Lease) -> None:
        running = self.stats.running      # counted here: a task cancelled before it starts never ran
        running[job.job_type] += 1
        try:
            await self._steps(job, lease)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database failed under us (or a bug in a record function): the job keeps its
            # checkpoint and is handed back, to be resumed from there, up to MAX_ATTEMPTS times.
            log.exception("job %s interrupted; it is handed back and will be resumed", job.job_id)
            await self._give_back(job.job_id)
        finally:
            running[job.job_type] -= 1
            if self._live.get(job.job_id) is lease:      # (not a new claim of the job handed back)
                del self._live[job.job_id]

    async def _steps(self, job: leases.Claimed, lease: leases.Lease) -> None:
        jt = self.types.get(job.job_type)
        ctx = JobContext(job.job_id, job.job_type, job.project_id, job.server_id, job.parent_id,
                         orjson.loads(job.params), job.attempts, self.driver, job.step)
        if jt is None:
            await self._finish_failed(ctx, None, "Common.0999", f"unknown job type {job.job_type}", lease)
            return
        if job.attempts > st.MAX_ATTEMPTS:
            await self._finish_failed(ctx, jt, "Common.0999",
                                      f"The task was interrupted {job.attempts - 1} times and is terminated.", lease)
            return
        last = len(jt.steps) - 1
        for index in range(job.step, len(jt.steps)):
            step = jt.steps[index]
            ctx.step_started = clock.now()
            hook = self.step_hook
            started = time.perf_counter()
            if step.act is not None or hook is not None:
                try:
                    if hook is not None:
                        await hook(ctx, step)
                        started = time.perf_counter()    # an emulator hold is not the step's time
                    if step.act is not None:
                        if not await self._lease_held(ctx, lease):
                            return
                        await step.act(ctx)
                except StepFailed as exc:
                    self.stats.act_errors[(jt.name, step.name, "failed")] += 1
                    await self._finish_failed(ctx, jt, exc.code, exc.reason, lease)
                    return
                except (asyncio.CancelledError, _Interrupted):
                    raise
                except Exception as exc:  # a driver bug must fail the job, never leave it hanging
                    self.stats.act_errors[(jt.name, step.name, "crashed")] += 1
                    log.exception("job %s step %s failed", ctx.job_id, step.name)
                    await self._finish_failed(ctx, jt, step.error_code, f"{step.name}: {exc}", lease)
                    return
            if not await self._write(_checkpoint, ctx, self.owner, index, step, index == last):
                self.stats.lost_leases += 1
                log.warning("job %s: lease lost before step %s was recorded; stopping", ctx.job_id, step.name)
                return
            if self.stats.on_step is not None:
                self.stats.on_step(jt.name, step.name, time.perf_counter() - started)
            ctx.step = index + 1
        self.stats.succeeded += 1
        self.stats.finished[(jt.name, st.JOB_SUCCESS)] += 1

    async def _finish_failed(self, ctx: JobContext, jt: JobType | None, code: str, reason: str,
                             lease: leases.Lease) -> None:
        if jt is not None and jt.cleanup is not None:
            if not await self._lease_held(ctx, lease):      # cleanup is driver work too
                return
            try:
                await jt.cleanup(ctx)
            except Exception:
                log.exception("cleanup of job %s failed", ctx.job_id)
        ok = await self._write(_fail, ctx, self.owner, jt or JobType("unknown", ()), code, reason)
        if ok:
            self.stats.failed += 1
            self.stats.finished[(ctx.job_type, st.JOB_FAIL)] += 1
        else:
            self.stats.lost_leases += 1


def settle_unrun(conn: Connection, job_ids: list[str]) -> None:
    """Mark jobs SUCCESS without running them, their params emptied: for the emulator's seed files,
    which write servers in their final state directly (emulator/seedfile.py)."""
    now = clock.now()
    conn.execute(jobs.update().where(jobs.c.job_id.in_(job_ids)).values(
        status=st.JOB_SUCCESS, params="{}", end_time=now, owner=None, lease_until=None))


# A prepared statement (store/prepared.py): every accepted operation inserts a job.
_INSERT_JOB = Prepared(jobs.insert(), keys=("job_id", "project_id", "parent_id", "job_type", "runnable", "server_id",
                                            "status", "params", "step", "attempts", "created_at", "begin_time"))


def submit(conn: Connection, *, job_id: str, project_id: str, job_type: str, server_id: str | None,
           params: dict[str, Any] | None = None, parent_id: str | None = None, runnable: bool = True) -> str:
    """Insert a job in INIT inside the caller's transaction (the caller then calls Engine.notify()).
    It counts as accepted (``Store.accepted_jobs``) once that transaction commits."""
    now = clock.now()
    note_accepted(conn, job_type)
    _INSERT_JOB.execute(conn, {
        "job_id": job_id, "project_id": project_id, "parent_id": parent_id, "job_type": job_type,
        "runnable": runnable, "server_id": server_id, "status": st.JOB_INIT,
        "params": orjson.dumps(params or {}).decode(), "step": 0, "attempts": 0, "created_at": now,
        "begin_time": now})
    return job_id
