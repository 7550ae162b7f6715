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
