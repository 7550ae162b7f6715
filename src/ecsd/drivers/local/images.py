"""The image store of the local driver: ``DATA_DIR/local/images/<image_id>.raw``.

:func:`import_image` (behind ``ecsd images import``) takes a raw or qcow2 file, checks that this
driver can boot it and write into it, and stores it as a read-only raw file named by the image id.
It returns the images-table row for the caller to insert; the row's ``properties`` carry
``__ecsd_file`` (the file's name inside the store), which reaches the driver as
``DiskSource.properties`` when a disk is made from the image.

What is refused, and why:

* formats other than raw and qcow2 (``qemu-img info`` decides, never the file name);
* qcow2 files with a backing file or an external data file (they would make QEMU read other host
  files);
* anything without an ext2/3/4 root file system holding ``/sbin/init``, on the whole disk or in a
  partition of an MBR or GPT table (partitions.py): key injection and the password work on ext file
  systems only. A partitioned image boots its own kernel (``/boot/vmlinuz-*`` with its initramfs); a
  whole-disk one its own kernel when it has one, else the driver's (boot.py).

Stored files are immutable: every disk made from an image is an overlay naming the file by absolute
path, so an image file is never replaced, moved or deleted while disks use it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid

from ecsd.drivers.base import DiskSource, DriverError
from ecsd.drivers.local import partitions, proc
from ecsd.drivers.local.paths import check_id, check_store_name, inside

FILE_KEY = "__ecsd_file"
GIB = 1024**3
_PRETTY = re.compile(r'^PRETTY_NAME="?([^"\n]*)"?$', re.MULTILINE)


def _info(path: str) -> dict:
    res = proc.run_sync(["qemu-img", "info", "--output=json", path], timeout=60)
    return json.loads(res.out)


def inspect(path: str) -> dict:
    """Format, sizes and os-release of a candidate image file; DriverError if it cannot be used."""
    info = _info(path)
    fmt = info.get("format")
    if fmt not in ("raw", "qcow2"):
        raise DriverError(f"the image is {fmt!r}; the local driver takes raw or qcow2")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise DriverError("the image has a backing file; import a self-contained (flattened) image")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise DriverError("the image has an external data file; import a self-contained image")
    return {"format": fmt, "virtual_size": int(info["virtual-size"]),
            "actual_size": int(info.get("actual-size") or os.path.getsize(path))}


def import_image(store_dir: str, file: str, *, name: str, os_type: str = "Linux", platform: str = "Other",
                 os_version: str | None = None, min_disk: int | None = None, min_ram: int = 0,
                 image_id: str | None = None, visibility: str = "public", owner: str | None = None,
                 link: bool = False) -> dict:
    """Check ``file``, store it as ``<image_id>.raw`` in ``store_dir`` and return the images-table row.

    ``link`` hard-links a raw file instead of copying it (O(1)); the caller then promises never to
    change the original. A qcow2 file is converted to raw once (O(its allocated data)).
    """
    image_id = check_id(image_id or str(uuid.uuid4()), "image id")
    if visibility not in ("public", "private"):
        raise DriverError("visibility must be public or private")
    if visibility == "private" and not owner:
        raise DriverError("a private image needs an owner project")
    if not os.path.isfile(file):
        raise DriverError(f"{file} is not a file")
    facts = inspect(file)
    os.makedirs(store_dir, mode=0o700, exist_ok=True)
    stored = f"{image_id}.raw"
    target = os.path.join(store_dir, stored)
    if os.path.lexists(target):
        raise DriverError(f"the image store already has {stored}: images are never replaced")
    part = target + ".part"
    if os.path.lexists(part):
        os.unlink(part)
    try:
        if facts["format"] == "qcow2":
            proc.run_sync(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", file, part], timeout=3600)
        elif link:
            os.link(file, part)
        else:
            proc.run_sync(["cp", "--sparse=always", "--reflink=auto", file, part], timeout=3600)
        root = partitions.root_of(part)            # DriverError: no ext root with /sbin/init
        spec = root.spec(part)
        release = partitions.read(spec, "/etc/os-release") or b""
        os.chmod(part, 0o444)
        os.replace(part, target)
    except BaseException:
        if os.path.lexists(part):
            os.unlink(part)
        raise
    pretty = _PRETTY.search(release.decode("utf-8", "replace"))
    need_gb = max(1, math.ceil(facts["virtual_size"] / GIB))
    now = time.time()
    return {
        "id": image_id, "name": name, "status": "active", "visibility": visibility,
        "owner": owner if visibility == "private" else None,
        "imagetype": "gold" if visibility == "public" else "private",
        "os_type": os_type, "os_bit": "64", "platform": platform,
        "os_version": (os_version or (pretty.group(1) if pretty else name))[:128],
        "min_disk": max(need_gb, min_disk or 0), "min_ram": min_ram, "disk_format": facts["format"],
        "size": facts["actual_size"], "virtual_env_type": "FusionCompute", "hw_firmware_type": "bios",
        "support_kvm": True, "cloudinit": False,
        "properties": json.dumps({FILE_KEY: stored}),
        "created_at": now, "updated_at": now,
    }


def register(conn, row: dict) -> None:
    """Insert an :func:`import_image` row (inside the caller's transaction)."""
    from ecsd.store.schema import images

    conn.execute(images.insert().values(**row))


def source_file(store_dir: str, source: DiskSource) -> tuple[str, str]:
    """(absolute path, format) of the file a disk is made from; DriverError when the image has none here."""
    name = (source.properties or {}).get(FILE_KEY)
    if not name:
        raise DriverError(f"image {source.image_id} has no file in this host's image store "
                          "(import it with `ecsd images import`)")
    path = inside(store_dir, os.path.join(store_dir, check_store_name(name)))
    if not os.path.isfile(path):
        raise DriverError(f"the file of image {source.image_id} is missing from the image store")
    return path, ("qcow2" if path.endswith(".qcow2") else "raw")
