"""Key pairs (per user): create, import, list, delete, and lookup for change OS."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.store.schema import keypairs


def find_keypair(conn: Connection, user_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(keypairs).where(and_(keypairs.c.user_id == user_id, keypairs.c.name == name))).first()
    return dict(row._mapping) if row else None
