"""Server create (with system and data disks), the server update, and the create job's steps.

A create is accepted in one transaction (validate, charge the quota, insert the parent job and one
sub-job per server) and then carried out by the job engine, step by step. Delete, start, stop,
reboot and lock are in domain/batch.py.

A create is refused whole with 400 Ecs.0001 when its servers, their vCPUs or their RAM would pass a
project quota (domain/quotas.py, checked and charged atomically at acceptance); a deleted server
stops counting when its delete job finishes (batch.purge_record), not when the delete is accepted.
Before that charge, the servers' flavor RAM must fit this host's memory budget (domain/capacity.py),
else the create is refused whole with 400 Ecs.0319 and nothing is charged.

The v1 create (``POST /v1/{project_id}/cloudservers``, creating_an_ecs.rst) and the Nova create
(``POST /v2.1/{project_id}/servers``, native_openstack_nova_apis/lifecycle_management/creating_an_ecs.rst)
are one acceptance: :func:`accept_create` and :func:`accept_nova_create` differ only in what they
answer (the Nova one: a ``min_count`` .. ``max_count`` range, a generated password, the reservation).
Each NIC gets a port, MAC and address of its own (domain/nics.py). The Nova update and delete run
:func:`update_server` and ``batch.accept_batch`` as the v1 ones do.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import (
    actions,
    capacity,
    clock,
    idempotency,
    nics,
    quotas,
    sealing,
    security_groups,
    server_groups,
)
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.changeos import check_password, decode_user_data, driver_call, injection, scrub_secrets
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.flavors import SELLING, get_flavor, status_in_az
from ecsd.domain.identity import Identity
from ecsd.domain.images import check_boot_image, check_fits, visible_image
from ecsd.domain.keypairs import find_keypair
from ecsd.drivers.base import DiskSource
from ecsd.engine.engine import JobContext, JobType, Step, submit
from ecsd.store.schema import servers, volumes

DEFAULT_AZ = "eu-de-01"
AVAILABILITY_ZONES = ("eu-de-01", "eu-de-02", "eu-de-03")


@dataclass(frozen=True)
class DataVolume:
    volumetype: str
    size: int


@dataclass(frozen=True)
class ServerSpec:
    """A parsed create request (shapes checked by the HTTP layer, meaning checked here)."""

    name: str
    image_id: str
    flavor_id: str
    vpc_id: str
    nics: tuple[tuple[str, str | None], ...]      # (subnet_id, ip_address)
    volumetype: str
    size: int | None
    data_volumes: tuple[DataVolume, ...] = ()
    key_name: str | None = None
    admin_pass: str | None = None
    user_data: str | None = None
    count: int = 1
    availability_zone: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    description: str = ""
    min_count: int | None = None        # Nova: create at least this many, up to ``count``, as quota allows
    no_network: bool = False            # Nova ``networks: "none"``: a server without NICs
    security_groups: tuple[str, ...] = ()    # names or ids; only the project's default group exists
    group: str | None = None            # os:scheduler_hints.group: the servers join it (domain/server_groups.py)


MAX_NAME = 128
MAX_NAME_WITH_COUNT = 59      # the name plus "-0001" style suffixes (creating_an_ecs.rst)
MAX_COUNT = 500
MAX_DATA_VOLUMES = 23         # virtio devices /dev/vdb../dev/vdx ("certain flavors support only 23")
MAX_DESCRIPTION = 85
MAX_NICS = 12
VOLUME_TYPES = ("SATA", "SAS", "SSD", "GPSSD", "ESSD", "co-p1", "uh-l1")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]+")


def check_name(name: str, count: int = 1) -> None:
    """1-128 letters, digits, '_', '-', '.' (59 with count > 1): too long Ecs.0914, bad characters Ecs.0915."""
    if not name:
        raise invalid("name must not be empty")
    limit = MAX_NAME if count <= 1 else MAX_NAME_WITH_COUNT
    if len(name) > limit:
        raise EcsError("Ecs.0914", f"name may have at most {limit} characters"
                       + (" when count > 1" if count > 1 else ""))
    if not _NAME_CHARS.fullmatch(name):
        raise EcsError("Ecs.0915", "name may contain only letters, digits, '_', '-' and '.'")


def check_description(description: str) -> None:
    """At most 85 characters, no angle brackets: else Ecs.0041."""
    if len(description) > MAX_DESCRIPTION or "<" in description or ">" in description:
        raise EcsError("Ecs.0041", "description may have at most 85 characters and no '<' or '>'")


def _fixed_ips(conn: Connection, project_id: str, spec: ServerSpec) -> None:
    fixed = [ip for _subnet, ip in spec.nics if ip is not None]
    if fixed and spec.count > 1:
        raise invalid("nics.ip_address cannot be given when creating more than one ECS")
    for ip in fixed:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise invalid(f"ip_address {ip} is not an IPv4 address") from None
    if len(set(fixed)) != len(fixed):
        raise EcsError("Ecs.0010", "the same ip_address is given for two NICs")
    for ip in fixed:
        taken = conn.execute(select(servers.c.id).where(and_(
            servers.c.project_id == project_id, servers.c.deleted.is_(False),
            servers.c.addresses.like(f'%"addr":"{ip}"%')))).first()
        if taken is not None:
            raise EcsError("Ecs.0010", f"ip_address {ip} is used by ECS {taken.id}")


def accept_create(conn: Connection, ident: Identity, spec: ServerSpec, client_token: str | None = None,
                  digest: str = "", driver: Any = None) -> tuple[str, list[str]]:
    """Validate and submit a createServer job. Returns (job id, server ids).

    With a ``client_token`` (X-Client-Token), a repeat of a request already accepted under it returns
    that request's job and servers and creates nothing (domain/idempotency.py); ``digest`` is the
    request's fingerprint.

    Raises the create error codes of docs/decisions.md ("create error codes"), the image, flavor and
    key-pair codes (Ecs.0031/0032/0007, Ecs.0029/0319, Ecs.0314), and 400 Ecs.0001 when the servers
    would pass the project's instance, vCPU or RAM quota (nothing is created then); 400 Ecs.0319 when
    this host has not the memory for them (domain/capacity.py); the group of ``os:scheduler_hints``
    unknown 400 Ecs.0313, or too full for them 400 Ecs.0022 (server_groups.place).
    """
    job_id, server_ids, _repeat = _accept_once(conn, ident, spec, client_token, digest, driver)
    return job_id, server_ids


def _accept_once(conn: Connection, ident: Identity, spec: ServerSpec, client_token: str | None, digest: str,
                 driver: Any) -> tuple[str, list[str], bool]:
    """(job id, server ids, whether this repeats an earlier request under ``client_token``)."""
    if client_token is not None:
        earlier = idempotency.reserve(conn, ident.project_id, client_token, digest)
        if earlier is not None:
            return earlier[0], earlier[1], True
        job_id, server_ids = _accept_create(conn, ident, spec, driver)
        idempotency.record(conn, ident.project_id, client_token, job_id, server_ids)
        return job_id, server_ids, False
    return *_accept_create(conn, ident, spec, driver), False


@dataclass(frozen=True)
class NovaCreated:
    """What a Nova create answers: the servers, their reservation, and the password to show once."""

    job_id: str
    server_ids: list[str]
    reservation_id: str
    admin_pass: str | None


def accept_nova_create(conn: Connection, ident: Identity, spec: ServerSpec,
                       networks: str | tuple[nics.NovaNetwork, ...], client_token: str | None = None,
                       digest: str = "", driver: Any = None) -> NovaCreated:
    """The Nova create: :func:`accept_create` with Nova's networks (``nics.nova_nics``, which set the
    spec's VPC and NICs) and Nova's answer.

    ``spec.min_count`` .. ``spec.count`` servers are created, as many as the quotas and the host's
    memory allow (fewer than ``min_count``: 400 Ecs.0001, or Ecs.0319 for memory). When the request
    gives no way to log in (no ``adminPass``, no ``metadata.admin_pass``, no ``key_name``), a password
    is generated and injected, as Nova generates one. ``admin_pass`` is the server's password (given
    or generated), shown once: a repeat under the same ``client_token`` does not show it again.
    """
    vpc_id, found = nics.nova_nics(conn, ident.project_id, networks)     # Ecs.0010 / Ecs.0014
    spec = replace(spec, vpc_id=vpc_id, nics=found, no_network=networks == nics.NONE)
    if spec.admin_pass is None and spec.key_name is None and "admin_pass" not in spec.metadata:
        spec = replace(spec, admin_pass=generate_password())
    job_id, server_ids, repeat = _accept_once(conn, ident, spec, client_token, digest, driver)
    first = srv.load(conn, ident.project_id, server_ids[0])
    shown = None if repeat else (spec.admin_pass or spec.metadata.get("admin_pass"))
    return NovaCreated(job_id, server_ids, first["reservation_id"], shown)


_PASSWORD_CHARS = string.ascii_letters + string.digits + "!@$%^-_=+:,./?~#*"


def generate_password(length: int = 16) -> str:
    """A password that passes check_password on Linux and Windows alike."""
    while True:
        password = "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(length))
        try:
            check_password(password, None, False)
            check_password(password, None, True)
            return password
        except EcsError:
            continue


def _count_within_quota(conn: Connection, project_id: str, spec: ServerSpec, flavor: dict[str, Any]) -> int:
    """Nova's min_count .. max_count: the most servers (up to ``spec.count``) the project's quotas allow
    now, but never fewer than ``spec.min_count`` (which quotas.charge then refuses with Ecs.0001)."""
    assert spec.min_count is not None
    current = quotas.project_quotas(conn, project_id)
    fits = spec.count
    if current is not None:
        for resource, need in (("instances", 1), ("cores", flavor["vcpus"]), ("ram", flavor["ram"])):
            q = current[resource]
            if q["limit"] >= 0 and need > 0:
                fits = min(fits, max(0, q["limit"] - q["in_use"]) // need)
    return max(spec.min_count, fits)


# --- Nova block devices -----------------------------------------------------------------------------------

NOVA_VOLUME_TYPE = "SATA"      # the system disk type of a Nova create that names none
MAX_ROOT_SIZE = 1024
DATA_SIZES = (10, 32768)


@dataclass(frozen=True)
class BlockDevice:
    """One entry of a Nova create's ``block_device_mapping_v2`` (shape checked by the HTTP layer)."""

    source_type: str
    destination_type: str | None = None
    uuid: str | None = None
    volume_size: int | None = None
    volume_type: str | None = None
    boot_index: int | None = None


def nova_disks(image_ref: str | None, devices: tuple[BlockDevice, ...]
               ) -> tuple[str, int | None, str, tuple[DataVolume, ...]]:
    """(image id, system disk size or None, its volume type, data volumes) of a Nova create.

    The system disk is made from ``imageRef`` or from the one ``image`` device with ``boot_index`` 0
    (``volume_size``, ``volume_type``; a ``local`` destination is the image's own size); ``blank``
    volume devices are data disks. Volumes and snapshots cannot be booted from (ecsd has no such
    free disks), two images or none: 400 Ecs.0005.
    """
    image_id, size, volumetype = image_ref or None, None, NOVA_VOLUME_TYPE
    data: list[DataVolume] = []
    boot_seen = False
    for n, d in enumerate(devices):
        where = f"block_device_mapping_v2.{n}"
        if d.source_type == "image" and d.boot_index == 0:
            if boot_seen:
                raise invalid(f"{where}: only one device can have boot_index 0")
            boot_seen = True
            if d.uuid is None or (image_id is not None and d.uuid != image_id):
                raise invalid(f"{where}.uuid must name the image to boot (the same as imageRef, if given)")
            image_id = d.uuid
            if d.destination_type in (None, "volume"):
                size, volumetype = d.volume_size, d.volume_type or NOVA_VOLUME_TYPE
                if size is not None and not 1 <= size <= MAX_ROOT_SIZE:
                    raise invalid(f"{where}.volume_size must be 1 to {MAX_ROOT_SIZE} GB for a system disk")
            elif d.destination_type != "local":
                raise invalid(f"{where}.destination_type must be volume or local")
        elif d.source_type == "blank" and d.destination_type in (None, "volume") and d.boot_index in (None, -1):
            if d.volume_size is None or not DATA_SIZES[0] <= d.volume_size <= DATA_SIZES[1]:
                raise invalid(f"{where}.volume_size must be {DATA_SIZES[0]} to {DATA_SIZES[1]} GB for a data disk")
            data.append(DataVolume(d.volume_type or NOVA_VOLUME_TYPE, d.volume_size))
        else:
            raise invalid(f"{where}: ecsd boots from an image (source_type image, boot_index 0) and adds blank "
                          f"data volumes; source_type {d.source_type} with boot_index {d.boot_index} "
                          "is not supported")
    if image_id is None:
        raise invalid("imageRef or a block_device_mapping_v2 image with boot_index 0 is required")
    if not clock.is_uuid(image_id):
        raise invalid("imageRef must be an image UUID")
    return image_id, size, volumetype, tuple(data)


def update_server(conn: Connection, project_id: str, server_id: str, name: str | None,
                  description: str | None) -> dict[str, Any]:
    """v1 ``PUT /cloudservers/{id}`` and Nova ``PUT /servers/{id}`` (modifying_ecs_details.rst of both):
    name (Ecs.0914/0915) and description (Ecs.0041) checked, then ``srv.update_details`` (Ecs.0114,
    locked Ecs.0605, an operation in progress Ecs.0100). Returns the server row."""
    if name is not None:
        check_name(name)
    if description is not None:
        check_description(description)
    return srv.update_details(conn, project_id, server_id, name, description)


def _accept_create(conn: Connection, ident: Identity, spec: ServerSpec, driver: Any) -> tuple[str, list[str]]:
    check_name(spec.name, spec.count)
    check_description(spec.description)
    if spec.count < 1:
        raise invalid("count must be at least 1")
    if spec.count > MAX_COUNT:
        raise EcsError("Ecs.0913", f"at most {MAX_COUNT} ECSs can be created at once")
    if len(spec.data_volumes) > MAX_DATA_VOLUMES:
        raise EcsError("Ecs.0042", f"at most {MAX_DATA_VOLUMES} data disks can be attached")
    if spec.min_count is not None and not 1 <= spec.min_count <= spec.count:
        raise invalid("min_count must be at least 1 and at most max_count")
    if not spec.nics and not spec.no_network:
        raise invalid("nics must name at least one subnet")
    if spec.nics and spec.no_network:
        raise invalid("a server without a network cannot have NICs")
    if len(spec.nics) > MAX_NICS:
        raise EcsError("Ecs.0050", f"at most {MAX_NICS} NICs can be attached")
    for volumetype in (spec.volumetype, *(d.volumetype for d in spec.data_volumes)):
        if volumetype not in VOLUME_TYPES:
            raise EcsError("Ecs.0043", f"volumetype {volumetype} does not exist; "
                                       f"use one of {', '.join(VOLUME_TYPES)}")
    security_groups.check_requested(ident.project_id, spec.security_groups)                 # Ecs.0014
    image = check_boot_image(visible_image(conn, ident.project_id, spec.image_id), driver)  # Ecs.0031/0032/0007
    az = spec.availability_zone or DEFAULT_AZ
    if az not in AVAILABILITY_ZONES:
        raise invalid(f"availability_zone {az} does not exist")
    flavor = get_flavor(conn, spec.flavor_id)
    if flavor is None or flavor["disabled"]:
        raise EcsError("Ecs.0029")
    sale = status_in_az(flavor["extra_specs"], az)
    if sale == "abandon":
        raise EcsError("Ecs.0029", f"flavor {flavor['id']} is no longer offered in {az}")
    if sale not in SELLING:
        raise EcsError("Ecs.0319", f"flavor {flavor['id']} is {sale} in {az}")
    check_fits(image, flavor)                                                       # Ecs.0007
    size = spec.size or image["min_disk"]
    if size < image["min_disk"]:
        raise invalid(f"root_volume.size must be at least the image's min_disk ({image['min_disk']} GB)")
    public_key = None
    if spec.key_name:
        keypair = find_keypair(conn, ident.user_id, spec.key_name)
        if keypair is None:
            raise EcsError("Ecs.0314")
        public_key = keypair["public_key"]
    # metadata.admin_pass is the reserved key for the Windows administrator password: it is a
    # password, never stored as metadata (data_structure_for_creating_ecss.rst, Table 8).
    user_metadata = dict(spec.metadata)
    admin_pass = spec.admin_pass
    meta_pass = user_metadata.pop("admin_pass", None)
    if admin_pass is None:
        admin_pass = meta_pass
    for password in (spec.admin_pass, meta_pass):
        if password is not None:
            check_password(password, None, image["os_type"] == "Windows")
    if spec.user_data is not None:
        try:
            decode_user_data(spec.user_data)
        except EcsError:
            raise invalid("user_data must be base64-encoded, at most 32 KB before encoding") from None
    _fixed_ips(conn, ident.project_id, spec)
    fixed = {ip for _subnet, ip in spec.nics if ip is not None}
    taken = fixed | nics.taken_addresses(conn, ident.project_id) if len(fixed) < len(spec.nics) else fixed
    count = spec.count if spec.min_count is None else _count_within_quota(conn, ident.project_id, spec, flavor)
    # The host's memory for all `count` servers, or for as many as fit from Nova's min_count (400 Ecs.0319).
    count = capacity.admit(conn, flavor["ram"], count, spec.min_count)
    # The last check, and the first write: instances, cores and RAM of all `count` servers within the
    # project's quotas, atomically (400 Ecs.0001, nothing created); it also keeps the project's counters.
    quotas.charge(conn, ident.project_id, count, count * flavor["vcpus"], count * flavor["ram"])

    # At rest, guest secrets are sealed (domain/sealing.py): once here, shared by every server's job.
    sealed_pass, user_data = sealing.seal(admin_pass), sealing.seal(spec.user_data)
    now = clock.now()
    parent_id = clock.new_hex_id()
    reservation = "r-" + clock.new_hex_id()[:8]
    submit(conn, job_id=parent_id, project_id=ident.project_id, job_type=st.CREATE_SERVER, server_id=None,
           runnable=False)
    # User keys first: the system keys (and those that follow the image) cannot be overridden.
    spec_code = f"{flavor['id']}.{'win' if image['os_type'] == 'Windows' else 'linux'}"
    metadata = srv.metadata_from_image({**user_metadata, "charging_mode": "0", "vpc_id": spec.vpc_id,
                                        "EcmResStatus": "", "metering.resourcespeccode": spec_code,
                                        "metering.resourcetype": "1"}, image)
    server_ids = []
    for index in range(count):
        server_id = clock.new_uuid()
        job_id = clock.new_hex_id()
        name = spec.name if count == 1 else f"{spec.name}-{index + 1:04d}"
        addresses = ({spec.vpc_id: [nics.make_nic(server_id, n, subnet, ip, taken)
                                    for n, (subnet, ip) in enumerate(spec.nics)]} if spec.nics else {})
        conn.execute(servers.insert().values(
            id=server_id, project_id=ident.project_id, user_id=ident.user_id, name=name,
            description=spec.description, flavor_id=flavor["id"], image_id=image["id"], key_name=spec.key_name,
            vm_state=st.BUILDING, task_state=st.SCHEDULING, power_state=st.POWER_NOSTATE, job_id=job_id,
            metadata=_json(metadata), user_data=user_data, addresses=_json(addresses),
            availability_zone=az, reservation_id=reservation, launch_index=index, root_device_name="/dev/vda",
            firmware=image["hw_firmware_type"], created_at=now, updated_at=now))
        disks = [{"id": clock.new_uuid(), "size": size, "type": spec.volumetype, "boot_index": 0,
                  "device": "/dev/vda"}]
        for n, dv in enumerate(spec.data_volumes):
            disks.append({"id": clock.new_uuid(), "size": dv.size, "type": dv.volumetype, "boot_index": None,
                          "device": f"/dev/vd{chr(ord('b') + n)}"})
        for d in disks:
            conn.execute(volumes.insert().values(
                id=d["id"], project_id=ident.project_id, server_id=server_id,
                image_id=image["id"] if d["boot_index"] == 0 else None, size=d["size"], volume_type=d["type"],
                boot_index=d["boot_index"], device=d["device"], status="creating", created_at=now))
        actions.record_job(conn, ident, server_id, st.CREATE_SINGLE_SERVER, job_id)
        submit(conn, job_id=job_id, project_id=ident.project_id, job_type=st.CREATE_SINGLE_SERVER,
               server_id=server_id, parent_id=parent_id, params={
                   "disks": disks, "image": {k: image[k] for k in ("id", "disk_format", "min_disk", "properties")},
                   "public_key": public_key, "admin_pass": sealed_pass, "user_data": user_data,
                   "nics": [nics.driver_nic(a) for items in addresses.values() for a in items],
                   "flavor": {"vcpus": flavor["vcpus"], "ram": flavor["ram"]}})
        server_ids.append(server_id)
    server_groups.place(conn, ident.project_id, spec.group, server_ids)     # Ecs.0313 / Ecs.0022
    return parent_id, server_ids


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- steps ---------------------------------------------------------------------------------------------

async def create_disks_act(ctx: JobContext) -> None:
    image = ctx.params["image"]
    source = DiskSource(image["id"], image["disk_format"], image["min_disk"], image["properties"])
    for d in ctx.params["disks"]:
        code = "Ecs.0202" if d["boot_index"] == 0 else "Ecs.0203"
        await driver_call(ctx.driver.create_disk(d["id"], source if d["boot_index"] == 0 else None, d["size"]), code)


def create_disks_record(conn: Connection, ctx: JobContext) -> None:
    conn.execute(volumes.update().where(volumes.c.server_id == ctx.server_id).values(status="in-use"))
    srv.update_owned(conn, ctx.server_id, ctx.job_id, task_state=st.BLOCK_DEVICE_MAPPING)


async def inject_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.inject(ctx.params["disks"][0]["id"], injection(ctx.params)), "Ecs.0202")


async def attach_act(ctx: JobContext) -> None:
    for d in ctx.params["disks"]:
        await driver_call(ctx.driver.attach(ctx.server_id, d["id"], d["device"]), "Ecs.0205")
    flavor = ctx.params.get("flavor")          # jobs accepted before flavors reached the driver have none
    if flavor:
        await driver_call(ctx.driver.set_flavor(ctx.server_id, flavor["vcpus"], flavor["ram"]), "Ecs.0205")
    for nic in ctx.params.get("nics", ()):        # the same for NICs
        await driver_call(ctx.driver.plug_nic(ctx.server_id, nic["port"], nic["mac"], nic["addr"],
                                              nics.driver_network(ctx.project_id, nic["subnet"])), "Ecs.0205")


def attach_record(conn: Connection, ctx: JobContext) -> None:
    forwarded = getattr(ctx.driver, "forwarded_ssh", None)       # the local driver's user-mode networking
    address = forwarded(ctx.server_id) if forwarded else None
    if address:
        metadata = {**(srv.load_by_id(conn, ctx.server_id)["metadata"] or {}), "ecsd_ssh_forward": address}
        srv.update_owned(conn, ctx.server_id, ctx.job_id, task_state=st.SPAWNING, metadata=metadata)
        return
    srv.update_owned(conn, ctx.server_id, ctx.job_id, task_state=st.SPAWNING)


async def boot_act(ctx: JobContext) -> None:
    await driver_call(ctx.driver.start(ctx.server_id, ctx.params["disks"][0]["id"]), "Ecs.0204")


def boot_record(conn: Connection, ctx: JobContext) -> None:
    now = clock.now()
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, vm_state=st.ACTIVE, power_state=st.POWER_RUNNING,
                     launched_at=now)
    _scrub(conn, ctx)


def _scrub(conn: Connection, ctx: JobContext) -> None:
    scrub_secrets(conn, ctx.job_id, ctx.params)   # no password or user data kept once the job ends


def create_failed(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    # Disks whose creation never completed are in error (EVS shows them so); deleting the server removes them.
    conn.execute(volumes.update().where(and_(volumes.c.server_id == ctx.server_id, volumes.c.status == "creating"))
                 .values(status="error"))
    srv.fail_owned(conn, ctx.server_id, ctx.job_id, ctx.job_type, code, reason)
    _scrub(conn, ctx)


JOB_TYPES = [
    JobType(st.CREATE_SINGLE_SERVER, (
        Step("create_disks", create_disks_act, create_disks_record, "Ecs.0202"),
        Step("inject", inject_act, None, "Ecs.0202"),
        Step("attach", attach_act, attach_record, "Ecs.0205"),
        Step("boot", boot_act, boot_record, "Ecs.0204"),
    ), on_fail=create_failed),
]
