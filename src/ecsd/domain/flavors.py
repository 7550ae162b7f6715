"""Flavors: lookup and listing."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from ecsd.store.schema import flavors


def get_flavor(conn: Connection, flavor_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(flavors).where(flavors.c.id == flavor_id)).first()
    if row is None:
        return None
    flavor = dict(row._mapping)
    flavor["extra_specs"] = orjson.loads(flavor["extra_specs"])
    return flavor
