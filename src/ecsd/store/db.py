"""The database handle: one SQLAlchemy engine, transactions, and how async code reaches them.

Domain functions are plain synchronous functions ``fn(conn, ...)`` that run inside one
transaction. Async callers (HTTP handlers, the job engine) go through :meth:`Store.run`:

* SQLite (embedded default): the transaction runs inline on the event loop. In WAL mode with
  ``synchronous=NORMAL`` a short write transaction costs tens of microseconds, far less than a
  hop to a thread, and one process is the only writer.
* PostgreSQL: the transaction runs on a bounded thread pool, so that many requests wait on the
  network and on commit flushes at once (group commit) while the event loop goes on.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
READ_ONLY = "ecsd_read_only"     # Connection.info flag: the transaction being begun only reads


def sqlite_url(data_dir: str) -> str:
    return "sqlite:///" + os.path.join(os.path.abspath(data_dir), "ecsd.db")


def normalise_url(url: str) -> str:
    """Accept the plain ``postgresql://`` form and pick the psycopg 3 driver for it."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, pool_size: int = 16) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            # Take transaction control from the driver so that BEGIN IMMEDIATE below is ours.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")   # durable against process crashes (decisions.md)
            cur.execute("PRAGMA foreign_keys=ON")
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

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            conn = self._loop_conn
            if conn is None or conn.closed or conn.invalidated:
                conn = self._loop_conn = self.engine.connect()
            with conn.begin():
                return fn(conn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(self.run_sync, fn, *args, **kwargs))

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`run`, for a function that only reads: on SQLite it takes no write lock, so
        readers neither wait for nor hold up writers (WAL), and its commit writes nothing."""
        if self._pool is not None:
            return await self.run(fn, *args, **kwargs)
        conn = self._loop_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._loop_conn = self.engine.connect()
        conn.info[READ_ONLY] = True
        try:
            tx = conn.begin()
        finally:
            conn.info[READ_ONLY] = False
        with tx:
            return fn(conn, *args, **kwargs)

    def ping_sync(self) -> None:
        """A fresh connection from the pool answers (what readiness means)."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    async def ping(self) -> None:
        if self._pool is None:
            self.ping_sync()
        else:
            await asyncio.get_running_loop().run_in_executor(self._pool, self.ping_sync)

    def close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.engine.dispose()
