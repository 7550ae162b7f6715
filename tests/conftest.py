"""Fixtures: each test gets its own data directory, copied from one migrated and seeded template."""

from __future__ import annotations

import os
import shutil

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app, prepare_store
from ecsd.config import Settings
from tests.support import Api, token_request


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("template"))
    settings = Settings(data_dir=data_dir, sim_delay=0.0, fault_images=True)   # the tests use the fault images
    store, creds = prepare_store(settings)
    store.close()
    assert creds is not None
    # One token of the demo user, issued in the template, so that each test's copy (and the PostgreSQL
    # schema, _postgres_settings) already holds it: a test's `api` need not log in (a password hash, ~60 ms).
    with TestClient(create_app(settings)) as c:
        r = c.post("/v3/auth/tokens", json=token_request(creds))
        assert r.status_code == 201, r.text
        creds = {**creds, "token": r.headers["X-Subject-Token"]}
    return data_dir, creds


@pytest.fixture
def creds(template):
    return dict(template[1])


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pytest_generate_tests(metafunc):
    """A test module that sets BOTH_DATABASES = True runs each of its tests on SQLite and on PostgreSQL
    (but those marked sqlite_only)."""
    if "settings" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_DATABASES", False):
        # @pytest.mark.sqlite_only: a refusal decided before any database read (body shapes and rules)
        both = metafunc.definition.get_closest_marker("sqlite_only") is None
        metafunc.parametrize("settings", ["sqlite", "postgresql"] if both else ["sqlite"], indirect=True)


def _postgres_unreachable() -> str | None:
    try:
        import psycopg

        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2).close()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with the reason
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 as postgres/test: {exc}"
    return None


@pytest.fixture
def settings(request, template, tmp_path):
    """SQLite copied from the template, or (BOTH_DATABASES modules) a fresh PostgreSQL schema."""
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    if getattr(request, "param", "sqlite") == "postgresql":
        reason = _postgres_unreachable()
        if reason:
            pytest.skip(reason)
    else:
        for name in ("ecsd.db", "secret.key"):   # the key that opens the demo user's stored SK
            shutil.copy(os.path.join(template[0], name), os.path.join(data_dir, name))
        yield Settings(data_dir=data_dir, sim_delay=0.0, worker_name="test-worker", lease_seconds=5.0)
        return
    yield from _postgres_settings(data_dir, template, request.getfixturevalue("pg_schema"))


def _copy_demo_tenant(conn, creds: dict, password_hash: str) -> None:
    """The template's demo tenant with the same ids and password, so that `creds` works on this database."""
    import time

    from ecsd.store.schema import domains, memberships, projects, users
    from ecsd.store.schema import settings as settings_table

    now = time.time()
    conn.execute(domains.insert().values(id="d" * 32, name=creds["domain_name"], created_at=now))
    conn.execute(users.insert().values(id=creds["user_id"], domain_id="d" * 32, name=creds["user_name"],
                                       password_hash=password_hash, created_at=now))
    conn.execute(projects.insert().values(id=creds["project_id"], domain_id="d" * 32, name=creds["project_name"],
                                          created_at=now))
    conn.execute(memberships.insert().values(user_id=creds["user_id"], project_id=creds["project_id"]))
    conn.execute(settings_table.insert().values(key="seeded", value=str(now)))


@pytest.fixture(scope="session")
def pg_schema(template):
    """One migrated PostgreSQL schema for the session; each test empties and re-seeds it."""
    import uuid

    import psycopg

    from ecsd.domain.identity import hash_password
    from ecsd.store import migrate
    from ecsd.store.db import Store

    schema = "ecsd_t_" + uuid.uuid4().hex[:10]
    conninfo = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    store = Store(url)
    migrate.upgrade(store.engine)
    store.close()
    try:
        yield url, hash_password(template[1]["password"])
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _postgres_settings(data_dir: str, template: tuple[str, dict], pg: tuple[str, str]):
    from sqlalchemy import text

    from ecsd.domain import seed
    from ecsd.emulator import state as emulator_state
    from ecsd.store.db import Store
    from ecsd.store.schema import access_keys, metadata, tokens

    url, password_hash = pg
    template_dir, creds = template
    template_store = Store("sqlite:///" + os.path.join(template_dir, "ecsd.db"))
    with template_store.tx() as conn:
        demo_keys = [dict(r._mapping) for r in conn.execute(access_keys.select())]
        demo_tokens = [dict(r._mapping) for r in conn.execute(tokens.select())]
    template_store.close()
    with open(os.path.join(template_dir, "secret.key")) as fh:
        secret_key = fh.read().strip()
    store = Store(url)
    with store.tx() as conn:
        # DELETE, not TRUNCATE: these tables hold a few rows, and TRUNCATE makes new files for every table
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(text("ALTER SEQUENCE keypairs_id_seq RESTART"))
        _copy_demo_tenant(conn, creds, password_hash)
        seed.seed_catalogue(conn, fault_images=True)
        for row in demo_keys:
            conn.execute(access_keys.insert().values(**row))
        for row in demo_tokens:
            conn.execute(tokens.insert().values(**row))
        emulator_state.keep_initial(conn)      # what the emulator's reset returns to, as on a first start
    store.close()
    yield Settings(data_dir=data_dir, database_url=url, sim_delay=0.0, worker_name="test-worker",
                   lease_seconds=5.0, secret_key=secret_key)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def api(client, creds):
    return Api(client, creds, token=creds.get("token"))


@pytest.fixture
def slow_client(settings):
    """An app whose simulated driver spends 0.05 s per step, so that jobs are observably in flight."""
    settings.sim_delay = 0.05
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def slow_api(slow_client, creds):
    return Api(slow_client, creds, token=creds.get("token"))


def add_tenant(client, domain: str, user: str, password: str, project: str) -> dict:
    """A second domain with its own user and project, created in the store as an administrator would."""
    from ecsd.domain import identity

    def run(conn):
        did = identity.create_domain(conn, domain)
        uid = identity.create_user(conn, did, user, password)
        pid = identity.create_project(conn, did, project)
        identity.add_member(conn, uid, pid)
        return {"domain_id": did, "domain_name": domain, "user_name": user, "password": password, "user_id": uid,
                "project_id": pid, "project_name": project}

    return client.app.state.services.store.run_sync(run)


@pytest.fixture
def other_api(client):
    """Another account (domain, user, project) on the same service."""
    return Api(client, add_tenant(client, "other-domain", "mallory", "Other-Passw0rd", "eu-de_other"))
