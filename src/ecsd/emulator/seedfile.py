"""Seed files: projects, users, images, key pairs and servers in given states, from JSON or YAML.

The format (docs/testing-with-ecsd.md has an example of every field)::

    projects:  [{name, domain?, description?, quotas?: {instances, cores, ram}}]
    users:     [{name, domain?, password, projects?: [names], access_key?: bool}]
    images:    [{name, id?, os_type?, platform?, os_version?, min_disk?, min_ram?, firmware?,
                 cloudinit?, status?, visibility?: public|private, project?, fault?: create_disk|inject|start}]
    keypairs:  [{name, user?, domain?, public_key?}]          # no public_key: one is generated
    servers:   [{name, project?, user?, domain?, image, flavor, status?: ACTIVE|SHUTOFF|ERROR,
                 key_name?, metadata?, count?, availability_zone?, root_volume_size?, description?}]

``domain`` defaults to the demo domain (``ecsd-demo``), ``project`` to the demo project (the region's
name) and ``user`` to the demo user, so that the smallest seed file is a list of servers.
Everything is applied in one transaction: all of it or, at the first problem, nothing (400 with
the entry that failed). Servers go through the create path's checks (image, flavor, quota, key
pair) and are then written in their final state, with no job left to run.

The CPU-heavy parts (password hashes, generated keys) are made by :func:`prepare` before the
transaction, off the event loop when called from the HTTP handler.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import orjson
import yaml
from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Connection

from ecsd.domain import access_keys, clock, identity, lifecycle, quotas
from ecsd.domain import keypairs as kp
from ecsd.domain import states as st
from ecsd.domain.errors import EcsError, invalid, invalid_model
from ecsd.domain.passwords import hash_password
from ecsd.domain.seed import image_row
from ecsd.drivers.base import FAULT_KEY
from ecsd.engine.engine import settle_unrun
from ecsd.store.schema import images, jobs, projects, servers, volumes

DEMO_DOMAIN = "ecsd-demo"
DEMO_USER = "demo"
MAX_BYTES = 4 * 1024 * 1024
_STRICT = ConfigDict(extra="forbid", strict=True)
# The seed's network: every seeded server gets one NIC on this subnet (tests/support.py uses the same).
SEED_VPC = "3b5a1e2c-8d4f-4e6a-9b7c-1d2e3f4a5b6c"
SEED_SUBNET = "7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f"


class _Name(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64)


class ProjectSeed(_Name):
    domain: str = DEMO_DOMAIN
    description: str = Field("", max_length=255)
    quotas: dict[Literal["instances", "cores", "ram"], int] = Field(default_factory=dict)


class UserSeed(_Name):
    domain: str = DEMO_DOMAIN
    password: str = Field(min_length=8, max_length=1024)
    projects: list[str] = Field(default_factory=list)
    access_key: bool = False


class ImageSeed(_Name):
    id: str | None = Field(None, min_length=36, max_length=36)
    os_type: Literal["Linux", "Windows", "Other"] = "Linux"
    platform: str = Field("Other", max_length=64)
    os_version: str = Field("Other", max_length=255)
    min_disk: int = Field(10, ge=1, le=1024)
    min_ram: int = Field(0, ge=0, le=1024 * 1024)
    firmware: Literal["bios", "uefi"] = "bios"
    cloudinit: bool = False
    status: Literal["active", "queued", "saving", "deleted", "killed"] = "active"
    visibility: Literal["public", "private"] = "public"
    project: str | None = None
    domain: str = DEMO_DOMAIN
    fault: Literal["create_disk", "inject", "start"] | None = None


class KeypairSeed(_Name):
    user: str = DEMO_USER
    domain: str = DEMO_DOMAIN
    public_key: str | None = Field(None, max_length=16384)


class ServerSeed(_Name):
    project: str | None = None
    user: str = DEMO_USER
    domain: str = DEMO_DOMAIN
    image: str
    flavor: str
    status: Literal["ACTIVE", "SHUTOFF", "ERROR"] = "ACTIVE"
    key_name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    count: int = Field(1, ge=1, le=500)
    availability_zone: str | None = None
    root_volume_size: int | None = Field(None, ge=1, le=1024)
    description: str = Field("", max_length=85)


class Seed(BaseModel):
    model_config = _STRICT
    projects: list[ProjectSeed] = Field(default_factory=list, max_length=1000)
    users: list[UserSeed] = Field(default_factory=list, max_length=1000)
    images: list[ImageSeed] = Field(default_factory=list, max_length=1000)
    keypairs: list[KeypairSeed] = Field(default_factory=list, max_length=1000)
    servers: list[ServerSeed] = Field(default_factory=list, max_length=1000)


# --- reading -------------------------------------------------------------------------------------------

def parse(raw: bytes, yaml_text: bool) -> Seed:
    """A seed document from JSON or YAML bytes; any problem is 400 Ecs.0005 naming the entry."""
    if len(raw) > MAX_BYTES:
        raise invalid(f"a seed document is at most {MAX_BYTES} bytes")
    try:
        data = yaml.safe_load(raw) if yaml_text else orjson.loads(raw)
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid(f"the seed document is not valid {'YAML' if yaml_text else 'JSON'}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise invalid("a seed document is a mapping of projects, users, images, keypairs and servers")
    try:
        return Seed.model_validate(data)
    except ValidationError as exc:
        raise invalid_model(exc, "seed") from None


def load_file(path: str) -> Seed:
    """A seed file for ``ecsd serve --seed`` (YAML when its name ends in .yaml / .yml)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SystemExit(f"cannot read the seed file {path}: {exc.strerror}") from None
    try:
        return parse(raw, os.path.splitext(path)[1].lower() in (".yaml", ".yml"))
    except EcsError as exc:
        raise SystemExit(f"seed file {path}: {exc.detail}") from None


# --- the CPU-heavy part, before the transaction -------------------------------------------------------

class PreparedSeed:
    def __init__(self, seed: Seed) -> None:
        self.seed = seed
        self.password_hashes = [hash_password(u.password) for u in seed.users]
        self.keys: list[tuple[str, str | None, str]] = []       # (public key, private key or None, fingerprint)
        for k in seed.keypairs:
            kp.check_name(k.name)
            if k.public_key is not None:
                public, fingerprint = kp.parse_public_key(k.public_key, "ssh")
                self.keys.append((public, None, fingerprint))
            else:
                self.keys.append(kp.generate("ssh", k.name))


def prepare(raw: bytes, yaml_text: bool) -> PreparedSeed:
    """Parse and prepare in one call: what the HTTP handler runs off the event loop (a 4 MiB YAML
    document, scrypt hashes and RSA keys are all CPU work)."""
    return PreparedSeed(parse(raw, yaml_text))


# --- applying ------------------------------------------------------------------------------------------

def _where(kind: str, index: int, name: str, err: EcsError) -> EcsError:
    detail = f"{kind}[{index}] ({name}): {err.detail or err.message}"
    return EcsError(err.code, detail, status=err.status)


def _domain(conn: Connection, name: str, created: dict[str, str]) -> str:
    found = identity.find_domain(conn, name)
    if found is not None:
        return found["id"]
    domain_id = identity.create_domain(conn, name)
    created[name] = domain_id
    return domain_id


def _user_id(conn: Connection, domain: str, name: str) -> dict:
    found = identity.find_domain(conn, domain)
    user = identity.find_user(conn, found["id"], name) if found else None
    if user is None:
        raise invalid(f"no user {name!r} in domain {domain!r}")
    return user


def _project(conn: Connection, domain: str, name: str | None) -> dict:
    found = identity.find_domain(conn, domain)
    if found is None:
        raise invalid(f"no domain {domain!r}")
    if name is None:      # the domain's first project: the demo project in the demo domain
        row = conn.execute(select(projects).where(projects.c.domain_id == found["id"])
                           .order_by(projects.c.created_at)).first()
        if row is None:
            raise invalid(f"domain {domain!r} has no project")
        return dict(row._mapping)
    project = identity.find_project(conn, found["id"], name)
    if project is None:
        raise invalid(f"no project {name!r} in domain {domain!r}")
    return project


def apply(conn: Connection, seed: Seed | PreparedSeed, box: Fernet | None) -> dict[str, Any]:
    """Write the seed in the caller's transaction. Returns what was made, with the ids (and the
    secrets that exist only now: access keys' SKs, generated private keys)."""
    prepared = seed if isinstance(seed, PreparedSeed) else PreparedSeed(seed)
    doc = prepared.seed
    out: dict[str, Any] = {"domains": [], "projects": [], "users": [], "images": [], "keypairs": [],
                           "servers": []}
    new_domains: dict[str, str] = {}
    for i, p in enumerate(doc.projects):
        try:
            domain_id = _domain(conn, p.domain, new_domains)
            if identity.find_project(conn, domain_id, p.name) is not None:
                raise EcsError("Common.0409", "a project of that name exists in the domain")
            project_id = identity.create_project(conn, domain_id, p.name, p.description)
            if p.quotas:
                quotas.set_quotas(conn, project_id, dict(p.quotas))
        except ValueError as exc:
            raise invalid(f"projects[{i}] ({p.name}): {exc}") from None
        except EcsError as exc:
            raise _where("projects", i, p.name, exc) from None
        out["projects"].append({"name": p.name, "id": project_id, "domain": p.domain})
    for i, u in enumerate(doc.users):
        try:
            domain_id = _domain(conn, u.domain, new_domains)
            if identity.find_user(conn, domain_id, u.name) is not None:
                raise EcsError("Common.0409", "a user of that name exists in the domain")
            user_id = identity.create_user(conn, domain_id, u.name, None, password_hash=prepared.password_hashes[i])
            for name in u.projects:
                identity.add_member(conn, user_id, _project(conn, u.domain, name)["id"])
            made: dict[str, Any] = {"name": u.name, "id": user_id, "domain": u.domain}
            if u.access_key:
                if box is None:
                    raise invalid("access keys need the secret key")
                made["ak"], made["sk"] = access_keys.create(conn, box, user_id, "seed file")
        except EcsError as exc:
            raise _where("users", i, u.name, exc) from None
        out["users"].append(made)
    out["domains"] = [{"name": n, "id": d} for n, d in new_domains.items()]
    for i, im in enumerate(doc.images):
        try:
            out["images"].append(_image(conn, im))
        except EcsError as exc:
            raise _where("images", i, im.name, exc) from None
    for i, k in enumerate(doc.keypairs):
        public, private, fingerprint = prepared.keys[i]
        try:
            user = _user_id(conn, k.domain, k.user)
            kp.add_keypair(conn, user["id"], k.name, "ssh", public, fingerprint)
        except EcsError as exc:
            raise _where("keypairs", i, k.name, exc) from None
        made = {"name": k.name, "user_id": user["id"], "fingerprint": fingerprint}
        if private is not None:
            made["private_key"] = private
        out["keypairs"].append(made)
    for i, s in enumerate(doc.servers):
        try:
            out["servers"].extend(_servers(conn, s))
        except EcsError as exc:
            raise _where("servers", i, s.name, exc) from None
    return out


def _image(conn: Connection, im: ImageSeed) -> dict:
    owner = None
    if im.visibility == "private":
        owner = _project(conn, im.domain, im.project)["id"]
    elif im.project is not None:
        raise invalid("a public image has no project")
    extra = {FAULT_KEY: im.fault} if im.fault else {}
    row = image_row(im.name, im.os_type, im.platform, im.os_version, im.min_disk, im.min_ram, im.firmware,
                    im.cloudinit, im.status, "FusionCompute", extra, image=im.id or clock.new_uuid(),
                    visibility=im.visibility, owner=owner)
    if conn.execute(select(images.c.id).where(images.c.id == row["id"])).first() is not None:
        raise EcsError("Common.0409", f"an image with id {row['id']} exists")
    conn.execute(images.insert().values(**row))
    return {"name": im.name, "id": row["id"]}


_FINAL = {"ACTIVE": (st.ACTIVE, st.POWER_RUNNING), "SHUTOFF": (st.STOPPED, st.POWER_SHUTDOWN),
          "ERROR": (st.ERROR, st.POWER_NOSTATE)}


def _image_id(conn: Connection, project_id: str, ref: str) -> str:
    """An image by id, or by name among those the project sees (a unique name)."""
    rows = conn.execute(select(images.c.id).where(images.c.name == ref).where(
        (images.c.visibility == "public") | (images.c.owner == project_id))).all()
    if len(rows) == 1:
        return rows[0][0]
    if len(rows) > 1:
        raise invalid(f"several images are named {ref!r}: give the id")
    return ref


def _servers(conn: Connection, s: ServerSeed) -> list[dict]:
    project = _project(conn, s.domain, s.project)
    user = _user_id(conn, s.domain, s.user)
    if not identity.is_member(conn, user["id"], project["id"]):
        raise invalid(f"user {s.user!r} is not a member of project {project['name']!r}")
    ident = identity.Identity(user["id"], user["name"], project["domain_id"], s.domain, project["id"],
                              project["name"], 0.0, 0.0)
    spec = lifecycle.ServerSpec(
        name=s.name, image_id=_image_id(conn, project["id"], s.image), flavor_id=s.flavor, vpc_id=SEED_VPC,
        nics=((SEED_SUBNET, None),), volumetype="SSD", size=s.root_volume_size, key_name=s.key_name,
        count=s.count, availability_zone=s.availability_zone, metadata=dict(s.metadata),
        description=s.description)
    # The create path's checks and rows (driver None: every image is bootable, as with the simulated
    # driver, the only one seed files are for).
    parent_id, server_ids = lifecycle._accept_create(conn, ident, spec, None)
    vm_state, power = _FINAL[s.status]
    now = clock.now()
    conn.execute(volumes.update().where(volumes.c.server_id.in_(server_ids)).values(status="in-use"))
    conn.execute(servers.update().where(servers.c.id.in_(server_ids)).values(
        vm_state=vm_state, task_state=None, power_state=power, job_id=None, launched_at=now, updated_at=now))
    job_ids = [r[0] for r in conn.execute(select(jobs.c.job_id).where(jobs.c.parent_id == parent_id))]
    settle_unrun(conn, [parent_id, *job_ids])
    names = {r[0]: r[1] for r in conn.execute(select(servers.c.id, servers.c.name)
                                              .where(servers.c.id.in_(server_ids)))}
    return [{"name": names[sid], "id": sid, "status": s.status, "project_id": project["id"]} for sid in server_ids]
