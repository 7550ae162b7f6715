"""Images (IMS): lookup, visibility, filtered and paged listing, what an image shows, and the
attributes change OS and create validate against.

Visibility rule (everywhere): a project sees an image when it is public or the project owns it,
and never once it is ``deleted``. Listing is keyset-paged: rows are ordered by a sort key with the
image id as tie-breaker, and a marker (the id of the last image of the previous page) resumes right
after that image, so paging is stable while images come and go.

What an image shows (:func:`attributes`, :func:`virtual_size`, :func:`is_protected`): every
attribute the official IMS models know, derived from the row (docs/decisions.md, "Images and
flavors"). Properties whose key starts with ``__ecsd`` (:data:`INTERNAL_PREFIX`: the simulated
driver's fault key, the local driver's image file) are for drivers only and never shown; the
drivers read them from the row (``properties``) as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain.errors import EcsError, invalid
from ecsd.store.prepared import Prepared
from ecsd.store.schema import images

# --- what an image shows --------------------------------------------------------------------------

INTERNAL_PREFIX = "__ecsd"      # properties for drivers only (FAULT_KEY, the local driver's FILE_KEY)
GIB = 1024**3
SUPPORT_MARKET = False          # __system_support_market: no image here can be sold in a marketplace

# The Glance core of an image object (typed fields of the views); every other field is an attribute.
GLANCE_CORE = frozenset({
    "id", "name", "status", "visibility", "owner", "min_disk", "min_ram", "disk_format", "container_format",
    "size", "virtual_size", "checksum", "protected", "tags", "created_at", "updated_at", "self", "file", "schema",
})

# Attributes with one value on every image here (why: docs/decisions.md, "Images and flavors").
FIXED_ATTRIBUTES: dict[str, str] = {
    "__isregistered": "true",
    "__image_source_type": "uds",          # IMS's only backend store
    "__root_origin": "file",               # every image here was made from an image file
    "__sequence_num": "0",                 # the system disk's slot
    "__lazyloading": "true",               # disks are copy-on-write layers over the image
    "__originalimagename": "",             # not derived from another image
    "__backup_id": "",                     # not made from a backup
    "__productcode": "",                   # not a marketplace image
    "__account_code": "",                  # not a charged image
    "__is_offshelved": "false",
    "__system__cmkid": "",                 # not encrypted
    "__image_location": "",                # where image files are stored is not disclosed
    "__system_support_market": "true" if SUPPORT_MARKET else "false",   # the IMS/Glance views: a boolean
    "__support_diskintensive": "false",
    "__support_highperformance": "false",
    "__support_largememory": "false",
    "__support_kvm_infiniband": "false",
    "__support_xen_hana": "false",
    "__support_kvm_gpu_type": "",
    "__support_xen_gpu_type": "",
    "__support_kvm_hi1822_hisriov": "false",
    "__support_kvm_hi1822_hivirtionet": "false",
    "__support_arm": "false",              # x86_64 images
    "__support_amd": "false",
    "hw_vif_multiqueue_enabled": "false",
    "max_ram": "0",                        # no maximum (0, as for min_ram)
    "os_shutdown_timeout": "60",           # IMS's default grace before a forced power-off
    "enterprise_project_id": "0",          # the default enterprise project
    "_sys_enterprise_project_id": "0",
}

# Defaults an image's own properties may replace (``__image_displayname`` defaults to the name).
DEFAULT_ATTRIBUTES: dict[str, str] = {
    "__description": "",
    "__support_xen": "false",              # this cloud is KVM
    "__os_feature_list": "{}",             # JSON object of advanced features: none
    "__support_agent_list": "",            # no host-security or monitoring agent (hss, ces)
}

# Attributes computed from the row; with the fixed ones and the core, properties never replace them.
_DERIVED = frozenset({
    "__imagetype", "__os_type", "__os_bit", "__platform", "__os_version", "__support_kvm", "__support_cloudinit",
    "__support_fc_inject", "virtual_env_type", "hw_firmware_type", "__image_size", "__data_origin",
    "__is_config_init", "active_at",
})
_RESERVED = GLANCE_CORE | FIXED_ATTRIBUTES.keys() | _DERIVED
_BASE = {**DEFAULT_ATTRIBUTES, **FIXED_ATTRIBUTES}


def _flag(value: Any) -> str:
    return "true" if value else "false"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return _flag(value)
    return str(value)


def attributes(image: dict[str, Any]) -> dict[str, str]:
    """Every attribute of ``image`` beyond the Glance core, as the strings IMS sends: the IMS view's
    ``__*`` and other extension fields, and the Nova image metadata. Internal properties are left out."""
    attrs = dict(_BASE)
    attrs["__image_displayname"] = image["name"]
    for key, value in image["properties"].items():
        if value is not None and key not in _RESERVED and not key.startswith(INTERNAL_PREFIX):
            attrs[key] = _text(value)
    active = image["status"] == "active"
    cloudinit = image["cloudinit"]
    attrs["__imagetype"] = image["imagetype"]
    attrs["__os_type"] = image["os_type"]
    attrs["__os_bit"] = image["os_bit"]
    attrs["__platform"] = image["platform"]
    attrs["__os_version"] = image["os_version"]
    attrs["__support_kvm"] = _flag(image["support_kvm"])
    attrs["__support_cloudinit"] = _flag(cloudinit)
    attrs["__support_fc_inject"] = "false" if cloudinit else "true"   # "true": keys/passwords injected by the platform
    attrs["virtual_env_type"] = image["virtual_env_type"]
    attrs["hw_firmware_type"] = image["hw_firmware_type"]
    attrs["__image_size"] = str(image["size"])
    attrs["__data_origin"] = "" if image["visibility"] == "public" else "file"
    attrs["__is_config_init"] = _flag(active)
    attrs["active_at"] = clock.iso_s(image["created_at"]) if active else ""
    return attrs


def virtual_size(image: dict[str, Any]) -> int:
    """Bytes of the disk the image holds: its ``min_disk`` (whole GB, rounded up at import)."""
    return image["min_disk"] * GIB


def is_protected(image: dict[str, Any]) -> bool:
    """Public images cannot be deleted by a tenant (IMS: ``protected`` true for public images)."""
    return image["visibility"] == "public"


def delete_image(conn: Connection, project_id: str, image_id: str) -> None:
    """Delete a private image of the project (Glance ``DELETE /v2/images/{id}``, the discarded Nova
    ``DELETE /v2.1/{project_id}/images/{id}``): it becomes ``deleted`` and leaves every list. An unknown
    or invisible image is 404 Ecs.0031; a public image is protected: 403 Ecs.0003. Servers made from
    it keep their disks (and show its id), as on the cloud."""
    image = visible_image(conn, project_id, image_id) if clock.is_uuid(image_id) else None
    if image is None:
        raise EcsError("Ecs.0031", f"Image {image_id} could not be found.", status=404)
    if is_protected(image) or image["owner"] != project_id:
        raise EcsError("Ecs.0003", f"image {image_id} is protected: only its owner's private images can be "
                                   "deleted", status=403)
    conn.execute(images.update().where(and_(images.c.id == image_id, images.c.status != "deleted"))
                 .values(status="deleted", updated_at=clock.now()))


# --- listing ---------------------------------------------------------------------------------------

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

# Attributes every image has with one value here: a filter asking for another value matches nothing.
CONSTANT_FILTERS: dict[str, frozenset[str]] = {
    "container_format": frozenset({"bare"}),
    "enterprise_project_id": frozenset({"0", "all_granted_eps"}),
    **{name: frozenset({FIXED_ATTRIBUTES[name]}) for name in (
        "__isregistered", "__support_diskintensive", "__support_highperformance", "__support_largememory",
        "__support_kvm_infiniband", "__support_xen_hana", "__support_kvm_gpu_type", "__support_xen_gpu_type")},
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
    protected: bool | None = None                              # public (True) or not (False)


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
                if raw.strip().lower() not in CONSTANT_FILTERS[name]:
                    query.impossible = True
            else:
                query.equals[name] = raw
        elif name in BOOL_FILTERS:
            query.flags[name] = _bool(name, raw)
        elif name == "protected":
            query.protected = _bool(name, raw)
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
    if query.protected is not None:
        conds.append(images.c.visibility == "public" if query.protected else images.c.visibility != "public")
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


# --- an image of a server (Nova createImage) ---------------------------------------------------------
#
# native_openstack_nova_apis/status_management/creating_an_image_using_an_ecs.rst. The image is a
# private image of the project made from the server's system disk; its OS fields, firmware,
# Cloud-Init flag, min_ram and free-form properties come from the image the server runs, min_disk
# from the system disk (at least the source's). With the simulated driver there are no bytes to copy:
# the image is inserted ``active`` in the accepting transaction. A driver with real disks needs a job
# (status ``saving``, a copy step, then ``active`` or ``killed``): not done yet (docs/decisions.md).

MAX_IMAGE_NAME = 242          # "greater than 0 bytes and less than 243 bytes"
MAX_METADATA_TEXT = 254       # a metadata key or value: "greater than 0 bytes and less than 255 bytes"
MAX_METADATA_ITEMS = 50
SNAPSHOT = "snapshot"         # Nova's image_type of an image made from a server


def check_snapshot_request(name: Any, metadata: Any) -> dict[str, str]:
    """The ``createImage`` name and metadata (as the image's properties); anything else is Ecs.0005."""
    if not isinstance(name, str) or not name.strip() or len(name.encode()) > MAX_IMAGE_NAME:
        raise invalid(f"createImage.name must be a text of 1 to {MAX_IMAGE_NAME} bytes")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_ITEMS:
        raise invalid(f"createImage.metadata must be an object of at most {MAX_METADATA_ITEMS} entries")
    for key, value in metadata.items():
        if not key or len(key.encode()) > MAX_METADATA_TEXT or not isinstance(value, str) \
                or len(value.encode()) > MAX_METADATA_TEXT:
            raise invalid(f"createImage.metadata: keys and values are texts of 1 to {MAX_METADATA_TEXT} bytes")
        if key in _RESERVED or key.startswith(INTERNAL_PREFIX):
            raise invalid(f"createImage.metadata: {key} is an attribute the service sets")
    return dict(metadata)


def create_from_server(conn: Connection, ident: Any, server_id: str, name: str, metadata: dict[str, str]) -> str:
    """A new private image of the server's system disk; its id. 404 Ecs.0114, locked Ecs.0605, not
    ACTIVE or SHUTOFF or an operation in progress (ERROR included) Ecs.0100."""
    from ecsd.domain import actions
    from ecsd.domain import servers as srv
    from ecsd.store.schema import servers

    server = srv.lock_for_change(conn, ident.project_id, server_id, "an image", servers.c.image_id)
    source = conn.execute(select(images).where(images.c.id == server.image_id)).first()
    if source is None:
        raise EcsError("Ecs.0031", f"the image {server.image_id} of server {server_id} is gone")
    source = _load(source)
    disk = srv.system_volume(conn, server_id)
    props = {k: v for k, v in source["properties"].items() if not k.startswith(INTERNAL_PREFIX)}
    props.update(metadata)
    props.update({"image_type": SNAPSHOT, "instance_uuid": server_id, "base_image_ref": source["id"],
                  "user_id": ident.user_id})
    now = clock.now()
    image_id = clock.new_uuid()
    conn.execute(images.insert().values(
        id=image_id, name=name, status="active", visibility="private", owner=ident.project_id,
        imagetype="private", os_type=source["os_type"], os_bit=source["os_bit"], platform=source["platform"],
        os_version=source["os_version"],
        min_disk=max(source["min_disk"], disk["size"] if disk is not None else 0), min_ram=source["min_ram"],
        disk_format=source["disk_format"], size=source["size"], virtual_env_type=source["virtual_env_type"],
        hw_firmware_type=source["hw_firmware_type"], support_kvm=source["support_kvm"],
        cloudinit=source["cloudinit"], properties=orjson.dumps(props).decode(), created_at=now, updated_at=now))
    actions.record(conn, ident, server_id, "createImage")
    return image_id
