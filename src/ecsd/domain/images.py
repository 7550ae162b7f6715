"""Images (IMS): lookup, visibility and the attributes change OS and create validate against."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from ecsd.store.schema import images


def visible_image(conn: Connection, project_id: str, image_id: str) -> dict[str, Any] | None:
    """The image if it exists and the project may use it (public, or private to this project)."""
    row = conn.execute(select(images).where(and_(
        images.c.id == image_id, images.c.status != "deleted",
        or_(images.c.visibility == "public", images.c.owner == project_id)))).first()
    if row is None:
        return None
    image = dict(row._mapping)
    image["properties"] = orjson.loads(image["properties"])
    return image
