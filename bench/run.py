"""The benchmark suite of "Fast at scale": real processes, real HTTP load (wrk + Lua), one command.

    .venv/bin/python bench/run.py                  # the full suite (~5 min on 2 cores), writes docs/benchmarks.md
    .venv/bin/python bench/run.py --quick          # smoke test: small data sets, short runs (prints only)
    .venv/bin/python bench/run.py --only 1,2       # some scenarios (prints only, unless --doc)
    .venv/bin/python bench/run.py --postgres       # also scenario 1 on PostgreSQL (127.0.0.1:5432, database test)

Scenarios (one `ecsd serve` process, SQLite unless stated, 32 connections, token auth):
  1  change-OS acceptance on distinct stopped servers (`--no-worker`), vs the same process's /healthz
  2  job status with 1,000,000 vs 1,000 jobs stored
  3  job engine: 10,000 change-OS jobs in flight in one `ecsd worker` (1 s per step); jobs/s at 0 s per step
  4  listing 100,000 servers, 100 per page: first, middle and last page
  5  start-up time with 100,000 servers; resident memory under scenario 1

Load goes only to 127.0.0.1. Every run is bounded (wrk -d, timeouts, and an alarm on the whole
suite); every process started here is ended by its PID (SIGTERM, then SIGKILL); temporary data
directories (and the PostgreSQL schema) are removed. The server runs on core 0 and wrk (and this
script) on core 1 when there are two cores and `taskset` (else sched_setaffinity; else unpinned).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import report
import seed

LUA = os.path.join(HERE, "lua")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONNECTIONS = 32


@dataclass(frozen=True)
class Sizes:
    """Data set sizes and run lengths: full (the issue's numbers) or --quick (a smoke test)."""

    duration: int                 # seconds of each measured wrk run
    warmup: int                   # seconds of each warm-up wrk run
    servers: int                  # scenarios 1, 4, 5
    pg_servers: int               # scenario 1 on PostgreSQL
    jobs_small: int               # scenario 2
    jobs_big: int
    job_ids: int                  # how many job ids the status script cycles over
    engine_jobs: int              # scenario 3
    engine_timeout: float
    startups: int                 # scenario 5
    worker_variant: bool          # scenario 1 again with the in-process worker


FULL = Sizes(duration=10, warmup=2, servers=100_000, pg_servers=60_000, jobs_small=1_000, jobs_big=1_000_000,
             job_ids=1000, engine_jobs=10_000, engine_timeout=120.0, startups=3, worker_variant=True)
QUICK = Sizes(duration=3, warmup=1, servers=20_000, pg_servers=10_000, jobs_small=1_000, jobs_big=50_000,
              job_ids=200, engine_jobs=1_000, engine_timeout=60.0, startups=2, worker_variant=False)


# --- pinning and processes ------------------------------------------------------------------------------

def _cores() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load cores): core 0 and core 1 of those we may use, or None when there is one."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[1]}


class Procs:
    """Every process this run starts: ended by PID at the end whatever happens."""

    def __init__(self, server_cpus: set[int] | None, load_cpus: set[int] | None) -> None:
        self.server_cpus = server_cpus
        self.load_cpus = load_cpus
        self.taskset = shutil.which("taskset")
        self.live: dict[int, subprocess.Popen] = {}

    def pin(self, cmd: list[str], cpus: set[int] | None) -> tuple[list[str], Any]:
        """The command pinned to ``cpus`` (taskset, else sched_setaffinity in the child), and the
        child's pre-exec hook: it also asks the kernel to SIGTERM the child should this script die
        without cleaning up (PR_SET_PDEATHSIG), so that no server outlives the run."""
        affinity = None
        if cpus and self.taskset:
            cmd = [self.taskset, "-c", ",".join(map(str, sorted(cpus))), *cmd]
        elif cpus:
            affinity = cpus

        def pre() -> None:
            _die_with_parent()
            if affinity:
                os.sched_setaffinity(0, affinity)

        return cmd, pre

    def start(self, cmd: list[str], cpus: set[int] | None, env: dict[str, str], log_path: str) -> subprocess.Popen:
        cmd, pre = self.pin(cmd, cpus)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=pre, cwd=ROOT)  # noqa: PLW1509 - no threads here
        self.live[proc.pid] = proc
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL; by this process's own PID."""
        try:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        finally:
            self.live.pop(proc.pid, None)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in list(self.live.values()):
            self.stop(proc, grace=10.0)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 10.0) -> tuple[int, dict, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak), RssAnon (private), RssFile (mapped files) of a process, in kB (/proc/PID/status)."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


class Server:
    """One `ecsd serve` (or `ecsd worker`) process of this run."""

    def __init__(self, bench: Bench, data_dir: str, *, database_url: str | None = None, worker: bool = True,
                 env: dict[str, str] | None = None, kind: str = "serve", name: str = "ecsd") -> None:
        self.bench = bench
        self.data_dir = data_dir
        self.kind = kind
        self.port = free_port() if kind == "serve" else None
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(bench.tmp, f"{name}-{uuid.uuid4().hex[:6]}.log")
        cmd = [sys.executable, "-m", "ecsd", kind, "--data-dir", data_dir]
        if kind == "serve":
            cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
            if not worker:
                cmd.append("--no-worker")
        if database_url:
            cmd += ["--database-url", database_url]
        full_env = {**os.environ, **(env or {})}
        full_env.pop("ECSD_DATABASE_URL", None)
        full_env.pop("ECSD_DATA_DIR", None)
        self.started = time.monotonic()
        self.proc = bench.procs.start(cmd, bench.procs.server_cpus, full_env, self.log)
        self.pid = self.proc.pid
        self.ready_s: float | None = None
        self.token: str | None = None

    def wait_ready(self, timeout: float = 60.0, poll: float = 0.005) -> float:
        """Seconds from spawning the process until /healthz answers 200 (or the worker says it started)."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ecsd {self.kind} exited with {self.proc.returncode}:\n{self.tail()}")
            if self.kind == "serve":
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                        if sock.recv(64).startswith(b"HTTP/1.1 200"):
                            self.ready_s = time.monotonic() - self.started
                            return self.ready_s
                except OSError:
                    pass
            else:
                with open(self.log, errors="replace") as fh:
                    if " started (lease" in fh.read():
                        self.ready_s = time.monotonic() - self.started
                        return self.ready_s
            time.sleep(poll)
        raise RuntimeError(f"ecsd {self.kind} not ready within {timeout} s:\n{self.tail()}")

    def login(self) -> str:
        creds = seed.credentials(self.data_dir)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": creds["user_name"], "password": creds["password"], "domain": {"name": creds["domain_name"]}}}},
            "scope": {"project": {"name": creds["project_name"]}}}}
        status, headers, text = http("POST", self.base + "/v3/auth/tokens", body)
        if status != 201:
            raise RuntimeError(f"token request failed: {status} {text[:300]!r}")
        self.token = {k.lower(): v for k, v in headers.items()}["x-subject-token"]
        return self.token

    def memory(self) -> dict[str, int]:
        return read_status(self.pid)

    def tail(self, n: int = 30) -> str:
        try:
            with open(self.log, errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        return self.bench.procs.stop(self.proc)


# --- CPU accounting: is anything else running on the server's core? ------------------------------------

class CoreWatch:
    """CPU use of the server's core during a measured run: all of it, and the server process's share.

    The rest ("others") is what other processes took from the server: on a shared machine a run
    with much of it is noisy, and the report says so.
    """

    def __init__(self, core: int | None, pid: int | None) -> None:
        self.core, self.pid = core, pid
        self.start = self._sample()

    def _sample(self) -> tuple[int, int, int, int, int] | None:
        """(total, user+nice+system, irq+softirq, steal) jiffies of the core, and the process's utime+stime."""
        if self.core is None or self.pid is None:
            return None
        try:
            with open("/proc/stat") as fh:
                for line in fh:
                    if line.startswith(f"cpu{self.core} "):
                        v = [int(x) for x in line.split()[1:9]]
                        break
                else:
                    return None
            with open(f"/proc/{self.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            own = int(fields[11]) + int(fields[12])      # utime + stime, all threads
            return sum(v), v[0] + v[1] + v[2], v[5] + v[6], v[7], own
        except (OSError, ValueError, IndexError):
            return None

    def result(self) -> dict[str, float]:
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return {}
        d = [b - a for a, b in zip(self.start, end)]
        total = d[0]
        own = d[4] / total
        return {"core_busy": (d[1] + d[2] + d[3]) / total, "server_cpu": own,
                "others_cpu": max(0.0, d[1] / total - own), "irq_cpu": d[2] / total, "steal_cpu": d[3] / total}


# --- wrk ------------------------------------------------------------------------------------------------

def run_wrk(bench: Bench, script: str, url: str, seconds: int, env: dict[str, str],
            connections: int = CONNECTIONS, server: Server | None = None) -> dict[str, Any]:
    """One bounded wrk run with a Lua script from bench/lua; returns the script's JSON summary.

    With ``server`` (a measured run), also the CPU use of the server's core (see CoreWatch).
    """
    threads = bench.wrk_threads
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", f"{seconds + 5}s",
           "-s", os.path.join(LUA, script), url]
    cmd, pre = bench.procs.pin(cmd, bench.procs.load_cpus)
    full_env = {**os.environ, "BENCH_LUA_DIR": LUA, "BENCH_THREADS": str(threads), **env}
    watch = bench.watch(server.pid if server else None)
    out = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=seconds + 60, check=False,
                         preexec_fn=pre, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT "):])
            secs = result["duration_us"] / 1e6
            result["seconds"] = secs
            result["rps"] = result["requests"] / secs if secs else 0.0
            result["ok_rps"] = result["ok"] / secs if secs else 0.0
            result["p50_ms"] = result["latency_us"]["p50"] / 1000
            result["p90_ms"] = result["latency_us"]["p90"] / 1000
            result["p99_ms"] = result["latency_us"]["p99"] / 1000
            result["max_ms"] = result["latency_us"]["max"] / 1000
            errors = result["errors"]
            result["socket_errors"] = int(errors["connect"] + errors["read"] + errors["write"] + errors["timeout"])
            for key in ("ok", "bad", "non2xx", "wrapped", "requests"):
                result[key] = int(result[key])
            result["statuses"] = {k: int(v) for k, v in result["statuses"].items()}
            if server is not None:
                result.update(bench.note_cpu(watch.result()))
            return result
    raise RuntimeError(f"wrk gave no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def write_ids(bench: Bench, ids: list[str], name: str) -> str:
    path = os.path.join(bench.tmp, f"{name}-{uuid.uuid4().hex[:6]}.ids")
    with open(path, "w") as fh:
        fh.write("\n".join(ids) + "\n")
    return path


def wrk_summary(r: dict[str, Any]) -> str:
    extra = ""
    if r["non2xx"] or r["bad"] or r["socket_errors"]:
        extra = f", non-2xx {r['non2xx']} {r['statuses']}, 2xx without job id {r['bad']}, " \
                f"socket errors {r['socket_errors']}"
    return (f"{r['requests']:,} requests in {r['seconds']:.1f} s = {r['rps']:,.0f}/s; latency p50 "
            f"{r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms"
            + extra + cpu_text(r))


def memory_text(m: dict[str, int], peak: bool = True) -> str:
    mb = {k: v / 1024 for k, v in m.items()}
    text = (f"VmRSS {mb.get('VmRSS', 0):.0f} MB = RssAnon {mb.get('RssAnon', 0):.0f} MB (private) + RssFile "
            f"{mb.get('RssFile', 0):.0f} MB (mapped files: the database if mmap'ed, libraries)")
    if mb.get("RssShmem"):
        text += f" + RssShmem {mb['RssShmem']:.0f} MB"
    if peak:
        text += f"; peak VmHWM {mb.get('VmHWM', 0):.0f} MB"
    return text


def cpu_text(r: dict[str, Any]) -> str:
    if "core_busy" not in r:
        return ""
    text = (f"; server core {r['core_busy'] * 100:.0f}% busy: server {r['server_cpu'] * 100:.0f}%, "
            f"other processes {r['others_cpu'] * 100:.0f}%")
    if r.get("irq_cpu", 0) >= 0.01:
        text += f", interrupts {r['irq_cpu'] * 100:.0f}%"
    if r.get("steal_cpu", 0) >= 0.01:
        text += f", stolen by the hypervisor {r['steal_cpu'] * 100:.0f}%"
    return text


# --- the run ------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    data_dir: str
    creds: dict
    pairs: list[tuple[str, str]] = field(default_factory=list)   # (server id, system volume id)
    job_ids: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes) -> None:
        self.args = args
        self.sizes = sizes
        server_cpus, load_cpus = _cores()
        self.procs = Procs(server_cpus, load_cpus)
        self.wrk_threads = args.wrk_threads
        self.tmp = tempfile.mkdtemp(prefix="ecsd-bench-")
        self.results: list[report.Row] = []
        self.details: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.profile: dict[str, list[str]] = {}    # what was profiled -> top frames
        self._base: str | None = None
        self._servers: Dataset | None = None
        self.rss: dict[str, int] | None = None
        self.pg_schema: str | None = None
        self.others_cpu: list[float] = []    # other processes' share of the server core, per measured run
        self.verified: list[str] = []        # seeded data sets that passed the app's invariant checks

    def watch(self, pid: int | None) -> CoreWatch:
        core = min(self.procs.server_cpus) if self.procs.server_cpus else None
        return CoreWatch(core, pid)

    def note_cpu(self, cpu: dict[str, float]) -> dict[str, float]:
        if cpu:
            self.others_cpu.append(cpu["others_cpu"])
        return cpu

    # output
    def say(self, text: str) -> None:
        print(text, flush=True)

    def row(self, scenario: str, metric: str, value: float | None, unit: str, op: str | None = None,
            target: float | None = None, note: str = "") -> None:
        row = report.Row(scenario, metric, value, unit, op, target, note)
        self.results.append(row)
        self.say("   " + report.one_line(row))

    def detail(self, scenario: str, text: str) -> None:
        self.details.setdefault(scenario, []).append(text)
        self.say("     " + text)

    # data sets
    def base(self) -> str:
        """A data dir made by a first short `ecsd serve` (migrations, demo tenant, credentials.json)."""
        if self._base is None:
            path = os.path.join(self.tmp, "base")
            srv = Server(self, path, name="first-start")
            srv.wait_ready()
            srv.stop()
            self._base = path
        return self._base

    def copy(self, source: str, name: str) -> str:
        path = os.path.join(self.tmp, f"{name}-{uuid.uuid4().hex[:6]}")
        shutil.copytree(source, path)
        return path

    def fresh(self, name: str, servers: int = 0, jobs: int = 0) -> Dataset:
        path = self.copy(self.base(), name)
        creds = seed.credentials(path)
        ds = Dataset(path, creds)
        engine = seed.open_engine(path)
        try:
            if servers:
                # servers with a history of change-OS jobs run the image those jobs installed
                image = seed.DEBIAN if jobs else seed.UBUNTU
                ds.pairs = seed.seed_servers(engine, creds, servers, image=image, prefix=name)
            if jobs:
                ds.job_ids = seed.seed_finished_jobs(engine, creds, ds.pairs, jobs, image=image)
            self.check(engine, name)
        finally:
            seed.close(engine)
        os.sync()    # the seed's dirty pages go to disk now, not during a measured run
        return ds

    def check(self, engine, name: str) -> None:
        """The seed must look like data the application wrote: its own invariant checks must pass."""
        t = time.perf_counter()
        problems = seed.verify(engine)
        if problems:
            raise RuntimeError(f"seeded data set {name} breaks ecsd.domain.invariants: " + "; ".join(problems))
        self.verified.append(f"{name} ({time.perf_counter() - t:.1f} s)")

    def servers_template(self) -> Dataset:
        """The 100,000 stopped servers of scenarios 1, 4 and 5 (seeded once; copied for each use)."""
        if self._servers is None:
            n = self.sizes.servers
            t = time.perf_counter()
            self._servers = self.fresh("servers", servers=n)
            self.say(f"   seeded {n:,} servers with their system disks in {time.perf_counter() - t:.1f} s")
            self.notes.append(f"Seeding {n:,} servers (and their {n:,} volume rows) took "
                              f"{time.perf_counter() - t:.1f} s.")
        return self._servers

    def copy_servers(self, name: str) -> Dataset:
        tpl = self.servers_template()
        return Dataset(self.copy(tpl.data_dir, name), tpl.creds, tpl.pairs)

    # --- scenario 1 --------------------------------------------------------------------------------
    def changeos_ids(self, pairs: list[tuple[str, str]]) -> tuple[list[str], list[str], list[str]]:
        """(warm-up ids, measured ids, profile ids): disjoint, shuffled (clients hit servers at random)."""
        ids = [sid for sid, _ in pairs]
        random.Random(42).shuffle(ids)
        warm = min(5000, len(ids) // 10)
        rest = ids[warm:]
        cut = len(rest) * 2 // 3 if self.args.profile else len(rest)
        return ids[:warm], rest[:cut], rest[cut:]

    def scenario_1(self, database: str = "sqlite") -> None:
        s = self.sizes
        pg = database == "postgresql"
        label = "1 Change-OS acceptance, " + ("PostgreSQL" if pg else "SQLite") + ", `--no-worker`"
        self.say(f"== {label}")
        if pg:
            ds, url = self.pg_dataset(s.pg_servers)
        else:
            ds, url = self.copy_servers("s1"), None
        warm, ids, prof = self.changeos_ids(ds.pairs)
        srv = Server(self, ds.data_dir, database_url=url, worker=False, name="s1")
        try:
            srv.wait_ready()
            token = srv.login()
            env = {"BENCH_TOKEN": token, "BENCH_PROJECT": ds.creds["project_id"], "BENCH_IMAGE": seed.DEBIAN,
                   "BENCH_PASSWORD": seed.BENCH_PASSWORD, "BENCH_EXPECT": '"job_id"'}
            run_wrk(self, "healthz.lua", srv.base, s.warmup, {})
            warmed = run_wrk(self, "changeos.lua", srv.base, s.warmup,
                             {**env, "BENCH_IDS": write_ids(self, warm, "warm")})
            health = run_wrk(self, "healthz.lua", srv.base, s.duration, {}, server=srv)
            change = run_wrk(self, "changeos.lua", srv.base, s.duration,
                             {**env, "BENCH_IDS": write_ids(self, ids, "ids")}, server=srv)
            memory = srv.memory()
            if not pg:
                self.rss = memory
            profiled = None
            if self.args.profile and not pg:
                profiled = self.run_profile(srv, "scenario 1: POST changeos (`--no-worker`)", "changeos.lua",
                                            {**env, "BENCH_IDS": write_ids(self, prof, "prof")})
        finally:
            srv.stop()
        jobs_in_db = self.count_jobs(ds, url)
        ratio = change["ok_rps"] / health["rps"] if health["rps"] else 0.0
        self.row(label, "accepted change-OS requests/s", change["ok_rps"], "/s", ">=", 1200 if pg else 2500)
        self.row(label, "p99 latency", change["p99_ms"], "ms", "<=", None if pg else 25)
        if not pg:
            self.row(label, "ratio to GET /healthz of the same process", ratio, "x", ">=", 0.45)
        self.row(label, "non-2xx responses", change["non2xx"], "", "<=", 0,
                 note=", ".join(f"{k}: {v}" for k, v in sorted(change["statuses"].items()) if k != "200"))
        self.detail(label, f"POST changeos: {wrk_summary(change)}; accepted (200 with a job id) "
                           f"{change['ok']:,} = {change['ok_rps']:,.0f}/s")
        self.detail(label, f"GET /healthz (same process, same run): {wrk_summary(health)}")
        self.detail(label, f"ratio accepted/s : healthz/s = {ratio:.2f}")
        counted = warmed["ok"] + change["ok"] + (profiled["ok"] if profiled else 0)
        extra = jobs_in_db - counted     # requests in flight when a wrk run ended: accepted, not counted
        runs = 3 if profiled else 2
        self.detail(label, f"jobs in the database afterwards (INIT, no worker runs them): {jobs_in_db:,}; "
                           f"counted as accepted by wrk in the warm-up and measured runs: {counted:,}"
                           + (f" (+{extra} in flight when wrk stopped, at most {runs * CONNECTIONS})"
                              if 0 < extra <= runs * CONNECTIONS else "")
                           + ("  <-- MISMATCH" if not 0 <= extra <= runs * CONNECTIONS else ""))
        self.detail(label, f"server memory: {memory_text(memory)}")
        if change["wrapped"]:
            self.detail(label, f"WARNING: the id list ran out; {change['wrapped']:,} requests repeated a server")

        if s.worker_variant and not pg:
            self.scenario_1_worker()

    def scenario_1_worker(self) -> None:
        s = self.sizes
        label = "1b Change-OS acceptance, SQLite, with the in-process worker"
        ds = self.copy_servers("s1w")
        warm, ids, _ = self.changeos_ids(ds.pairs)
        delay = "0.3"
        srv = Server(self, ds.data_dir, worker=True, env={"ECSD_SIM_DELAY": delay}, name="s1w")
        try:
            srv.wait_ready()
            token = srv.login()
            env = {"BENCH_TOKEN": token, "BENCH_PROJECT": ds.creds["project_id"], "BENCH_IMAGE": seed.DEBIAN,
                   "BENCH_PASSWORD": seed.BENCH_PASSWORD, "BENCH_EXPECT": '"job_id"'}
            run_wrk(self, "changeos.lua", srv.base, s.warmup, {**env, "BENCH_IDS": write_ids(self, warm, "warm")})
            change = run_wrk(self, "changeos.lua", srv.base, s.duration,
                             {**env, "BENCH_IDS": write_ids(self, ids, "ids")}, server=srv)
            counts = self.job_counts(ds)
        finally:
            srv.stop()
        self.row(label, "accepted change-OS requests/s", change["ok_rps"], "/s", note="no target (informative)")
        self.row(label, "p99 latency", change["p99_ms"], "ms", note="no target (informative)")
        self.detail(label, f"`ecsd serve` with its job worker, ECSD_SIM_DELAY={delay} (the default): "
                           f"{wrk_summary(change)}; accepted {change['ok']:,}")
        self.detail(label, f"jobs by status right after the run: {counts}")

    def run_profile(self, srv: Server, what: str, script: str, env: dict[str, str]) -> dict[str, Any] | None:
        """py-spy on the server during an extra wrk run (after the measured one). Returns that run."""
        pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(pyspy):
            self.profile[what] = ["py-spy not found: no profile"]
            return None
        seconds = max(3, self.sizes.duration)
        out = os.path.join(self.tmp, f"profile-{uuid.uuid4().hex[:6]}.txt")
        cmd, pre = self.procs.pin([pyspy, "record", "--pid", str(srv.pid), "--duration", str(seconds), "--rate",
                                   "200", "--format", "raw", "--output", out], self.procs.load_cpus)
        result = None
        with open(os.path.join(self.tmp, "py-spy.log"), "ab") as log:
            spy = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pre)  # noqa: PLW1509
            self.procs.live[spy.pid] = spy
            try:
                time.sleep(0.5)
                result = run_wrk(self, script, srv.base, seconds, env)
                spy.wait(seconds + 30)
            finally:
                self.procs.stop(spy)
        if os.path.exists(out):
            self.profile[what] = report.top_frames(out)
        else:
            self.profile[what] = ["py-spy wrote no profile (see its log)"]
        return result

    def count_jobs(self, ds: Dataset, url: str | None) -> int:
        engine = seed.open_engine(ds.data_dir, url, bulk=False)
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one()
        finally:
            engine.dispose()

    def job_counts(self, ds: Dataset) -> dict[str, int]:
        with sqlite3.connect(os.path.join(ds.data_dir, "ecsd.db"), timeout=30) as conn:
            return dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())

    # PostgreSQL
    def pg_dataset(self, n: int) -> tuple[Dataset, str]:
        import psycopg

        self.pg_schema = "ecsd_bench_" + uuid.uuid4().hex[:8]
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"CREATE SCHEMA {self.pg_schema}")
        url = f"{PG_URL}?options=-csearch_path%3D{self.pg_schema}"
        path = os.path.join(self.tmp, "pg")
        srv = Server(self, path, database_url=url, name="pg-first-start")
        srv.wait_ready()
        srv.stop()
        creds = seed.credentials(path)
        engine = seed.open_engine(path, url)
        t = time.perf_counter()
        try:
            pairs = seed.seed_servers(engine, creds, n, prefix="pg")
            self.check(engine, "pg")
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        finally:
            seed.close(engine)
        self.say(f"   seeded {n:,} servers into PostgreSQL schema {self.pg_schema} in {time.perf_counter() - t:.1f} s")
        return Dataset(path, creds, pairs), url

    def drop_pg(self) -> None:
        if not self.pg_schema:
            return
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {self.pg_schema} CASCADE")
        self.pg_schema = None

    # --- scenario 2 --------------------------------------------------------------------------------
    def scenario_2(self) -> None:
        s = self.sizes
        label = "2 Job status"
        self.say(f"== {label}")
        runs = {}
        for n in (s.jobs_small, s.jobs_big):
            t = time.perf_counter()
            ds = self.fresh(f"jobs{n}", servers=1000, jobs=n)
            took = time.perf_counter() - t
            self.say(f"   seeded 1,000 servers and {n:,} finished change-OS jobs in {took:.1f} s")
            self.notes.append(f"Seeding {n:,} job rows (plus 1,000 servers) took {took:.1f} s.")
            ids = random.Random(7).sample(ds.job_ids, min(s.job_ids, len(ds.job_ids)))
            srv = Server(self, ds.data_dir, name=f"s2-{n}")
            try:
                srv.wait_ready()
                env = {"BENCH_TOKEN": srv.login(), "BENCH_PROJECT": ds.creds["project_id"],
                       "BENCH_IDS": write_ids(self, ids, "jobs"), "BENCH_EXPECT": '"status"'}
                run_wrk(self, "job_status.lua", srv.base, s.warmup, env)
                runs[n] = run_wrk(self, "job_status.lua", srv.base, s.duration, env, server=srv)
                if self.args.profile and n == s.jobs_big:
                    self.run_profile(srv, f"scenario 2: GET job with {n:,} jobs stored", "job_status.lua", env)
            finally:
                srv.stop()
                shutil.rmtree(ds.data_dir, ignore_errors=True)
            self.detail(label, f"{n:,} jobs stored, cycling over {len(ids):,} of them: {wrk_summary(runs[n])}")
        small, big = runs[s.jobs_small], runs[s.jobs_big]
        for n, r in ((s.jobs_small, small), (s.jobs_big, big)):
            self.row(label, f"GET job/s, {n:,} jobs stored", r["ok_rps"], "/s", ">=", 5000)
            self.row(label, f"p99 latency, {n:,} jobs stored", r["p99_ms"], "ms", "<=", 15)
        ratio = big["ok_rps"] / small["ok_rps"] if small["ok_rps"] else 0.0
        self.row(label, f"throughput with {s.jobs_big:,} / with {s.jobs_small:,} jobs", ratio, "x", ">=", 0.9,
                 note="'no slower within noise': at least 0.9")
        bad = sum(r["non2xx"] + r["bad"] for r in runs.values())
        if bad:
            self.detail(label, f"WARNING: {bad} responses were not 200 with a job")

    # --- scenario 3 --------------------------------------------------------------------------------
    def scenario_3(self) -> None:
        s = self.sizes
        label = "3 Job engine"
        self.say(f"== {label}")
        n = s.engine_jobs
        slow = self.engine_run(n, delay=1.0)
        steps_s = 6.0    # stopped servers: create disk, inject, detach + attach, delete old disk, start
        self.row(label, f"{n:,} change-OS jobs, 1 s per step: submission to last SUCCESS", slow["elapsed"], "s",
                 "<=", steps_s + 10, note=f"sum of step latencies {steps_s:.0f} s + 10 s"
                 + (f"; {slow['fail']:,} jobs FAILED" if slow["fail"] else ""))
        self.detail(label, f"1 s per step: {self.engine_text(slow)}")
        fast = self.engine_run(n, delay=0.0)
        rate = fast["done"] / fast["elapsed"] if fast["elapsed"] else 0.0
        self.row(label, "change-OS jobs completed/s, 0 s per step", rate, "/s", ">=", 1000,
                 note=f"{fast['fail']:,} jobs FAILED" if fast["fail"] else "")
        self.detail(label, f"0 s per step: {self.engine_text(fast)}")

    @staticmethod
    def engine_text(r: dict[str, Any]) -> str:
        text = (f"{r['done']:,} of {r['jobs']:,} SUCCESS (FAIL {r['fail']}) in {r['elapsed']:.1f} s from submission; "
                f"at most {r['peak_running']:,} RUNNING at once (seen by polling); submission transaction "
                f"{r['submit_s']:.2f} s; worker ready {r['ready_s']:.2f} s after spawn")
        text += cpu_text(r)
        if r["timed_out"]:
            text += f"; NOT FINISHED within {r['timeout']:.0f} s ({r['left']:,} still in flight)"
        return text

    def engine_run(self, n: int, delay: float) -> dict[str, Any]:
        ds = self.fresh(f"engine{int(delay)}", servers=n)
        db = os.path.join(ds.data_dir, "ecsd.db")
        wrk_env = {"ECSD_SIM_DELAY": str(delay)}
        worker = Server(self, ds.data_dir, kind="worker", env=wrk_env, name=f"s3-worker-{delay:g}")
        try:
            ready = worker.wait_ready()
            engine = seed.open_engine(ds.data_dir, bulk=False)
            watch = self.watch(worker.pid)
            try:
                t0 = time.time()
                _, committed = seed.submit_changeos(engine, ds.creds, ds.pairs)
            finally:
                engine.dispose()
            peak = 0
            left = n
            deadline = time.monotonic() + self.sizes.engine_timeout
            poll = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            try:
                while time.monotonic() < deadline:
                    counts = dict(poll.execute("SELECT status, count(*) FROM jobs WHERE status IN "
                                               "('INIT','RUNNING') GROUP BY status").fetchall())
                    peak = max(peak, counts.get("RUNNING", 0))
                    left = sum(counts.values())
                    if left == 0:
                        break
                    time.sleep(0.2)
                cpu = self.note_cpu(watch.result())
                done, fail, first, last = poll.execute(
                    "SELECT sum(status = 'SUCCESS'), sum(status = 'FAIL'), min(created_at), max(end_time) "
                    "FROM jobs").fetchone()
            finally:
                poll.close()
        finally:
            worker.stop()
            shutil.rmtree(ds.data_dir, ignore_errors=True)
        timed_out = left > 0
        elapsed = (last - first) if (last and first and not timed_out) else self.sizes.engine_timeout
        return {"jobs": n, "done": done or 0, "fail": fail or 0, "elapsed": elapsed, "peak_running": peak,
                "submit_s": committed - t0, "ready_s": ready, "timed_out": timed_out, "left": left,
                "timeout": self.sizes.engine_timeout, **cpu}

    # --- scenarios 4 and 5 -------------------------------------------------------------------------
    def scenario_4_5(self, want4: bool, want5: bool) -> None:
        s = self.sizes
        ds = self.copy_servers("s45")
        n = len(ds.pairs)
        times = []
        srv = None
        try:
            trials = s.startups if want5 else 1
            for i in range(trials):
                srv = Server(self, ds.data_dir, name=f"s5-start{i}")
                times.append(srv.wait_ready())
                if i < trials - 1:
                    srv.stop()
            if want5:
                label = "5 Start-up and memory"
                self.say(f"== {label}")
                self.row(label, f"`ecsd serve` ready (/healthz 200) with {n:,} servers, median of {len(times)}",
                         statistics.median(times), "s", "<=", 1.5)
                self.detail(label, "start-up times (spawn to first 200 from /healthz): "
                            + ", ".join(f"{t:.2f} s" for t in times))
            if want4:
                label = "4 Listing"
                self.say(f"== {label}")
                pages = math.ceil(n / 100)
                env = {"BENCH_TOKEN": srv.login(), "BENCH_PROJECT": ds.creds["project_id"], "BENCH_LIMIT": "100",
                       "BENCH_EXPECT": '"servers"'}
                status, _, body = http("GET", f"{srv.base}/v1/{ds.creds['project_id']}/cloudservers/detail"
                                              f"?limit=100&offset={pages}", headers={"X-Auth-Token": env["BENCH_TOKEN"]})
                page_doc = json.loads(body) if status == 200 else {}
                expect_last = n - (pages - 1) * 100
                got = (page_doc.get("count"), len(page_doc.get("servers", [])))
                self.detail(label, f"check of the last page: HTTP {status}, count {got[0]}, {got[1]} servers "
                                   f"(expected count {n:,}, {expect_last} servers)"
                                   + ("" if got == (n, expect_last) else "  <-- MISMATCH"))
                for page in (1, (pages + 1) // 2, pages):
                    penv = {**env, "BENCH_PAGE": str(page)}
                    run_wrk(self, "list_servers.lua", srv.base, max(1, s.warmup // 2), penv)
                    r = run_wrk(self, "list_servers.lua", srv.base, s.duration, penv, server=srv)
                    self.row(label, f"p99 latency, page {page} of {pages} (limit=100&offset={page})", r["p99_ms"],
                             "ms", "<=", 50)
                    self.detail(label, f"page {page}: {wrk_summary(r)}")
                    if self.args.profile and page == pages:
                        self.run_profile(srv, f"scenario 4: GET cloudservers/detail, last page of {pages}",
                                         "list_servers.lua", penv)
                    if r["ok"] != r["requests"]:
                        self.detail(label, f"WARNING: {r['requests'] - r['ok']} responses were not a page")
        finally:
            if srv is not None:
                srv.stop()
            shutil.rmtree(ds.data_dir, ignore_errors=True)
        if want5:
            label = "5 Start-up and memory"
            if self.rss is None:
                self.rss = self.rss_under_load()
            self.row(label, "resident memory under scenario 1 (peak VmHWM)", self.rss.get("VmHWM", 0) / 1024, "MB",
                     "<=", 250, note="after the runs: " + memory_text(self.rss, peak=False))

    def rss_under_load(self) -> dict[str, int]:
        ds = self.copy_servers("s5rss")
        _, ids, _ = self.changeos_ids(ds.pairs)
        srv = Server(self, ds.data_dir, worker=False, name="s5rss")
        try:
            srv.wait_ready()
            env = {"BENCH_TOKEN": srv.login(), "BENCH_PROJECT": ds.creds["project_id"], "BENCH_IMAGE": seed.DEBIAN,
                   "BENCH_EXPECT": '"job_id"', "BENCH_IDS": write_ids(self, ids, "rss")}
            run_wrk(self, "changeos.lua", srv.base, self.sizes.duration, env, server=srv)
            return srv.memory()
        finally:
            srv.stop()
            shutil.rmtree(ds.data_dir, ignore_errors=True)

    def cleanup(self) -> None:
        self.procs.stop_all()
        try:
            self.drop_pg()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _alarm(signum, frame):
    raise TimeoutError("the benchmark suite ran past its time limit (--max-minutes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="small data sets, short runs (smoke test)")
    ap.add_argument("--only", default="1,2,3,4,5", help="comma-separated scenario numbers, e.g. 1,2")
    ap.add_argument("--postgres", action="store_true",
                    help="also run scenario 1 on PostgreSQL (127.0.0.1:5432, database test, a fresh schema)")
    ap.add_argument("--profile", action="store_true",
                    help="also record scenario 1 (SQLite) with py-spy in an extra run and list the top frames")
    ap.add_argument("--doc", default=None,
                    help=f"write the report here [default: {os.path.relpath(DOC, ROOT)} for a full run of all "
                         "scenarios; not written for --quick or --only unless given]")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this file")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default 1: wrk has one core)")
    ap.add_argument("--max-minutes", type=float, default=20.0, help="abort the whole run after this long")
    args = ap.parse_args()
    try:
        only = {int(x) for x in args.only.split(",") if x.strip()}
    except ValueError:
        ap.error("--only takes numbers such as 1,2")
    if not only <= {1, 2, 3, 4, 5}:
        ap.error("scenarios are 1 to 5")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    sizes = QUICK if args.quick else FULL
    command = " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])
    machine = report.machine_info()
    load_start = report.loadavg()
    bench = Bench(args, sizes)
    if bench.procs.load_cpus:
        os.sched_setaffinity(0, bench.procs.load_cpus)   # this script runs beside wrk, not beside the server
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(int(args.max_minutes * 60))
    started = time.monotonic()
    failed: list[str] = []
    print(f"ecsd benchmarks: {'quick' if args.quick else 'full'} run of scenarios {sorted(only)}"
          f"{' + PostgreSQL' if args.postgres else ''}; data and logs in {bench.tmp}", flush=True)
    pinning = (f"server on core {min(bench.procs.server_cpus)}, wrk on core {min(bench.procs.load_cpus)} "
               f"({'taskset' if bench.procs.taskset else 'sched_setaffinity'})"
               if bench.procs.server_cpus else "not pinned (fewer than 2 cores)")
    print(f"pinning: {pinning}", flush=True)
    steps = []
    if 1 in only:
        steps.append(("1", bench.scenario_1))
        if args.postgres:
            steps.append(("1 (PostgreSQL)", lambda: bench.scenario_1("postgresql")))
    if 4 in only or 5 in only:
        steps.append(("4/5", lambda: bench.scenario_4_5(4 in only, 5 in only)))
    if 2 in only:
        steps.append(("2", bench.scenario_2))
    if 3 in only:
        steps.append(("3", bench.scenario_3))
    try:
        for name, step in steps:
            try:
                step()
            except (KeyboardInterrupt, TimeoutError):
                raise
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                failed.append(f"scenario {name}: {exc.__class__.__name__}: {exc}")
                print(f"!! scenario {name} failed: {exc}", flush=True)
                bench.procs.stop_all()
    finally:
        signal.alarm(0)
        bench.cleanup()
    elapsed = time.monotonic() - started
    if bench.verified:
        bench.notes.append("Every seeded data set passed the application's own consistency checks "
                           "(`ecsd.domain.invariants.check_all`): " + ", ".join(bench.verified) + ".")
    machine["load"] = f"load average {load_start} at the start, {report.loadavg()} at the end"
    if bench.others_cpu:
        machine["interference"] = (f"other processes took {max(bench.others_cpu) * 100:.0f}% of the server's core "
                                   f"at most (mean {statistics.mean(bench.others_cpu) * 100:.0f}%) during the "
                                   f"{len(bench.others_cpu)} measured runs")
    run = report.Run(command=command, date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), seconds=elapsed,
                     quick=args.quick, scenarios=sorted(only), postgres=args.postgres, pinning=pinning,
                     machine=machine, rows=bench.results, details=bench.details, notes=bench.notes,
                     failures=failed, profile=bench.profile, sizes=sizes.__dict__)
    print()
    print(report.table(run.rows))
    print(f"\nfinished in {elapsed:.0f} s")
    for f in failed:
        print("FAILED:", f)
    doc = args.doc or (DOC if not args.quick and only == {1, 2, 3, 4, 5} else None)
    if doc:
        os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
        report.write_doc(doc, run)
        print(f"wrote {os.path.relpath(doc, ROOT) if doc.startswith(ROOT) else doc}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report.as_dict(run), fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
