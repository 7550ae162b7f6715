"""The SQLite store's group commit: calls of one event-loop turn share a transaction, each call is
still atomic on its own, and nobody gets an answer before the commit that makes it durable."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text

from ecsd.store.db import Store, sqlite_url


@pytest.fixture
def store(tmp_path):
    s = Store(sqlite_url(str(tmp_path)))
    s.run_sync(lambda conn: conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")))
    yield s
    s.close()


def _keys(path) -> list[str]:
    """What another connection (another process, after a crash) sees: committed rows only."""
    other = sqlite3.connect(str(path / "ecsd.db"))
    try:
        return sorted(r[0] for r in other.execute("SELECT k FROM t"))
    finally:
        other.close()


def _insert(conn, key: str, fail: bool = False) -> str:
    conn.execute(text("INSERT INTO t (k, v) VALUES (:k, 1)"), {"k": key})
    if fail:
        raise ValueError(f"{key} fails after writing")
    return key


def test_a_failing_call_undoes_only_its_own_writes(store, tmp_path):
    async def main():
        return await asyncio.gather(store.run(_insert, "a"), store.run(_insert, "b", fail=True),
                                    store.run(_insert, "c"), return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError)
    assert _keys(tmp_path) == ["a", "c"]


def test_calls_of_one_turn_share_a_commit_and_answer_after_it(store, tmp_path):
    seen_before_answer: list[list[str]] = []

    async def call(key: str) -> str:
        task = asyncio.ensure_future(store.run(_insert, key))
        await asyncio.sleep(0)                      # the call has run, its turn has not ended yet
        seen_before_answer.append(_keys(tmp_path))
        return await task

    async def main():
        return await asyncio.gather(call("x"), call("y"))

    assert asyncio.run(main()) == ["x", "y"]
    assert seen_before_answer == [[], []]           # not visible (not durable) before the commit
    assert _keys(tmp_path) == ["x", "y"]


def test_a_read_during_an_open_batch_sees_it_and_answers_after_its_commit(store, tmp_path):
    async def main():
        write = asyncio.ensure_future(store.run(_insert, "w"))
        await asyncio.sleep(0)
        read = store.read(lambda conn: conn.execute(text("SELECT k FROM t")).scalars().all())
        rows = await read
        return rows, _keys(tmp_path), await write

    rows, committed, written = asyncio.run(main())
    assert rows == ["w"] and committed == ["w"] and written == "w"


def test_a_read_with_no_batch_open_takes_no_write_lock(store, tmp_path):
    other = sqlite3.connect(str(tmp_path / "ecsd.db"), timeout=0.1, isolation_level=None)

    def read_while_other_writes(conn):
        # Another process holds the write lock: a deferred read still proceeds.
        other.execute("BEGIN IMMEDIATE")
        try:
            return conn.execute(text("SELECT count(*) FROM t")).scalar()
        finally:
            other.execute("ROLLBACK")

    try:
        assert asyncio.run(store.read(read_while_other_writes)) == 0
    finally:
        other.close()
