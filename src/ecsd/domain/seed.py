"""First start: the demo tenant and the public catalogue of images and flavors.

Image ids are UUIDv5 of the image name, so the same catalogue has the same ids on every install and
docs and scripts can name them.
"""

from __future__ import annotations

import secrets
import uuid

import orjson
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.engine import Connection

from ecsd.domain import access_keys, clock, identity
from ecsd.drivers.base import FAULT_KEY
from ecsd.store.schema import flavors, images, settings

_NS = uuid.UUID("6f1c0c52-5a0e-4b8e-9d51-ec5d00000000")


def image_id(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


# name, os_type, platform, os_version, min_disk, min_ram, firmware, cloudinit, status, env type, extra
_IMAGES = [
    ("Standard_Ubuntu_22.04_latest", "Linux", "Ubuntu", "Ubuntu 22.04 server 64bit", 10, 1024, "bios", True,
     "active", "FusionCompute", {}),
    ("Standard_Debian_12_latest", "Linux", "Debian", "Debian GNU/Linux 12.0.0 64bit", 10, 1024, "bios", False,
     "active", "FusionCompute", {}),
    ("Standard_CentOS_7_latest", "Linux", "CentOS", "CentOS 7.9 64bit", 12, 1024, "bios", False,
     "active", "FusionCompute", {}),
    ("Standard_openSUSE_15_latest", "Linux", "OpenSUSE", "OpenSUSE 15.5 64bit", 12, 1024, "bios", True,
     "active", "FusionCompute", {}),
    ("Standard_EulerOS_2.9_latest", "Linux", "EulerOS", "EulerOS 2.9 64bit", 40, 2048, "bios", True,
     "active", "FusionCompute", {}),
    ("Standard_Ubuntu_22.04_UEFI", "Linux", "Ubuntu", "Ubuntu 22.04 server 64bit", 10, 1024, "uefi", True,
     "active", "FusionCompute", {}),
    ("Standard_Windows_Server_2022_DataCenter", "Windows", "Windows", "Windows Server 2022 Datacenter 64bit",
     40, 4096, "bios", True, "active", "FusionCompute", {}),
    ("Standard_Fedora_40_pending", "Linux", "Fedora", "Fedora 40 64bit", 10, 1024, "bios", True,
     "queued", "FusionCompute", {}),
    ("Data_Disk_Image_100GB", "Other", "Other", "Data disk image", 100, 0, "bios", False,
     "active", "DataImage", {}),
]

# Simulated faults, so that failing jobs are reachable through the public API (decisions.md). Not in
# the default catalogue, where a client taking "the first public image" would get a server that
# fails: ``ecsd serve --fault-images`` (ECSD_FAULT_IMAGES=1) or a seed file brings them
# (docs/testing-with-ecsd.md); the emulator's fault injection needs no image at all.
FAULT_IMAGES = [
    ("Test_Faulty_Image_disk_creation", "Linux", "Other", "Fault injection: system disk creation fails",
     10, 0, "bios", False, "active", "FusionCompute", {FAULT_KEY: "create_disk"}),
    ("Test_Faulty_Image_boot", "Linux", "Other", "Fault injection: the server does not start",
     10, 0, "bios", False, "active", "FusionCompute", {FAULT_KEY: "start"}),
]

# id, vcpus, ram MB, performance type (the extra-spec keys not stored here are derived when shown:
# domain/flavors.py, shown_specs)
_FLAVORS = [
    ("s3.small.1", 1, 1024, "normal"),
    ("s3.medium.2", 1, 2048, "normal"),
    ("s3.large.2", 2, 4096, "normal"),
    ("s3.xlarge.2", 4, 8192, "normal"),
    ("c6.large.2", 2, 4096, "computingv3"),
    ("c6.xlarge.4", 4, 16384, "computingv3"),
    ("m6.large.8", 2, 16384, "highmem"),
]


def image_row(name: str, os_type: str, platform: str, os_version: str, min_disk: int, min_ram: int,
              firmware: str, cloudinit: bool, status: str, env: str, extra: dict, *, image: str | None = None,
              visibility: str = "public", owner: str | None = None) -> dict:
    """An ``images`` row as the catalogue and seed files (emulator/seedfile.py) register them."""
    now = clock.now()
    return {
        "id": image or image_id(name), "name": name, "status": status, "visibility": visibility, "owner": owner,
        "imagetype": "gold" if visibility == "public" else "private", "os_type": os_type, "os_bit": "64",
        "platform": platform, "os_version": os_version, "min_disk": min_disk, "min_ram": min_ram,
        "disk_format": "zvhd2" if env == "FusionCompute" else "raw", "size": min_disk * 1024**3 // 8,
        "virtual_env_type": env, "hw_firmware_type": firmware, "support_kvm": True, "cloudinit": cloudinit,
        "properties": orjson.dumps(extra).decode(), "created_at": now, "updated_at": now}


def seed_catalogue(conn: Connection, fault_images: bool = False) -> None:
    for image in _IMAGES + (FAULT_IMAGES if fault_images else []):
        conn.execute(images.insert().values(**image_row(*image)))
    for fid, vcpus, ram, perf in _FLAVORS:
        conn.execute(flavors.insert().values(
            id=fid, name=fid, vcpus=vcpus, ram=ram, disk=0, extra_specs=orjson.dumps({
                "ecs:performancetype": perf, "ecs:generation": fid.split(".")[0],
                "ecs:virtualization_env_types": "CloudCompute", "resource_type": "IOoptimized" + fid.split(".")[0].upper(),
                "cond:operation:status": "normal",
                "cond:operation:az": "eu-de-01(normal),eu-de-02(normal),eu-de-03(normal)",   # every zone
            }).decode()))


def ensure_fault_images(conn: Connection) -> None:
    """The fault images, added to a catalogue that lacks them (``--fault-images`` on an existing database)."""
    have = {r[0] for r in conn.execute(select(images.c.id))}
    for image in FAULT_IMAGES:
        if image_id(image[0]) not in have:
            conn.execute(images.insert().values(**image_row(*image)))


def is_seeded(conn: Connection) -> bool:
    return conn.execute(select(settings.c.value).where(settings.c.key == "seeded")).first() is not None


def seed_demo(conn: Connection, region: str, box: Fernet | None = None, fault_images: bool = False) -> dict:
    """The demo domain, user and project, plus the catalogue. Returns the credentials to hand out.

    With ``box`` (the SK encryption key) the demo user also gets an access key, whose ``ak``/``sk``
    are part of the credentials: the Huawei SDK signs with them.
    """
    password = "Demo-" + secrets.token_urlsafe(12)
    domain_id = identity.create_domain(conn, "ecsd-demo")
    user_id = identity.create_user(conn, domain_id, "demo", password)
    project_id = identity.create_project(conn, domain_id, region, "demo project")
    identity.add_member(conn, user_id, project_id)
    seed_catalogue(conn, fault_images)
    conn.execute(settings.insert().values(key="seeded", value=str(clock.now())))
    creds = {"domain_name": "ecsd-demo", "user_name": "demo", "password": password, "user_id": user_id,
             "project_id": project_id, "project_name": region}
    if box is not None:
        ak, sk = access_keys.create(conn, box, user_id, "demo key, created at first start")
        creds.update(ak=ak, sk=sk)
    return creds
