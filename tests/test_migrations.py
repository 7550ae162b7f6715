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


def test_sqlite_upgrade_keeps_a_populated_database(tmp_path):
    """Columns added to a table other rows refer to (projects) must not need a table copy on SQLite,
    which the foreign keys of existing rows would refuse: a database from revision 0002 with a
    member in a project upgrades in place and keeps its rows."""
    from alembic import command
    from click.testing import CliRunner
    from sqlalchemy import text

    from ecsd.cli import main

    store = Store(sqlite_url(str(tmp_path)))
    try:
        command.upgrade(migrate._config(store.engine), "0002")
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO domains (id, name, enabled, created_at) VALUES ('d1', 'dom', 1, 0)"))
            conn.execute(text("INSERT INTO projects (id, domain_id, name, description, enabled, created_at) "
                              "VALUES ('p1', 'd1', 'eu-de', '', 1, 0)"))
            conn.execute(text("INSERT INTO users (id, domain_id, name, password_hash, enabled, created_at) "
                              "VALUES ('u1', 'd1', 'alice', 'x', 1, 0)"))
            conn.execute(text("INSERT INTO memberships (user_id, project_id) VALUES ('u1', 'p1')"))
    finally:
        store.close()
    result = CliRunner().invoke(main, ["db", "upgrade", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    store = Store(sqlite_url(str(tmp_path)))
    try:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT id, server_count, list_gen FROM projects")).all() == [("p1", 0, 0)]
            assert conn.execute(text("SELECT count(*) FROM memberships")).scalar() == 1
    finally:
        store.close()
