"""Flavors: lookup, the ECS v1 listing with its sale-status rules, and the Nova-style sorted, paged listing.

Sale status (``os_extra_specs``): ``cond:operation:status`` is the region-wide status (``normal``
when absent) and ``cond:operation:az`` overrides it per availability zone, written as
``az1(normal), az2(sellout)``. An entry with empty parentheses is ignored, as the reference says.

* Without an AZ, the v1 list hides only flavors withdrawn everywhere (``abandon`` region-wide and
  in every listed AZ).
* With an AZ, it returns the flavors whose status there is ``normal``, ``obt`` or ``promotion``.
  An AZ that no flavor's ``cond:operation:az`` names is not a zone of this region: the list is empty.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, bindparam, or_, select, true
from sqlalchemy.engine import Connection

from ecsd.domain.errors import invalid
from ecsd.store.prepared import Prepared
from ecsd.store.schema import flavors

SELLING = frozenset({"normal", "obt", "promotion"})

# Nova's sort_key names and the columns they mean.
SORT_KEYS: dict[str, Any] = {
    "flavorid": flavors.c.id,
    "id": flavors.c.id,
    "name": flavors.c.name,
    "memory_mb": flavors.c.ram,
    "vcpus": flavors.c.vcpus,
    "root_gb": flavors.c.disk,
    "disabled": flavors.c.disabled,
}


def _load(row) -> dict[str, Any]:
    flavor = dict(row._mapping) if hasattr(row, "_mapping") else row
    flavor["extra_specs"] = orjson.loads(flavor["extra_specs"])
    return flavor


_GET_FLAVOR = Prepared(select(flavors).where(flavors.c.id == bindparam("flavor_id")))   # a hot path


def get_flavor(conn: Connection, flavor_id: str) -> dict[str, Any] | None:
    row = _GET_FLAVOR.first(conn, {"flavor_id": flavor_id})
    if row is None:
        return None
    return _load(row)


def az_statuses(extra_specs: dict[str, Any]) -> dict[str, str]:
    """``cond:operation:az`` as ``{az: status}``; malformed or empty entries are skipped."""
    raw = extra_specs.get("cond:operation:az")
    if not isinstance(raw, str):
        return {}
    result: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part.endswith(")") or "(" not in part:
            continue
        az, _, status = part[:-1].partition("(")
        az, status = az.strip(), status.strip()
        if az and status:
            result[az] = status
    return result


def region_status(extra_specs: dict[str, Any]) -> str:
    raw = extra_specs.get("cond:operation:status")
    return raw.strip() if isinstance(raw, str) and raw.strip() else "normal"


def status_in_az(extra_specs: dict[str, Any], az: str) -> str:
    return az_statuses(extra_specs).get(az) or region_status(extra_specs)


def list_flavors_v1(conn: Connection, availability_zone: str | None = None) -> list[dict[str, Any]]:
    """``GET /v1/{project_id}/cloudservers/flavors``: every flavor on sale (see the module doc), by id."""
    rows = [_load(r) for r in conn.execute(select(flavors).order_by(flavors.c.id)).all()]
    if availability_zone is None:
        return [f for f in rows if region_status(f["extra_specs"]) != "abandon"
                or any(s != "abandon" for s in az_statuses(f["extra_specs"]).values())]
    known = set()
    for f in rows:
        known.update(az_statuses(f["extra_specs"]))
    if availability_zone not in known:
        return []
    return [f for f in rows if status_in_az(f["extra_specs"], availability_zone) in SELLING]


def list_flavors(conn: Connection, *, min_disk: int | None = None, min_ram: int | None = None,
                 sort_key: str = "flavorid", sort_dir: str = "asc", limit: int = 1000,
                 marker: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The Nova flavor list: ``(page, more_follow)``, keyset-paged on (sort key, id).

    Unknown sort key or direction, and a marker that is not a flavor, are Ecs.0005.
    """
    if sort_key not in SORT_KEYS:
        raise invalid(f"sort_key must be one of {', '.join(SORT_KEYS)}")
    if sort_dir not in ("asc", "desc"):
        raise invalid("sort_dir must be asc or desc")
    key, tie = SORT_KEYS[sort_key], flavors.c.id
    if conn.dialect.name == "postgresql":  # byte-wise text order on every backend, as SQLite does
        tie = tie.collate("C")
        if sort_key in ("flavorid", "id", "name"):
            key = key.collate("C")
    conds = []
    if marker is not None:
        mark = get_flavor(conn, marker)
        if mark is None:
            raise invalid(f"marker {marker} is not a flavor")
        mkey = mark[SORT_KEYS[sort_key].name]
        if sort_dir == "asc":
            conds.append(or_(key > mkey, and_(key == mkey, tie > mark["id"])))
        else:
            conds.append(or_(key < mkey, and_(key == mkey, tie < mark["id"])))
    if min_disk is not None:
        conds.append(flavors.c.disk >= min_disk)
    if min_ram is not None:
        conds.append(flavors.c.ram >= min_ram)
    order = (key.asc(), tie.asc()) if sort_dir == "asc" else (key.desc(), tie.desc())
    rows = conn.execute(select(flavors).where(and_(true(), *conds)).order_by(*order).limit(limit + 1)).all()
    return [_load(r) for r in rows[:limit]], len(rows) > limit
