"""Schema migrations with Alembic: one history for SQLite and PostgreSQL."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

_HERE = os.path.dirname(os.path.abspath(__file__))


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(_HERE, "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    return ScriptDirectory(os.path.join(_HERE, "migrations")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> bool:
    """Bring the schema to head. Returns True if anything was applied."""
    if current_revision(engine) == head_revision():
        return False
    command.upgrade(_config(engine), "head")
    return True
