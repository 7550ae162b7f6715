"""One migration history serves SQLite and PostgreSQL, and it produces exactly the declared schema."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ecsd.store import migrate
from ecsd.store.db import Store, sqlite_url
from ecsd.store.schema import metadata

PG = "postgresql://postgres@127.0.0.1:5432/test"


def _check(store: Store) -> None:
    assert migrate.upgrade(store.engine) is True
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert migrate.upgrade(store.engine) is False  # idempotent


def test_sqlite_schema_matches_declaration(tmp_path):
    store = Store(sqlite_url(str(tmp_path)))
    try:
        _check(store)
    finally:
        store.close()


def test_postgresql_schema_matches_declaration():
    import psycopg

    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True,
                                connect_timeout=2)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc.__class__.__name__})")
    schema = "ecsd_t_" + uuid.uuid4().hex[:8]
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = Store(f"{PG}?options=-csearch_path%3D{schema}")
        try:
            _check(store)
        finally:
            store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
