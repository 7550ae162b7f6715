"""Reset, named snapshots and restore: the whole database's rows, kept in ``emulator_snapshots``.

A snapshot is every row of every table but ``emulator_snapshots`` itself, encoded with orjson and
kept in the database (so it survives restarts and every process sharing the database sees it),
with the schema revision it was taken at. Restoring replaces every row in one transaction. The
first start's state is kept as the snapshot ``INITIAL``: a reset restores it.

What restoring cannot reach, its callers settle (http/emulator.py): jobs running in this process
are abandoned first (``Engine.abandon_all``), and in-memory caches are dropped after. Listing
generations (``projects.list_gen``) only grow: restored projects get a generation above any that
was seen, so that no process's listing cache mistakes a restored project for the one it kept.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
from sqlalchemy import LargeBinary, func, select, text
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain.errors import EcsError, invalid
from ecsd.store.schema import emulator_snapshots, metadata, projects, tokens, users

INITIAL = "initial"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_SNAPSHOTS = 100


def _tables():
    """What a snapshot holds: every table but the snapshots and the tokens. Tokens are the callers'
    sessions, not the cloud's state: a token stays valid across a restore while its user and project
    exist (a test's SDK client keeps working after a reset)."""
    return [t for t in metadata.sorted_tables if t.name not in (emulator_snapshots.name, tokens.name)]


def _revision(conn: Connection) -> str:
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else "none"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise invalid("a snapshot name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def _encode(conn: Connection) -> bytes:
    body: dict[str, Any] = {}
    for table in _tables():
        binary = [str(c.name) for c in table.columns if isinstance(c.type, LargeBinary)]
        rows = []
        names = [str(c.name) for c in table.columns]
        for row in conn.execute(table.select()):
            item = dict(zip(names, row, strict=True))
            for name in binary:
                if item[name] is not None:
                    item[name] = base64.b64encode(item[name]).decode()
            rows.append(item)
        body[str(table.name)] = rows
    return orjson.dumps(body)


def take(conn: Connection, name: str) -> dict:
    """Keep the current state as ``name`` (replacing a snapshot of that name)."""
    check_name(name)
    exists = conn.execute(select(emulator_snapshots.c.name).where(emulator_snapshots.c.name == name)).first()
    if exists is None:
        count = conn.execute(select(func.count()).select_from(emulator_snapshots)).scalar_one()
        if count >= MAX_SNAPSHOTS:
            raise EcsError("Common.0409", f"at most {MAX_SNAPSHOTS} snapshots are kept; delete one first")
    body = _encode(conn)
    values = {"revision": _revision(conn), "created_at": clock.now(), "body": body}
    if exists is None:
        conn.execute(emulator_snapshots.insert().values(name=name, **values))
    else:
        conn.execute(emulator_snapshots.update().where(emulator_snapshots.c.name == name).values(**values))
    return {"name": name, "created_at": clock.iso_s(values["created_at"]), "size": len(body),
            "revision": values["revision"]}


def keep_initial(conn: Connection) -> None:
    take(conn, INITIAL)


def list_snapshots(conn: Connection) -> list[dict]:
    rows = conn.execute(select(emulator_snapshots.c.name, emulator_snapshots.c.revision,
                               emulator_snapshots.c.created_at, func.length(emulator_snapshots.c.body))
                        .order_by(emulator_snapshots.c.name))
    return [{"name": r[0], "revision": r[1], "created_at": clock.iso_s(r[2]), "size": r[3]} for r in rows]


def delete(conn: Connection, name: str) -> None:
    if name == INITIAL:
        raise EcsError("Common.0409", "the initial snapshot is what a reset returns to: it cannot be deleted")
    if conn.execute(emulator_snapshots.delete().where(emulator_snapshots.c.name == name)).rowcount == 0:
        raise _not_found(name)


def _not_found(name: str) -> EcsError:
    if name == INITIAL:
        return EcsError("Common.0409", "this database has no initial state (it was created by an older ecsd): "
                                       "take a snapshot and restore that instead")
    return EcsError("Common.0404", f"no snapshot named {name}")


def check_exists(conn: Connection, name: str) -> None:
    """404 (409 for a missing ``initial``) unless a snapshot of that name exists."""
    if conn.execute(select(emulator_snapshots.c.name).where(emulator_snapshots.c.name == name)).first() is None:
        raise _not_found(name)


def restore(conn: Connection, name: str) -> dict:
    """Replace every row with the snapshot's. 404 for an unknown name; 409 when the snapshot's rows no
    longer fit the schema (taken before an upgrade that added a column without a default)."""
    row = conn.execute(select(emulator_snapshots.c.body, emulator_snapshots.c.revision)
                       .where(emulator_snapshots.c.name == name)).first()
    if row is None:
        raise _not_found(name)
    body = orjson.loads(row[0])
    top = conn.execute(select(func.max(projects.c.list_gen))).scalar() or 0
    tables = _tables()
    sessions = [dict(zip([str(c.name) for c in tokens.columns], r, strict=True))
                for r in conn.execute(tokens.select())]
    if conn.dialect.name == "postgresql":
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in (tokens, *tables))))
    else:
        for table in (tokens, *reversed(tables)):
            conn.execute(table.delete())
    counts = {}
    for table in tables:
        columns = {c.name: c for c in table.columns}
        rows = []
        for item in body.get(table.name, []):
            kept = {k: v for k, v in item.items() if k in columns}
            for k, v in kept.items():
                if v is not None and isinstance(columns[k].type, LargeBinary):
                    kept[k] = base64.b64decode(v)
            if table is projects:
                kept["list_gen"] = top + 1 + int(kept.get("list_gen") or 0)
            rows.append(kept)
        if rows:
            try:
                conn.execute(table.insert(), rows)
            except Exception as exc:  # noqa: BLE001 - the rows do not fit this schema any more
                raise EcsError("Common.0409", f"snapshot {name} (schema {row[1]}) cannot be restored on schema "
                                              f"{_revision(conn)}: {type(exc).__name__}") from None
        counts[table.name] = len(rows)
    kept_users = {r[0] for r in conn.execute(select(users.c.id))}
    kept_projects = {r[0] for r in conn.execute(select(projects.c.id))}
    sessions = [t for t in sessions if t["user_id"] in kept_users and t["project_id"] in kept_projects]
    if sessions:
        conn.execute(tokens.insert(), sessions)
    if conn.dialect.name == "postgresql":
        _advance_sequences(conn, tables)
    return {"name": name, "rows": sum(counts.values())}


def _advance_sequences(conn: Connection, tables) -> None:
    """Serial keys (keypairs.id) continue after the restored rows."""
    for table in tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"))
