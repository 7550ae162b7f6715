"""Images (IMS): lookup, visibility, filtered and paged listing, and the attributes change OS and
create validate against.

Visibility rule (everywhere): a project sees an image when it is public or the project owns it,
and never once it is ``deleted``. Listing is keyset-paged: rows are ordered by a sort key with the
image id as tie-breaker, and a marker (the id of the last image of the previous page) resumes right
after that image, so paging is stable while images come and go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain.errors import EcsError, invalid
from ecsd.store.prepared import Prepared
from ecsd.store.schema import images

# Query parameters (IMS / Glance spelling) that filter on one column by exact value.
STRING_FILTERS: dict[str, Any] = {
    "id": images.c.id,
    "name": images.c.name,
    "status": images.c.status,
    "visibility": images.c.visibility,
    "owner": images.c.owner,
    "__imagetype": images.c.imagetype,
    "__os_type": images.c.os_type,
    "__os_bit": images.c.os_bit,
    "__platform": images.c.platform,
    "__os_version": images.c.os_version,
    "virtual_env_type": images.c.virtual_env_type,
    "disk_format": images.c.disk_format,
    "hw_firmware_type": images.c.hw_firmware_type,
}

# Query parameters that take "true" / "false" and filter on a boolean column.
BOOL_FILTERS: dict[str, Any] = {
    "__support_kvm": images.c.support_kvm,
    "__support_cloudinit": images.c.cloudinit,
}

# Attributes every image has with one fixed value here: a filter asking for another value matches nothing.
CONSTANT_FILTERS: dict[str, str] = {
    "__isregistered": "true",
    "protected": "false",
    "container_format": "bare",
}

SORT_KEYS: dict[str, Any] = {
    "name": images.c.name,
    "id": images.c.id,
    "status": images.c.status,
    "disk_format": images.c.disk_format,
    "size": images.c.size,
    "min_disk": images.c.min_disk,
    "min_ram": images.c.min_ram,
    "created_at": images.c.created_at,
    "updated_at": images.c.updated_at,
}

MAX_FILTER_LENGTH = 255


@dataclass
class ImageQuery:
    """One listing request, already validated. ``statuses`` (when set) narrows to any of these."""

    equals: dict[str, str] = field(default_factory=dict)       # query parameter -> value
    flags: dict[str, bool] = field(default_factory=dict)       # boolean parameter -> value
    impossible: bool = False                                   # a constant filter that cannot match
    statuses: tuple[str, ...] | None = None
    min_disk: int | None = None                                # image min_disk >= this
    min_ram: int | None = None                                 # image min_ram >= this
    changed_since: float | None = None                         # updated_at >= this (epoch seconds)
    sort_key: str = "name"
    sort_dir: str = "asc"
    limit: int = 500
    marker: str | None = None
    # Only images carrying this property (the driver's ``boot_property``: images it can boot).
    requires_property: str | None = None


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise invalid(f"{name} must be true or false")
    return value == "true"


def query_from_params(params: Mapping[str, str]) -> ImageQuery:
    """The attribute filters found in query parameters; unknown parameters are ignored, as IMS does.

    Paging and sorting parameters are left to the caller (their defaults differ per API).
    """
    query = ImageQuery()
    for name, raw in params.items():
        if name in STRING_FILTERS or name in CONSTANT_FILTERS:
            if len(raw) > MAX_FILTER_LENGTH:
                raise invalid(f"{name} is longer than {MAX_FILTER_LENGTH} characters")
            if name in CONSTANT_FILTERS:
                if raw.strip().lower() != CONSTANT_FILTERS[name]:
                    query.impossible = True
            else:
                query.equals[name] = raw
        elif name in BOOL_FILTERS:
            query.flags[name] = _bool(name, raw)
    return query


def _visible(project_id: str):
    return and_(images.c.status != "deleted",
                or_(images.c.visibility == "public", images.c.owner == project_id))


def _load(row) -> dict[str, Any]:
    image = dict(row._mapping) if hasattr(row, "_mapping") else row
    image["properties"] = orjson.loads(image["properties"])
    return image


# A prepared statement (store/prepared.py): hot paths (change OS, create) run it.
_VISIBLE_IMAGE = Prepared(select(images).where(and_(
    images.c.id == bindparam("image_id"), images.c.status != "deleted",
    or_(images.c.visibility == "public", images.c.owner == bindparam("project_id")))))


def visible_image(conn: Connection, project_id: str, image_id: str) -> dict[str, Any] | None:
    """The image if it exists and the project may use it (public, or private to this project)."""
    row = _VISIBLE_IMAGE.first(conn, {"image_id": image_id, "project_id": project_id})
    return None if row is None else _load(row)


def _sort_column(conn: Connection, key: str):
    col = SORT_KEYS[key]
    # Text keys compare byte-wise on every backend, so that the order (and therefore paging) does
    # not depend on the database's locale. SQLite compares byte-wise already.
    if conn.dialect.name == "postgresql" and key in ("name", "id", "status", "disk_format"):
        return col.collate("C")
    return col


def list_images(conn: Connection, project_id: str, query: ImageQuery) -> tuple[list[dict[str, Any]], bool]:
    """One page of the images the project can see: ``(images, more_follow)``.

    An unknown or invisible marker is Ecs.0005, as are an unknown sort key or direction.
    """
    if query.sort_key not in SORT_KEYS:
        raise invalid(f"sort_key must be one of {', '.join(SORT_KEYS)}")
    if query.sort_dir not in ("asc", "desc"):
        raise invalid("sort_dir must be asc or desc")
    key = _sort_column(conn, query.sort_key)
    tie = _sort_column(conn, "id")
    conds = [_visible(project_id)]
    if query.marker is not None:
        mark = visible_image(conn, project_id, query.marker)
        if mark is None:
            raise invalid(f"marker {query.marker} is not an image of this project")
        mkey, mid = mark[query.sort_key], mark["id"]
        if query.sort_dir == "asc":
            conds.append(or_(key > mkey, and_(key == mkey, tie > mid)))
        else:
            conds.append(or_(key < mkey, and_(key == mkey, tie < mid)))
    if query.impossible:
        return [], False
    for name, value in query.equals.items():
        conds.append(STRING_FILTERS[name] == value)
    for name, flag in query.flags.items():
        conds.append(BOOL_FILTERS[name] == flag)
    if query.statuses is not None:
        conds.append(images.c.status.in_(query.statuses))
    if query.min_disk is not None:
        conds.append(images.c.min_disk >= query.min_disk)
    if query.min_ram is not None:
        conds.append(images.c.min_ram >= query.min_ram)
    if query.changed_since is not None:
        conds.append(images.c.updated_at >= query.changed_since)
    if query.requires_property is not None:
        conds.append(images.c.properties.contains(orjson.dumps(query.requires_property).decode(),
                                                  autoescape=True))
    order = (key.asc(), tie.asc()) if query.sort_dir == "asc" else (key.desc(), tie.desc())
    rows = conn.execute(select(images).where(and_(*conds)).order_by(*order).limit(query.limit + 1)).all()
    page = [_load(r) for r in rows[:query.limit]]
    return page, len(rows) > query.limit


# --- the image of a new system disk ----------------------------------------------------------------

def check_boot_image(image: dict[str, Any] | None, driver: Any) -> dict[str, Any]:
    """``image`` (from :func:`visible_image`) as the source of a new system disk (create, change OS):
    it exists (else Ecs.0031), is active (Ecs.0032), is a system-disk image for an ECS (Ecs.0007)
    and this host's driver can boot it (Ecs.0007: e.g. an image without a file in the local
    driver's image store, docs/decisions.md)."""
    if image is None:
        raise EcsError("Ecs.0031")
    if image["status"] != "active":
        raise EcsError("Ecs.0032")
    if image["virtual_env_type"] != "FusionCompute":
        raise EcsError("Ecs.0007", f"image {image['id']} is a {image['virtual_env_type']} image, "
                                   "not a system disk image for an ECS")
    why = driver.unusable_image(image["properties"]) if driver is not None else None
    if why is not None:
        raise EcsError("Ecs.0007", f"image {image['id']} cannot be booted by this host's "
                                   f"{driver.name} driver: {why}")
    return image


def check_fits(image: dict[str, Any], flavor: dict[str, Any] | None) -> None:
    """The flavor has the memory the image needs (else Ecs.0007)."""
    if flavor is not None and image["min_ram"] and flavor["ram"] < image["min_ram"]:
        raise EcsError("Ecs.0007", f"the image needs {image['min_ram']} MB of memory, "
                                   f"the flavor has {flavor['ram']} MB")
