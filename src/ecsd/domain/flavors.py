"""Flavors: lookup, the extra specs a flavor shows, the ECS v1 listing with its sale-status rules, the
Nova-style sorted, paged listing, and the flavors a server may be resized to (:func:`resize_refusal`,
:func:`resize_flavors`; served by domain/resize.py).

Shown extra specs (:func:`shown_specs`): every key the reference documents for ``os_extra_specs``
(17, Table 6 of ``querying_details_about_flavors_and_extended_flavor_information.rst``), all
strings. The keys a flavor row stores win; the others are derived from its vCPUs and performance
type (docs/decisions.md, "Images and flavors"). The sale rules below read the stored keys only,
and a derived key never changes their outcome (``cond:operation:status`` ``normal`` and
``cond:operation:az`` ``""`` mean what their absence means).

Sale status (``os_extra_specs``): ``cond:operation:status`` is the region-wide status (``normal``
when absent) and ``cond:operation:az`` overrides it per availability zone, written as
``az1(normal), az2(sellout)``. An entry with empty parentheses is ignored, as the reference says.

* Without an AZ, the v1 list hides only flavors withdrawn everywhere (``abandon`` region-wide and
  in every listed AZ).
* With an AZ, it returns the flavors whose status there is ``normal``, ``obt`` or ``promotion``.
  An AZ that no flavor's ``cond:operation:az`` names is not a zone of this region: the list is empty.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """The flavor row with its *stored* extra specs (what create and the sale rules read)."""
    row = _GET_FLAVOR.first(conn, {"flavor_id": flavor_id})
    if row is None:
        return None
    return _load(row)


# --- what a flavor shows ---------------------------------------------------------------------------

# Per vCPU and performance type: assured and maximum bandwidth (Mbit/s) and maximum packets per second.
_NETWORK: dict[str, tuple[int, int, int]] = {
    "normal": (100, 800, 100_000),
    "computingv3": (600, 2000, 200_000),
    "highmem": (600, 2000, 200_000),
}
MAX_BANDWIDTH = 10_000          # Mbit/s, the reference's maximum of instance_vnic:instance_bandwidth
MAX_NICS = 4                    # the reference's maximum of instance_vnic:max_count
# What a new server of any flavor can still attach (its system disk uses one virtio slot of 24),
# as GET .../block_device reports for a server (http/servers.py).
FREE_SCSI, FREE_BLK = 59, 23


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)


def _count(text: str, default: int) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return default


def shown_specs(flavor: dict[str, Any]) -> dict[str, str]:
    """The flavor's ``os_extra_specs``: the stored keys (as strings), and every reference key they lack."""
    stored = flavor["extra_specs"]
    vcpus = max(1, flavor["vcpus"])
    perf = _text(stored.get("ecs:performancetype") or "normal")
    generation = _text(stored.get("ecs:generation") or flavor["id"].split(".")[0])
    assured, peak, pps = _NETWORK.get(perf, _NETWORK["normal"])
    specs = {
        "ecs:performancetype": perf,
        "ecs:generation": generation,
        "ecs:virtualization_env_types": "CloudCompute",          # KVM
        "resource_type": "IOoptimized" + generation.upper(),
        "instance_vnic:type": "enhanced",
        "instance_vnic:max_count": str(min(MAX_NICS, vcpus)),
        "quota:max_rate": str(min(MAX_BANDWIDTH, peak * vcpus)),
        "quota:min_rate": str(min(MAX_BANDWIDTH, assured * vcpus)),
        "quota:max_pps": str(pps * vcpus),
        "quota:local_disk": "",                                   # no local disks (disk-intensive types only)
        "quota:nvme_ssd": "",                                     # no NVMe SSDs (ultra-high I/O types only)
        "extra_spec:io:persistent_grant": "false",                # D1 types only
        "cond:operation:status": "normal",                        # what its absence means
        "cond:operation:az": "",                                  # no zone list: the region status everywhere
        "cond:operation:charge": "demand",                        # pay-per-use is the only billing here
        "cond:compute": "",                                       # no automatic recovery, no live resize
    }
    specs.update((key, _text(value)) for key, value in stored.items() if value is not None)
    specs.setdefault("instance_vnic:instance_bandwidth", specs["quota:max_rate"])
    return specs


def attachable_quantity(specs: dict[str, str]) -> dict[str, int]:
    """``attachableQuantity`` of a flavor: the disks and NICs a new server of it can attach."""
    return {"free_scsi": FREE_SCSI, "free_blk": FREE_BLK, "free_disk": FREE_BLK,
            "free_nic": _count(specs.get("instance_vnic:max_count", ""), MAX_NICS)}


def _shown(flavor: dict[str, Any]) -> dict[str, Any]:
    flavor["extra_specs"] = shown_specs(flavor)
    flavor["attachable"] = attachable_quantity(flavor["extra_specs"])
    return flavor


def flavor_details(conn: Connection, flavor_id: str) -> dict[str, Any] | None:
    """The flavor as the read APIs show it (every reference extra spec, ``attachable``), or None."""
    flavor = get_flavor(conn, flavor_id)
    return None if flavor is None else _shown(flavor)


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
    """``GET /v1/{project_id}/cloudservers/flavors``: every flavor on sale (see the module doc), by id,
    as shown (:func:`shown_specs`, ``attachable``)."""
    rows = [_load(r) for r in conn.execute(select(flavors).order_by(flavors.c.id)).all()]
    if availability_zone is None:
        return [_shown(f) for f in rows if region_status(f["extra_specs"]) != "abandon"
                or any(s != "abandon" for s in az_statuses(f["extra_specs"]).values())]
    known = set()
    for f in rows:
        known.update(az_statuses(f["extra_specs"]))
    if availability_zone not in known:
        return []
    return [_shown(f) for f in rows if status_in_az(f["extra_specs"], availability_zone) in SELLING]


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


# --- resize: which flavors a server may change to ---------------------------------------------------

_EVERY_FLAVOR = 1_000_000       # the catalogue is small: resize_flavors filters the whole sorted list


def _env_type(flavor: dict[str, Any]) -> str:
    return _text(flavor["extra_specs"].get("ecs:virtualization_env_types") or "CloudCompute")


def resize_refusal(source: dict[str, Any], target: dict[str, Any], zones: Iterable[str],
                   min_ram: int = 0) -> tuple[str, str] | None:
    """Why a server of flavor ``source`` in one of ``zones``, booted from an image that needs ``min_ram``
    MB, cannot change to ``target``: ``(code, detail)``, or None when it can.

    The same flavor Ecs.0009; a disabled flavor, or one withdrawn (``abandon``) in every zone, Ecs.0029;
    one on sale in none of them (``sellout``) Ecs.0319; another virtualisation type, or too little
    memory for the image, Ecs.0804 ("cannot be switched to the target flavor")."""
    if target["id"] == source["id"]:
        return "Ecs.0009", f"the ECS already has flavor {target['id']}"
    if target["disabled"]:
        return "Ecs.0029", f"flavor {target['id']} is disabled"
    statuses = [status_in_az(target["extra_specs"], az) for az in zones]
    if all(status == "abandon" for status in statuses):
        return "Ecs.0029", f"flavor {target['id']} is no longer offered"
    if not any(status in SELLING for status in statuses):
        return "Ecs.0319", f"flavor {target['id']} is sold out"
    if _env_type(target) != _env_type(source):
        return "Ecs.0804", f"flavor {target['id']} is a {_env_type(target)} flavor, the ECS a {_env_type(source)} one"
    if min_ram and target["ram"] < min_ram:
        return "Ecs.0804", f"the ECS's image needs {min_ram} MB of memory, flavor {target['id']} has {target['ram']} MB"
    return None


def resize_flavors(conn: Connection, source: dict[str, Any], zones: Iterable[str], min_ram: int = 0, *,
                   sort_key: str = "flavorid", sort_dir: str = "asc", limit: int = 1000,
                   marker: str | None = None) -> list[dict[str, Any]]:
    """The flavors :func:`resize_refusal` lets a server of ``source`` change to, as shown (every extra
    spec), sorted and paged as :func:`list_flavors` does (its Ecs.0005 refusals included)."""
    zones = tuple(zones)
    rows, _ = list_flavors(conn, sort_key=sort_key, sort_dir=sort_dir, limit=_EVERY_FLAVOR, marker=marker)
    fit = [f for f in rows if resize_refusal(source, f, zones, min_ram) is None]
    return [_shown(f) for f in fit[:limit]]
