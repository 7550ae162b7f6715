"""Hot statements compiled once per dialect and executed straight on the driver's cursor.

SQLAlchemy Core builds, caches and post-processes every statement it executes; on the hottest paths
(accepting a change OS, polling a job) that machinery cost more than the database work itself. A
:class:`Prepared` statement is still written as SQLAlchemy Core (so it is the same SQL on SQLite and
PostgreSQL, quoted and cast by the dialect), but it is compiled to its SQL text once per dialect and
then run on the DBAPI connection underneath the caller's SQLAlchemy ``Connection``, inside the
caller's transaction. Results come back as plain dicts keyed by column name.

What the shortcut does not do, and the statements given to it must therefore not need: Python-side
column defaults, expanding (``IN``) parameters, type conversions beyond booleans (the schema keeps
times as floats and JSON as text). SQLite returns booleans as 0/1; those columns are turned into
``bool`` so that the rows equal what SQLAlchemy would return.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable


class _Compiled:
    __slots__ = ("booleans", "columns", "defaults", "names", "sql")

    def __init__(self, stmt: Any, conn: Connection, keys: tuple[str, ...] | None) -> None:
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(keys) if keys is not None else None)
        if any(getattr(b, "expanding", False) for b in compiled.binds.values()):
            raise ValueError("a prepared statement cannot have expanding (IN) parameters")
        self.sql = compiled.string
        # Positional drivers (sqlite3) take a tuple in this order; named ones (psycopg) a dict.
        self.names = tuple(compiled.positiontup) if compiled.positional else None
        self.defaults = dict(compiled.params)        # the values of literals bound by the statement itself
        selected = list(getattr(stmt, "selected_columns", ()))
        self.columns = tuple(c.key for c in selected)
        self.booleans = (tuple(i for i, c in enumerate(selected) if isinstance(c.type, Boolean))
                         if conn.dialect.name == "sqlite" else ())


class Prepared:
    """One Core statement (``select``, ``update``, ``delete`` or an ``insert`` with the given keys)."""

    __slots__ = ("_by_dialect", "keys", "stmt")

    def __init__(self, stmt: Executable, keys: tuple[str, ...] | None = None) -> None:
        self.stmt = stmt
        self.keys = keys          # the columns an INSERT/UPDATE ... values() is given, if not in the statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _cursor(self, conn: Connection, params: dict[str, Any]):
        c = self._by_dialect.get(conn.dialect.name)
        if c is None:
            c = self._by_dialect[conn.dialect.name] = _Compiled(self.stmt, conn, self.keys)
        if c.defaults:
            params = {**c.defaults, **params}
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(c.sql, tuple(params[n] for n in c.names) if c.names is not None else params)
        return c, cursor

    def first(self, conn: Connection, params: dict[str, Any]) -> dict[str, Any] | None:
        c, cursor = self._cursor(conn, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        out = dict(zip(c.columns, row, strict=True))
        for i in c.booleans:
            name = c.columns[i]
            if out[name] is not None:
                out[name] = bool(out[name])
        return out

    def all(self, conn: Connection, params: dict[str, Any]) -> list[dict[str, Any]]:
        c, cursor = self._cursor(conn, params)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        out = [dict(zip(c.columns, row, strict=True)) for row in rows]
        for i in c.booleans:
            name = c.columns[i]
            for r in out:
                if r[name] is not None:
                    r[name] = bool(r[name])
        return out

    def execute(self, conn: Connection, params: dict[str, Any]) -> int:
        """Run a write; returns the number of rows it matched."""
        _, cursor = self._cursor(conn, params)
        try:
            return cursor.rowcount
        finally:
            cursor.close()
