"""Liveness and readiness."""

BOTH_DATABASES = True


def test_liveness(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["X-Request-Id"]


def test_readiness_reports_database_and_worker(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["worker"]["status"] == "running"


def test_not_ready_when_the_database_is_gone(client):
    from ecsd.store.db import make_engine

    store = client.app.state.services.store
    good = store.engine
    bad = "sqlite:////nonexistent/dir/ecsd.db" if store.is_sqlite else \
        "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1"
    store.engine = make_engine(bad)
    try:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["database"]["status"] == "unavailable"
        assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        store.engine.dispose()
        store.engine = good
    assert client.get("/readyz").status_code == 200


# --- readiness never waits for a lock (issue 10) --------------------------------------------------------

def test_readiness_answers_while_the_loops_own_write_transaction_is_open(settings):
    """A write transaction of the event loop (group commit) is open when the probe arrives: the probe's
    database check must not wait for that lock (it used to, on the loop itself: a 30 s freeze)."""
    import asyncio

    from ecsd.store.db import Store

    store = Store(settings.url)

    async def scenario():
        write = asyncio.ensure_future(store.run(lambda conn: conn.exec_driver_sql(
            "UPDATE settings SET value = value WHERE key = 'seeded'")))
        await asyncio.sleep(0)            # the write has opened the batch and awaits its commit
        revision = await asyncio.wait_for(store.ping(), 5)
        await write
        return revision

    try:
        assert asyncio.run(scenario())
    finally:
        store.close()


def test_a_write_waits_for_another_process_without_stopping_the_loop(settings):
    """Another process holds SQLite's write lock: a write waits for it asleep, while readiness and
    other work go on; it completes once the lock is released."""
    import asyncio
    import sqlite3

    import pytest

    from ecsd.store.db import Store

    if settings.database_url:
        pytest.skip("SQLite's file lock")
    store = Store(settings.url)
    other = sqlite3.connect(settings.url[len("sqlite:///"):], isolation_level=None)

    async def scenario():
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(store.run(lambda conn: conn.exec_driver_sql(
            "UPDATE settings SET value = value WHERE key = 'seeded'")))
        ticks = 0
        for _ in range(20):               # the loop keeps turning while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done(), "the write did not wait for the lock"
        assert await asyncio.wait_for(store.ping(), 5)
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
        return ticks

    try:
        assert asyncio.run(scenario()) == 20
    finally:
        other.close()
        store.close()


def test_readiness_answers_while_every_database_thread_is_busy(settings):
    """PostgreSQL: all of the store's threads wait on a row lock; readiness has a thread of its own."""
    import asyncio

    import psycopg
    import pytest

    from ecsd.store.db import Store

    if not settings.database_url:
        pytest.skip("the PostgreSQL thread pool")
    store = Store(settings.url, pool_size=2)
    schema = settings.database_url.split("search_path%3D", 1)[1]
    blocker = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=False)

    async def scenario():
        blocker.execute(f"SELECT value FROM {schema}.settings WHERE key = 'seeded' FOR UPDATE")
        stuck = [asyncio.ensure_future(store.run(lambda conn: conn.exec_driver_sql(
            "SELECT value FROM settings WHERE key = 'seeded' FOR UPDATE"))) for _ in range(4)]
        await asyncio.sleep(0.2)
        assert not any(f.done() for f in stuck)
        revision = await asyncio.wait_for(store.ping(), 5)
        blocker.rollback()
        await asyncio.wait_for(asyncio.gather(*stuck), 10)
        return revision

    try:
        assert asyncio.run(scenario())
    finally:
        blocker.close()
        store.close()
