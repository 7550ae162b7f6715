"""Crash harness: change-OS load (or a mix of change OS, resize, attach and detach) on real processes
that are killed with SIGKILL at random moments.

One node (SQLite): a single `ecsd serve` with its in-process worker. Scale-out (PostgreSQL): one
`ecsd serve --no-worker` and two `ecsd worker` processes; any of them is killed, and a killed worker
comes back under a new name, so that its jobs must be taken over by lease expiry. Afterwards every
job must end and the invariants of ``ecsd.domain.invariants`` must hold. Used by tests/test_crash.py
(bounded, in CI) and bench/soak.py (minutes).
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field

import httpx

from ecsd.domain import invariants
from ecsd.store.db import Store, sqlite_url
from tests import support as s
from tests.procs import Client, Proc, free_port, read_json

IMAGES = (s.UBUNTU, s.DEBIAN, s.CENTOS)
FLAVORS = ("s3.small.1", "s3.medium.2")
# What a mixed load may be refused with besides Ecs.0100 (busy): a disk attached elsewhere or in a job,
# a disk not attached to that server, the flavor it already has. Each is the gate at work, not a fault.
# (decisions.md, "Disks" and "Resize"): in a job (0101, 0102, 0103), already here (0057), not here (0111).
MIXED_REFUSALS = {"Ecs.0009", "Ecs.0057", "Ecs.0100", "Ecs.0101", "Ecs.0102", "Ecs.0103", "Ecs.0104", "Ecs.0111"}


def _mixed_request(rng: random.Random, ids: list[str], disks: list[str]) -> tuple[str, str, dict | None]:
    """One random operation: change OS (40%), resize (20%), attach or detach a data disk (20% each)."""
    server = rng.choice(ids)
    roll = rng.random()
    if roll < 0.4:
        return "POST", f"/v1/{{pid}}/cloudservers/{server}/changeos", {
            "os-change": {"imageid": rng.choice(IMAGES), "mode": "withStopServer"}}
    if roll < 0.6:
        return "POST", f"/v1/{{pid}}/cloudservers/{server}/resize", {
            "resize": {"flavorRef": rng.choice(FLAVORS), "mode": "withStopServer"}}
    disk = rng.choice(disks)
    if roll < 0.8:
        return "POST", f"/v1/{{pid}}/cloudservers/{server}/attachvolume", {"volumeAttachment": {"volumeId": disk}}
    return "DELETE", f"/v1/{{pid}}/cloudservers/{server}/detachvolume/{disk}", None


@dataclass
class Outcome:
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    unreachable: int = 0
    kills: int = 0
    violations: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Cluster:
    def __init__(self, data_dir: str, database_url: str | None, workers: int, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.env = {**env, "ECSD_SIM_DISK_DIR": os.path.join(data_dir, "disks"),
                    "ECSD_SIM_OPLOG": os.path.join(data_dir, "oplog.jsonl")}
        self.port = free_port()
        self.log = os.path.join(data_dir, "processes.log")
        self.db_args = ["--database-url", database_url] if database_url else []
        self.n_workers = workers
        self.generation = 0
        self.api = self._start_api()
        self.workers = [self._start_worker(i) for i in range(workers)]

    def _start_api(self) -> Proc:
        extra = self.db_args + (["--no-worker"] if self.n_workers else [])
        return Proc.serve(self.data_dir, self.env, self.port, extra, self.log)

    def _start_worker(self, slot: int) -> Proc:
        self.generation += 1
        return Proc.worker(self.data_dir, self.env, self.db_args + ["--name", f"w{slot}-{self.generation}"],
                           self.log)

    def kill_one(self, rng: random.Random) -> None:
        slot = rng.randrange(1 + self.n_workers)
        if slot == 0:
            self.api.kill()
            time.sleep(rng.uniform(0.05, 0.4))
            self.api = self._start_api()
        else:
            self.workers[slot - 1].kill()
            time.sleep(rng.uniform(0.05, 0.4))
            self.workers[slot - 1] = self._start_worker(slot - 1)

    def stop(self) -> None:
        for proc in [self.api, *self.workers]:
            proc.stop()


def run(data_dir: str, *, database_url: str | None = None, workers: int = 0, servers: int = 30,
        seconds: float = 15.0, target_jobs: int = 300, kill_every: tuple[float, float] = (0.3, 1.2),
        seed: int = 1, sim_delay: float = 0.03, lease: float = 1.5, settle: float = 90.0,
        min_jobs: int = 60, extra: float = 30.0, mixed: bool = False, min_kills: int = 3) -> Outcome:
    """Drive change-OS load while killing processes; return what was accepted and what was violated.

    ``mixed``: each server is created with a data disk, and the load mixes change OS with resize and
    with attaching and detaching those disks between random servers (:func:`_mixed_request`).

    The kills stop after ``seconds`` (once there were ``min_kills``, within ``extra`` seconds more); if fewer than ``min_jobs`` were accepted by then (a loaded
    machine restarts processes slowly), the load goes on without kills for up to ``extra`` seconds
    more, so that the invariants are checked over enough jobs, many of which met a kill."""
    rng = random.Random(seed)
    env = {"ECSD_SIM_DELAY": str(sim_delay), "ECSD_LEASE_SECONDS": str(lease)}
    if database_url:
        env["ECSD_DATABASE_URL"] = database_url
    pace = 4 * seconds / max(target_jobs, 1) / 2   # four loaders reach the target around half-time
    cluster = Cluster(data_dir, database_url, workers, env)
    outcome = Outcome()
    started = time.monotonic()
    try:
        creds = read_json(os.path.join(data_dir, "credentials.json"))
        setup = Client(cluster.api.base, creds, timeout=60)
        ids = setup.create(servers, data_disk=mixed)
        disks = setup.data_disks(ids) if mixed else []
        stop_load = threading.Event()

        def load() -> None:
            client: Client | None = None
            while not stop_load.is_set() and len(outcome.accepted) < target_jobs:
                try:
                    client = client or Client(cluster.api.base, creds, timeout=3)
                    if mixed:
                        method, path, body = _mixed_request(rng, ids, disks)
                        r = client.request(method, path, body)
                    else:
                        body = {"os-change": {"imageid": rng.choice(IMAGES), "mode": "withStopServer"}}
                        r = client.post(f"/v1/{{pid}}/cloudservers/{rng.choice(ids)}/changeos", body)
                except (httpx.HTTPError, AssertionError):
                    outcome.unreachable += 1
                    client = None
                    time.sleep(0.02)
                    continue
                code = r.json().get("error", {}).get("code") if r.status_code >= 400 else None
                if r.status_code == 200:
                    outcome.accepted.append(r.json()["job_id"])
                    time.sleep(pace)   # spread the accepted jobs over the whole run
                elif r.status_code == 400 and (code == "Ecs.0100" or (mixed and code in MIXED_REFUSALS)):
                    outcome.refused += 1   # that server is busy (or the disk is elsewhere): the gate at work
                else:
                    raise AssertionError(f"unexpected answer {r.status_code}: {r.text}")

        loaders = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for t in loaders:
            t.start()
        deadline = time.monotonic() + seconds
        last_chance = deadline + extra        # a loaded machine restarts slowly: kill at least min_kills times
        while time.monotonic() < deadline or (outcome.kills < min_kills and time.monotonic() < last_chance):
            time.sleep(rng.uniform(*kill_every))
            cluster.kill_one(rng)
            outcome.kills += 1
        enough = time.monotonic() + extra
        while len(outcome.accepted) < min_jobs and time.monotonic() < enough:
            time.sleep(0.05)
        stop_load.set()
        for t in loaders:
            t.join(timeout=10)

        # Let every accepted job finish, then stop gracefully and check the invariants.
        client = Client(cluster.api.base, creds, timeout=10)
        end = time.monotonic() + settle
        pending = list(outcome.accepted)
        while pending and time.monotonic() < end:
            job = client.get(f"/v1/{{pid}}/jobs/{pending[-1]}").json()
            if job.get("status") in ("SUCCESS", "FAIL"):
                outcome.statuses[job["status"]] = outcome.statuses.get(job["status"], 0) + 1
                pending.pop()
            else:
                time.sleep(0.1)
    finally:
        cluster.stop()
    outcome.seconds = time.monotonic() - started
    store = Store(database_url or sqlite_url(data_dir))
    try:
        with store.tx() as conn:
            outcome.violations = invariants.check_all(
                conn, outcome.accepted, disk_dir=cluster.env["ECSD_SIM_DISK_DIR"], oplog=cluster.env["ECSD_SIM_OPLOG"])
    finally:
        store.close()
    return outcome
