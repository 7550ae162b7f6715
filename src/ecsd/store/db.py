"""The database handle: one SQLAlchemy engine, transactions, and how async code reaches them.

Domain functions are plain synchronous functions ``fn(conn, ...)`` that run inside one
transaction. Async callers (HTTP handlers, the job engine) go through :meth:`Store.run`:

* SQLite (embedded default): the transaction runs inline on the event loop. In WAL mode with
  ``synchronous=NORMAL`` a short write transaction costs tens of microseconds, far less than a
  hop to a thread. The calls of one loop turn share one transaction (group commit, see
  :meth:`Store.run`).
* PostgreSQL: the transaction runs on a bounded thread pool, so that many requests wait on the
  network and on commit flushes at once (group commit) while the event loop goes on.

The event loop never waits for a lock here. On SQLite its connection has no busy timeout: when
another process (an admin command, a second process on the same file) holds the write lock, the
BEGIN fails at once and is retried after an ``asyncio.sleep`` with backoff, up to
``WRITE_LOCK_WAIT`` seconds (then :class:`StoreBusy`, answered 503). Readiness (:meth:`Store.ping`)
runs on a thread of its own with a deadline, and never takes the write lock.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
log = logging.getLogger("ecsd.store")
WRITE_LOCK_WAIT = 30.0   # seconds a loop transaction waits (asynchronously) for another process's write lock
PING_TIMEOUT = 2.0       # seconds readiness waits for the database


class StoreBusy(Exception):
    """The database stayed locked by another process for ``WRITE_LOCK_WAIT`` seconds."""


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED, raw or wrapped by SQLAlchemy."""
    exc = getattr(exc, "orig", None) or exc
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "locked" in str(exc) or "busy" in str(exc))
READ_ONLY = "ecsd_read_only"     # Connection.info flag: the transaction being begun only reads
_UNCOMMITTED = "ecsd_in_batch"   # Connection.info flag: a group commit is open on this connection
_ACCEPTED = "ecsd_accepted"      # Connection.info: the job types submitted in the open transaction


def note_accepted(conn: Connection, job_type: str) -> None:
    """Count a job of ``job_type`` in ``Store.accepted_jobs`` once this transaction commits (metrics):
    a transaction (or an SQLite group-commit call) that is rolled back counts nothing."""
    notes = conn.info.get(_ACCEPTED)
    if notes is None:
        conn.info[_ACCEPTED] = [job_type]
    else:
        notes.append(job_type)


def sees_uncommitted(conn: Connection) -> bool:
    """Whether reads on ``conn`` may see writes that are not committed yet (inside an SQLite group
    commit, whose failure would take them back): what is read there must not be kept beyond the call."""
    return bool(conn.info.get(_UNCOMMITTED))


def sqlite_url(data_dir: str) -> str:
    return "sqlite:///" + os.path.join(os.path.abspath(data_dir), "ecsd.db")


def normalise_url(url: str) -> str:
    """Accept the plain ``postgresql://`` form and pick the psycopg 3 driver for it."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def protect_sqlite_files(path: str) -> None:
    """The database and its WAL and shared-memory files are the owner's alone (0600): created so
    before SQLite opens them (SQLite gives -wal and -shm the database file's mode), and tightened
    if an older version left them readable by others."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:       # e.g. the directory is missing: SQLite's own error says it better
        log.debug("cannot create %s: %s", path, exc)
        return
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot make %s private (0600): %s", name, exc)


def make_engine(url: str, pool_size: int = 16) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            protect_sqlite_files(path)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            # Take transaction control from the driver so that BEGIN IMMEDIATE below is ours.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")   # durable against process crashes (decisions.md)
            cur.execute("PRAGMA foreign_keys=ON")
            # Deleted or overwritten content (a job's sealed secrets once it ends) is zeroed, not left
            # in free space; checkpoint_wal() then takes the old frames out of the WAL (docs/security.md).
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")       # 64 MiB of page cache (default: 2 MiB)
            cur.execute("PRAGMA mmap_size=67108864")      # read through a 64 MiB memory map
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover - exercised by every test
            # IMMEDIATE: a writer takes the write lock at BEGIN, never upgrades mid-transaction,
            # so concurrent processes cannot deadlock on SQLITE_BUSY upgrades. A transaction that
            # only reads (Store.read) begins DEFERRED and takes no write lock.
            # Straight on the driver: a statement through SQLAlchemy's execution layer costs more than this.
            conn.connection.driver_connection.execute("BEGIN" if conn.info.get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class _Batch:
    """One SQLite write transaction shared by the Store.run calls of one event-loop turn."""

    __slots__ = ("accepted", "broken", "conn", "done", "raw", "tx")

    def __init__(self, conn: Connection, tx: Any, done: asyncio.Future) -> None:
        self.conn = conn
        self.tx = tx
        self.raw = conn.connection.driver_connection
        self.done = done
        self.broken = False
        self.accepted: list[str] = []        # note_accepted() of its calls
        conn.info[_ACCEPTED] = self.accepted


class Store:
    """Owns the engine; runs a function in one transaction, inline (SQLite) or on a pool (PostgreSQL)."""

    def __init__(self, url: str, pool_size: int = 16) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._pool = None if self.is_sqlite else ThreadPoolExecutor(pool_size, thread_name_prefix="ecsd-db")
        # SQLite: the event loop's transactions run one after another on one connection kept open,
        # which saves a pool checkout and a reset per transaction (run_sync from other threads uses
        # the pool). Opened on first use, so that a Store made in one thread can be used in another.
        self._loop_conn: Connection | None = None
        self._batch: _Batch | None = None
        self._ping_thread: ThreadPoolExecutor | None = None
        self._ping: asyncio.Future | None = None
        self._aside_thread: ThreadPoolExecutor | None = None
        # Jobs accepted through this store, by type, counted when their transaction has committed.
        self.accepted_jobs: Counter[str] = Counter()
        self._count_lock = threading.Lock()      # PostgreSQL commits on several threads

    def _count_accepted(self, job_types: list[str]) -> None:
        with self._count_lock:
            self.accepted_jobs.update(job_types)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            conn.info.pop(_ACCEPTED, None)
            try:
                yield conn
            finally:
                accepted = conn.info.pop(_ACCEPTED, None)
        if accepted:
            self._count_accepted(accepted)

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.tx() as conn:
            return fn(conn, *args, **kwargs)

    def _conn(self) -> Connection:
        conn = self._loop_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._loop_conn = self.engine.connect()
            # The loop never sleeps in SQLite's busy handler: a locked BEGIN fails at once (_begin_waiting).
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=0")
        return conn

    async def _begin_waiting(self, begin: Callable[[], T]) -> T:
        """``begin()``, retried while another process holds the lock, asleep in between (the loop goes on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_LOCK_WAIT
        delay = 0.001
        while True:
            try:
                return begin()
            except Exception as exc:
                if not _is_busy(exc):
                    raise
                if loop.time() >= deadline:
                    raise StoreBusy(f"the database stayed locked for {WRITE_LOCK_WAIT:g} s") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, ...)`` atomically; return once its effects are committed.

        SQLite (group commit): the calls made during one turn of the event loop share one write
        transaction, each inside its own savepoint (so a call that raises undoes only its own
        writes), and the transaction commits at the start of the next turn. Every caller gets its
        result only after that commit, so an answer never reports what a crash could still lose;
        the commit, the dearest part of a short write, is paid once per turn instead of per call.
        """
        if self._pool is not None:
            # in the caller's context: domain functions read its context variables (domain/actions.py)
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(contextvars.copy_context().run, self.run_sync, fn, *args, **kwargs))
        batch = self._batch
        if batch is None:
            try:
                batch = self._open_batch()
            except Exception as exc:
                if not _is_busy(exc):
                    raise
                batch = await self._begin_waiting(lambda: self._batch or self._open_batch())
        batch.raw.execute("SAVEPOINT ecsd_call")
        mark = len(batch.accepted)
        try:
            result = fn(batch.conn, *args, **kwargs)
        except BaseException:
            del batch.accepted[mark:]
            try:
                batch.raw.execute("ROLLBACK TO ecsd_call")
                batch.raw.execute("RELEASE ecsd_call")
            except sqlite3.Error:   # the database ended the transaction itself (e.g. disk full): all of it fails
                batch.broken = True
            raise
        batch.raw.execute("RELEASE ecsd_call")
        await asyncio.shield(batch.done)
        return result

    def _open_batch(self) -> _Batch:
        loop = asyncio.get_running_loop()
        conn = self._conn()
        batch = self._batch = _Batch(conn, conn.begin(), loop.create_future())
        conn.info[_UNCOMMITTED] = True
        loop.call_soon(self._commit, batch)
        return batch

    def _commit(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        batch.conn.info[_UNCOMMITTED] = False
        try:
            if batch.broken:
                raise RuntimeError("the transaction was ended by the database; nothing of it was committed")
            batch.tx.commit()
        except Exception as exc:  # noqa: BLE001 - whatever it is, every caller of the batch gets it
            try:
                batch.tx.rollback()
            except Exception:  # pragma: no cover - the connection is gone as well
                log.warning("rolling back a failed group commit failed too", exc_info=True)
            if not batch.done.done():
                batch.done.set_exception(exc)
                batch.done.exception()   # retrieved: callers that raised themselves never await it
        else:
            if batch.accepted:
                self._count_accepted(batch.accepted)
            if not batch.done.done():
                batch.done.set_result(None)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`run`, for a function that only reads. On SQLite, with no write transaction
        open it reads in a deferred transaction of its own (no write lock: readers neither wait
        for nor hold up writers, and its commit writes nothing); while one is open it reads inside
        it and answers after its commit, so it never reports what is not yet durable."""
        if self._pool is not None:
            return await self.run(fn, *args, **kwargs)
        def begin_read() -> tuple[_Batch | None, Any]:
            batch = self._batch
            if batch is not None:
                return batch, None
            conn = self._conn()
            conn.info[READ_ONLY] = True
            try:
                return None, conn.begin()
            finally:
                conn.info[READ_ONLY] = False

        try:
            batch, tx = begin_read()
        except Exception as exc:   # WAL readers are rarely refused (recovery, checkpoint): wait, asleep
            if not _is_busy(exc):
                raise
            batch, tx = await self._begin_waiting(begin_read)
        if batch is not None:
            result = fn(batch.conn, *args, **kwargs)
            await asyncio.shield(batch.done)
            return result
        with tx:
            return fn(tx.connection, *args, **kwargs)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, ...)`` in a transaction of its own on a pool connection that takes no write lock
        (SQLite: deferred). Blocking: call it off the event loop (:meth:`aside`)."""
        with self.engine.connect() as conn:
            conn.info[READ_ONLY] = True
            try:
                with conn.begin():
                    return fn(conn, *args)
            finally:
                conn.info[READ_ONLY] = False

    async def aside(self, fn: Callable[..., T], timeout: float) -> T:
        """:meth:`read_sync` on a thread of its own (not behind the transactions' pool): for reads that
        must not hold up requests or wait behind them (the metrics' queue gauges). TimeoutError after
        ``timeout`` seconds; the event loop never waits for it."""
        if self._aside_thread is None:
            self._aside_thread = ThreadPoolExecutor(1, thread_name_prefix="ecsd-aside")
        future = asyncio.get_running_loop().run_in_executor(self._aside_thread, self.read_sync, fn)
        return await asyncio.wait_for(future, timeout)

    def pool_state(self) -> dict[str, int]:
        """The connection pool now (SQLAlchemy's counters, read without touching the database), and
        the transactions waiting for one of the PostgreSQL threads."""
        pool: Any = self.engine.pool
        state = {"size": 0, "checked_out": 0, "overflow": 0, "max": 0, "waiting": 0}
        if hasattr(pool, "checkedout"):
            state["size"] = pool.size()
            state["checked_out"] = pool.checkedout()
            state["overflow"] = max(0, pool.overflow())
            state["max"] = pool.size() + max(0, getattr(pool, "_max_overflow", 0))
        executor = self._pool
        if executor is not None:
            state["waiting"] = executor._work_queue.qsize()
        return state

    def ping_sync(self) -> str | None:
        """A fresh connection from the pool answers, in a transaction that takes no write lock.
        Returns the schema revision (Alembic's), None when there is none."""
        with self.engine.connect() as conn:
            conn.info[READ_ONLY] = True
            try:
                with conn.begin():
                    conn.exec_driver_sql("SELECT 1")
                    try:
                        with conn.begin_nested():
                            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
                    except Exception:  # noqa: BLE001 - no such table: a database that was never migrated
                        return None
            finally:
                conn.info[READ_ONLY] = False

    async def ping(self, timeout: float = PING_TIMEOUT) -> str | None:
        """:meth:`ping_sync` on a thread of its own (not behind the transactions' pool), shared by
        concurrent callers; TimeoutError after ``timeout`` seconds. The event loop never waits for it."""
        if self._ping is None:
            if self._ping_thread is None:
                self._ping_thread = ThreadPoolExecutor(1, thread_name_prefix="ecsd-ping")
            self._ping = asyncio.get_running_loop().run_in_executor(self._ping_thread, self.ping_sync)
            self._ping.add_done_callback(self._ping_done)
        return await asyncio.wait_for(asyncio.shield(self._ping), timeout)

    def _ping_done(self, fut: asyncio.Future) -> None:
        if self._ping is fut:
            self._ping = None
        if not fut.cancelled():
            fut.exception()        # retrieved: a ping nobody waits for any more must not warn

    def checkpoint_wal(self) -> bool:
        """SQLite: copy the WAL into the database and truncate it to zero bytes, so that old frames
        (content since overwritten, e.g. a finished job's secrets) do not stay in the file. Blocking
        (it waits for readers to move on): call it off the event loop. False if it could not finish."""
        if not self.is_sqlite:
            return True
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA busy_timeout=2000")
            try:
                busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.execute("PRAGMA busy_timeout=30000")
        return busy == 0

    async def keep_wal_short(self, interval: float) -> None:
        """Every ``interval`` seconds, :meth:`checkpoint_wal` on a thread (SQLite; until cancelled)."""
        if not self.is_sqlite or interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                if not await asyncio.to_thread(self.checkpoint_wal):
                    log.info("WAL checkpoint could not finish (readers); next try in %g s", interval)
            except Exception:
                log.warning("WAL checkpoint failed", exc_info=True)

    def close(self) -> None:
        if self._batch is not None:     # the loop stopped before the turn that would commit it
            self._commit(self._batch)
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._ping_thread is not None:
            self._ping_thread.shutdown(wait=False)
        if self._aside_thread is not None:
            self._aside_thread.shutdown(wait=False)
        self.engine.dispose()
