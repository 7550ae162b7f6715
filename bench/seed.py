"""Seed big data sets straight into an ecsd database, fast (SQLAlchemy Core bulk inserts).

    .venv/bin/python bench/seed.py --data-dir DIR --servers 100000          # SQLite in DIR
    .venv/bin/python bench/seed.py --data-dir DIR --servers 1000 --jobs 1000000
    .venv/bin/python bench/seed.py --data-dir DIR --database-url postgresql://... --servers 50000

DIR must have been made by a first ``ecsd serve`` (migrations, demo tenant, ``credentials.json``);
the server must be stopped while seeding. Rows carry the same column values the application writes:

* a server as ``lifecycle.accept_create`` inserts it, after its create job finished and it was stopped
  (``vm_state=stopped``, ``power_state=4``, no task, no job), with its system disk (``boot_index=0``,
  ``/dev/vda``, ``in-use``, created from the server's image);
* a change-OS job as ``engine.submit`` inserts it for ``changeos.accept`` (same ``params``), either
  finished (SUCCESS, secrets scrubbed, as the engine leaves it) or just submitted (INIT, with the
  server taken by the gate as ``srv.claim`` does).

Each batch of ~5,000 rows is one executemany in one transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from sqlalchemy import bindparam, create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine

from ecsd.domain.seed import image_id
from ecsd.store.db import normalise_url, sqlite_url
from ecsd.store.schema import flavors, images, jobs, projects, servers, volumes

BATCH = 5000
UBUNTU = image_id("Standard_Ubuntu_22.04_latest")
DEBIAN = image_id("Standard_Debian_12_latest")
FLAVOR = "s3.small.1"
VPC = "3b5a1e2c-8d4f-4e6a-9b7c-1d2e3f4a5b6c"
SUBNET = "7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f"
AZ = "eu-de-01"
VOLUME_TYPE = "SSD"
# What change OS sets the server to while the job runs (states.REBUILDING), and the job type.
REBUILDING = "rebuilding"
CHANGE_OS = "changeOS"
CHANGE_OS_STEPS = 6
BENCH_PASSWORD = "Bench-2024-pass"   # passes check_password (3 classes, no "root")


def credentials(data_dir: str) -> dict:
    with open(os.path.join(data_dir, "credentials.json")) as fh:
        return json.load(fh)


def open_engine(data_dir: str, database_url: str | None = None, *, bulk: bool = True) -> Engine:
    """An engine on the app's database.

    ``bulk`` (SQLite): made fast for a one-off load while no server runs (no journal, no fsync);
    :func:`close` puts the file back in WAL mode. Without ``bulk``, the app's own settings (WAL,
    synchronous=NORMAL), safe beside a running server.
    """
    url = normalise_url(database_url) if database_url else sqlite_url(data_dir)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=2)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        if bulk:
            cur.execute("PRAGMA journal_mode=OFF")     # a seed that fails is simply made again
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-262144")   # 256 MB
        else:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def close(engine: Engine, wal: bool = True) -> None:
    """Dispose of a seeding engine; a bulk-loaded SQLite file is put back in WAL mode (the app's)."""
    if wal and engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    engine.dispose()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _chunks(rows: Iterable[dict], size: int = BATCH) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def bulk_insert(engine: Engine, table, rows: Iterable[dict], *, raw: bool = False) -> int:
    """executemany in batches of BATCH rows, one transaction per batch.

    ``raw``: hand the rows to the DBAPI cursor's executemany as they are (the INSERT compiled once
    by SQLAlchemy Core for the dialect, no per-row bind processing), about twice as fast; the rows
    must then hold every column, with values the driver takes as they are.
    """
    n = 0
    if raw:
        compiled = table.insert().compile(dialect=engine.dialect,
                                          column_keys=[c.key for c in table.columns])
        sql = str(compiled)
        order = compiled.positiontup     # None for named paramstyles (psycopg): rows go as dicts
    for chunk in _chunks(rows):
        with engine.begin() as conn:
            if raw:
                params = [tuple(r[k] for k in order) for r in chunk] if order else chunk
                conn.exec_driver_sql(sql, params)
            else:
                conn.execute(table.insert(), chunk)
        n += len(chunk)
    return n


def load_image(conn: Connection, image: str) -> dict[str, Any]:
    row = conn.execute(select(images).where(images.c.id == image)).one()
    out = dict(row._mapping)
    out["properties"] = orjson.loads(out["properties"])
    return out


def _address(server_id: str, subnet: str) -> dict[str, Any]:
    """The NIC ``lifecycle._address`` gives a server without a fixed IP."""
    raw = uuid.UUID(server_id).bytes
    return {"version": "4", "addr": f"192.168.{raw[0]}.{2 + raw[1] % 252}", "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:" + ":".join(f"{b:02x}" for b in raw[2:5]),
            "OS-EXT-IPS:port_id": str(uuid.UUID(bytes=bytes(reversed(raw)), version=4)), "subnet_id": subnet}


def _server_metadata(image: dict[str, Any]) -> dict[str, Any]:
    """``accept_create``'s metadata: the system keys, then those that follow the image."""
    meta = {"charging_mode": "0", "vpc_id": VPC, "EcmResStatus": "",
            "metering.resourcespeccode": f"{FLAVOR}.{'win' if image['os_type'] == 'Windows' else 'linux'}",
            "metering.resourcetype": "1"}
    meta.update({"image_name": image["name"], "os_type": image["os_type"], "os_bit": image["os_bit"],
                 "metering.image_id": image["id"], "metering.imagetype": image["imagetype"],
                 "virtual_env_type": image["virtual_env_type"]})
    return meta


def seed_servers(engine: Engine, creds: dict, count: int, *, image: str = UBUNTU, prefix: str = "bench",
                 start: float | None = None) -> list[tuple[str, str]]:
    """``count`` stopped servers, each with its system disk. Returns [(server id, volume id)] oldest first.

    ``created_at`` grows by 10 ms per server (distinct, so list order is fully determined).
    """
    with engine.connect() as conn:
        img = load_image(conn, image)
    metadata = _json(_server_metadata(img))
    base = (start if start is not None else time.time() - count * 0.01 - 60.0)
    pairs = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(count)]
    project_id, user_id = creds["project_id"], creds["user_id"]

    def server_rows() -> Iterator[dict]:
        for i, (sid, _vid) in enumerate(pairs):
            t = base + i * 0.01
            yield {"id": sid, "project_id": project_id, "user_id": user_id, "name": f"{prefix}-{i:07d}",
                   "description": "", "flavor_id": FLAVOR, "image_id": img["id"], "key_name": None,
                   "vm_state": "stopped", "task_state": None, "power_state": 4, "locked": False, "job_id": None,
                   "failed_op": None, "fault": None, "metadata": metadata, "user_data": None,
                   "addresses": _json({VPC: [_address(sid, SUBNET)]}), "availability_zone": AZ,
                   "reservation_id": "r-" + uuid.uuid4().hex[:8], "launch_index": 0,
                   "root_device_name": "/dev/vda", "firmware": img["hw_firmware_type"], "created_at": t,
                   "updated_at": t + 5.0, "launched_at": t + 2.0, "deleted": False}

    def volume_rows() -> Iterator[dict]:
        for i, (sid, vid) in enumerate(pairs):
            yield {"id": vid, "project_id": project_id, "server_id": sid, "image_id": img["id"],
                   "size": img["min_disk"], "volume_type": VOLUME_TYPE, "boot_index": 0, "device": "/dev/vda",
                   "status": "in-use", "created_at": base + i * 0.01}

    bulk_insert(engine, servers, server_rows())
    bulk_insert(engine, volumes, volume_rows())
    refresh_derived(engine)
    return pairs


def refresh_derived(engine: Engine) -> None:
    """Recompute what the application keeps beside the rows it inserts (as its create/delete would):
    the per-project count of live servers and their vCPUs and RAM, where the schema has them."""
    if "server_count" in projects.c:
        live = (select(func.count()).select_from(servers)
                .where(servers.c.project_id == projects.c.id, servers.c.deleted.is_(False)).scalar_subquery())
        with engine.begin() as conn:
            values = {"server_count": live}
            if "list_gen" in projects.c:
                values["list_gen"] = projects.c.list_gen + 1
            if "cores_used" in projects.c:          # vCPUs and RAM of the live servers (quotas, 0006)
                with_flavor = servers.join(flavors, flavors.c.id == servers.c.flavor_id)

                def total(col):
                    return (select(func.coalesce(func.sum(col), 0)).select_from(with_flavor)
                            .where(servers.c.project_id == projects.c.id, servers.c.deleted.is_(False))
                            .scalar_subquery())

                values.update(cores_used=total(flavors.c.vcpus), ram_used=total(flavors.c.ram))
            conn.execute(projects.update().values(**values))


def verify(engine: Engine, limit: int = 5) -> list[str]:
    """The application's own consistency checks (``ecsd.domain.invariants.check_all``) on the seeded
    database: the seed must look like data the application wrote. Returns up to ``limit`` violations."""
    try:
        from ecsd.domain.invariants import check_all
    except ImportError:
        return []
    with engine.connect() as conn:
        return check_all(conn)[:limit]


def _image_param(img: dict[str, Any]) -> dict[str, Any]:
    return {k: img[k] for k in ("id", "name", "os_type", "os_bit", "imagetype", "platform", "disk_format",
                                "min_disk", "virtual_env_type", "properties")}


def changeos_params(img: dict[str, Any], old_volume: str, size: int, admin_pass: str | None) -> dict[str, Any]:
    """The ``params`` ``changeos.accept`` stores for a stopped server (no key pair, no user data)."""
    return {"need_stop": False, "old_volume": old_volume, "new_volume": str(uuid.uuid4()),
            "size": max(size, img["min_disk"]), "volume_type": VOLUME_TYPE, "device": "/dev/vda",
            "image": _image_param(img), "key_name": None, "public_key": None, "admin_pass": admin_pass,
            "user_data": None, "byol": False, "encrypted": False, "cmk_id": None}


# A finished change OS's step events as the engine appends them (engine.py: _event), times made up.
_EVENTS = "".join(f'{{"step":"{name}","start":T0,"end":T0}},' for name in
                  ("stop", "create_disk", "inject", "swap_disk", "delete_old_disk", "start"))


def seed_finished_jobs(engine: Engine, creds: dict, pairs: list[tuple[str, str]], count: int, *,
                       image: str = DEBIAN) -> list[str]:
    """``count`` finished (SUCCESS) change-OS jobs to ``image``, spread over the servers ``pairs``
    (which must run ``image`` already: their last change installed it). Returns the job ids.

    Each server's jobs form a chain as the engine leaves it: a job's old disk is the previous job's
    new disk, and the last job's new disk is the server's system disk (old disks are deleted).
    Job ids are random like the application's, inserted in sorted order (a seeding shortcut: the
    primary-key index is then appended to instead of split at random; lookups are the same).
    """
    with engine.connect() as conn:
        img = load_image(conn, image)
    project_id = creds["project_id"]
    ids = sorted(uuid.uuid4().hex for _ in range(count))
    base = time.time() - count * 0.001 - 3600.0
    # The image part of params is the same for every job: encode it once, splice the rest per row.
    image_json = _json(_image_param(img))
    size = max(img["min_disk"], 10)
    n_servers = len(pairs)
    previous: list[str | None] = [None] * n_servers    # each server's last new disk so far

    def rows() -> Iterator[dict]:
        for i, job_id in enumerate(ids):
            k = i % n_servers
            sid, current = pairs[k]
            old = previous[k] or str(uuid.uuid4())
            new = current if i + n_servers >= count else str(uuid.uuid4())
            previous[k] = new
            t = base + i * 0.001
            params = (f'{{"need_stop":false,"old_volume":"{old}","new_volume":"{new}","size":{size},'
                      f'"volume_type":"{VOLUME_TYPE}","device":"/dev/vda","image":{image_json},"key_name":null,'
                      '"public_key":null,"admin_pass":null,"user_data":null,"byol":false,"encrypted":false,'
                      '"cmk_id":null}')
            yield {"job_id": job_id, "project_id": project_id, "parent_id": None, "job_type": CHANGE_OS,
                   "runnable": True, "server_id": sid, "status": "SUCCESS", "params": params,
                   "step": CHANGE_OS_STEPS, "owner": None, "lease_until": None, "attempts": 1,
                   "error_code": None, "fail_reason": None, "created_at": t, "begin_time": t,
                   "end_time": t + 6.5, "events": _EVENTS.replace("T0", f"{t:.3f}")}

    bulk_insert(engine, jobs, rows(), raw=True)
    return ids


def submit_changeos(engine: Engine, creds: dict, pairs: list[tuple[str, str]], *, image: str = DEBIAN,
                    admin_pass: str | None = BENCH_PASSWORD) -> tuple[list[str], float]:
    """Submit one change-OS job per server in ONE transaction, as ``changeos.accept`` would for each:
    take the server (task_state=rebuilding, job_id) and insert the job in INIT.

    Returns (job ids, the time.time() at which the transaction committed).
    """
    with engine.connect() as conn:
        img = load_image(conn, image)
    project_id = creds["project_id"]
    now = time.time()
    job_ids = [uuid.uuid4().hex for _ in pairs]
    claim = (servers.update().where(servers.c.id == bindparam("b_id"))
             .values(task_state=REBUILDING, job_id=bindparam("b_job"), updated_at=now))
    job_rows = [{"job_id": job_id, "project_id": project_id, "parent_id": None, "job_type": CHANGE_OS,
                 "runnable": True, "server_id": sid, "status": "INIT",
                 "params": _json(changeos_params(img, vid, img["min_disk"], admin_pass)), "step": 0,
                 "attempts": 0, "created_at": now, "begin_time": now}
                for job_id, (sid, vid) in zip(job_ids, pairs, strict=True)]
    with engine.begin() as conn:
        for chunk in _chunks([{"b_id": sid, "b_job": job_id} for job_id, (sid, _v) in zip(job_ids, pairs)]):
            conn.execute(claim, chunk)
        for chunk in _chunks(job_rows):
            conn.execute(jobs.insert(), chunk)
    return job_ids, time.time()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="made by a first `ecsd serve` (credentials.json)")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--servers", type=int, default=0, help="stopped servers with their system disks")
    ap.add_argument("--jobs", type=int, default=0, help="finished change-OS jobs over those servers")
    args = ap.parse_args()
    creds = credentials(args.data_dir)
    engine = open_engine(args.data_dir, args.database_url)
    try:
        t = time.perf_counter()
        image = DEBIAN if args.jobs else UBUNTU      # the image the servers' last change OS installed
        pairs = seed_servers(engine, creds, args.servers, image=image) if args.servers else []
        print(f"{len(pairs)} servers in {time.perf_counter() - t:.1f} s")
        if args.jobs:
            if not pairs:
                sys.exit("--jobs needs --servers")
            t = time.perf_counter()
            seed_finished_jobs(engine, creds, pairs, args.jobs)
            print(f"{args.jobs} jobs in {time.perf_counter() - t:.1f} s")
        problems = verify(engine)
        if problems:
            sys.exit("the seeded data breaks the application's invariants:\n  " + "\n  ".join(problems))
    finally:
        close(engine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
