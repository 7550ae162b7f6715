"""Plumbing shared by bench/hostile.py and bench/fuzz.py: one `ecsd serve`, a raw HTTP/1.1 client, a
readiness prober in its own process, percentiles and a scan of the server's log.

* :class:`Server` starts `ecsd serve` (SQLite, simulated driver, ``ECSD_SIM_DELAY=0``) on a free port
  of 127.0.0.1 with its own temporary data directory, ends it by its PID (SIGTERM, then SIGKILL) and
  removes the directory. The child also gets PR_SET_PDEATHSIG, so no server outlives this script.
* :func:`exchange` sends raw bytes (anything: a broken request line, invalid UTF-8, a slow sender)
  and reads at most one response, always under a timeout; :class:`Reply` says what came back.
* The prober (``python bench/harness.py probe ...``, started by :class:`Prober`) runs in a separate
  process so that the load generator's own CPU work does not count as server latency. Every
  ``--interval`` seconds it opens a fresh connection to each path (as an orchestrator would), on an
  open-loop schedule (a slow answer does not delay the next probe), each bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"           # every request goes to this address
PROBE_SOURCE = "127.0.0.2"   # the prober connects from here, as an orchestrator would come from its own address
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PYTHON = VENV_PY if os.path.exists(VENV_PY) else sys.executable


# --- the whole run is bounded --------------------------------------------------------------------------

class RunTimeout(BaseException):
    """Raised by the overall alarm; a BaseException so that no ``except Exception`` swallows it."""


def overall_alarm(seconds: float) -> None:
    def fire(_sig, _frame):
        raise RunTimeout(f"the whole run exceeded its {seconds:.0f} s alarm")

    signal.signal(signal.SIGALRM, fire)
    signal.alarm(max(1, math.ceil(seconds)))


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cores(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server cores, client cores): core 0 for the server and core 1 for the clients, when there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[1]}


def _preexec(cpus: set[int] | None, nice: int = 0):
    def pre() -> None:
        _die_with_parent()
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)
    return pre


def end_process(proc: subprocess.Popen, grace: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: always by this process's own PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- the public API, for setting a run up -------------------------------------------------------------------

VPC, SUBNET = "3b5a1e2c-8d4f-4e6a-9b7c-1d2e3f4a5b6c", "7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f"   # not checked


def token_body(creds: dict, password: str) -> dict:
    """The Keystone password body of the README (the demo user, project scope)."""
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": creds["user_name"], "password": password, "domain": {"name": creds["domain_name"]}}}},
        "scope": {"project": {"name": creds["project_name"]}}}}


@contextlib.contextmanager
def api(port: int, creds: dict):
    """``with api(port, creds) as (client, token)``: httpx on the server, a fresh token in X-Auth-Token."""
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=60) as x:
        r = x.post("/v3/auth/tokens", json=token_body(creds, creds["password"]))
        r.raise_for_status()
        x.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]
        yield x, r.headers["X-Subject-Token"]


def wait_job(x: httpx.Client, pid: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = x.get(f"/v1/{pid}/jobs/{job_id}").json()
        if job.get("status") in ("SUCCESS", "FAIL"):
            return job
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not finish: {job}")


def create_servers(x: httpx.Client, pid: str, image_id: str, count: int) -> tuple[str, list[str]]:
    """``count`` servers (s3.small.1) through POST /v1/{pid}/cloudservers; (job id, server ids)."""
    r = x.post(f"/v1/{pid}/cloudservers", json={"server": {
        "name": "bench", "imageRef": image_id, "flavorRef": "s3.small.1", "vpcid": VPC,
        "nics": [{"subnet_id": SUBNET}], "root_volume": {"volumetype": "SSD"}, "count": count}})
    r.raise_for_status()
    job = wait_job(x, pid, r.json()["job_id"])
    if job.get("status") != "SUCCESS":
        raise RuntimeError(f"creating {count} servers failed: {job}")
    return job["job_id"], [sub["entities"]["server_id"] for sub in job["entities"]["sub_jobs"]]


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every route of the application as it is built today (not from the docs)."""
    from ecsd.app import create_app
    from ecsd.config import Settings

    app = create_app(Settings(data_dir=tempfile.gettempdir()))     # nothing is opened before the lifespan
    return sorted({(m, r.path) for r in app.routes for m in (getattr(r, "methods", None) or {"GET"}) - {"HEAD"}})


def signed(port: int, ak: str, sk: str, project_id: str, method: str, target: bytes, headers: list,
           body: bytes) -> list:
    """``headers`` plus Host, X-Sdk-Date (and X-Project-Id where the path names no project) and an
    SDK-HMAC-SHA256 Authorization that is valid for exactly these bytes, however malformed
    (``ecsd.http.signing``: the server's own canonical form)."""
    from ecsd.http import signing

    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    hs = [("Host", f"{HOST}:{port}"), *headers, ("X-Sdk-Date", date)]
    if not re.match(rb"/v[0-9.]+/[0-9a-f]{32}", target):
        hs.append(("X-Project-Id", project_id))
    present = {k.lower() for k, _ in hs}
    names = sorted(n for n in ("content-type", "host", "x-project-id", "x-sdk-date") if n in present)
    raw = [(k.lower().encode(), v if isinstance(v, bytes) else v.encode("latin-1")) for k, v in hs]
    path, _, query = target.partition(b"?")
    canon = signing.canonical_request(method, path, query, raw, names, hashlib.sha256(body).hexdigest())
    sig = signing.signature(sk, signing.string_to_sign(date, canon))
    auth = f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(names)}, Signature={sig}"
    return [*hs, ("Authorization", auth)]


# --- the server -----------------------------------------------------------------------------------------

class Server:
    """One `ecsd serve` on 127.0.0.1 with a temporary data directory. ``env`` values of None unset a
    variable; every other ``ECSD_*`` variable of this environment is dropped, ``ECSD_SIM_DELAY`` is 0."""

    def __init__(self, env: dict[str, str | None] | None = None, cpus: set[int] | None = None,
                 log_path: str | None = None, label: str = "bench", src: str | None = None) -> None:
        self.data_dir = tempfile.mkdtemp(prefix=f"ecsd-{label}-")
        self.port = free_port()
        self.log_path = log_path or os.path.join(self.data_dir, "server.log")
        full = {k: v for k, v in os.environ.items() if not k.startswith("ECSD_")}
        full["ECSD_SIM_DELAY"] = "0"
        if src:     # another tree's src/ (e.g. `git archive HEAD src | tar -x -C DIR`) before the editable install
            full["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + full.get("PYTHONPATH", "")
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        self.env = full
        cmd = [PYTHON, "-m", "ecsd", "serve", "--host", HOST, "--port", str(self.port), "--data-dir", self.data_dir]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=full, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=ROOT,
                                         preexec_fn=_preexec(cpus))  # noqa: PLW1509 - no threads yet
        self.creds: dict[str, Any] = {}

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ecsd exited with {self.proc.returncode}; log: {self.log_path}")
            reply = asyncio.run(exchange(self.port, request_bytes("GET", "/healthz", port=self.port), timeout=1.0))
            if reply.status == 200:
                with open(os.path.join(self.data_dir, "credentials.json")) as fh:
                    self.creds = json.load(fh)
                return self.creds
            time.sleep(0.05)
        raise RuntimeError(f"ecsd did not answer /healthz within {timeout:.0f} s")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        return end_process(self.proc)

    def remove(self, keep_log_to: str | None = None) -> None:
        if keep_log_to and os.path.exists(self.log_path) and os.path.abspath(keep_log_to) != self.log_path:
            shutil.copyfile(self.log_path, keep_log_to)
        shutil.rmtree(self.data_dir, ignore_errors=True)


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Disconnect|Exit|Interrupt|Timeout|Busy)\b")
_LOG_START = re.compile(r"^(\d{4}-\d\d-\d\d |INFO:|WARNING:|ERROR:|DEBUG:|CRITICAL:)")


def scan_log(path: str, limit: int = 20) -> dict[str, Any]:
    """ERROR-level lines and tracebacks in the server's output: counts, the exceptions by type, first few."""
    try:
        with open(path, errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    errors, first_errors, exceptions, first_tb = 0, [], {}, []
    inside = 0      # a chained exception's own "Traceback" line belongs to the block before it
    for i, line in enumerate(lines):
        if " ERROR " in line or line.startswith("ERROR"):
            errors += 1
            if len(first_errors) < limit:
                first_errors.append(line[:300])
        if line.startswith("Traceback (most recent call last)") and i >= inside:
            j = i + 1
            while j < len(lines) and not _LOG_START.match(lines[j]):
                j += 1
            final = [ln for ln in lines[i + 1:j] if _EXC_LINE.match(ln)]
            inside = j
            last = final[-1] if final else "?"
            kind = last.split(":", 1)[0][:100]
            exceptions[kind] = exceptions.get(kind, 0) + 1
            if len(first_tb) < limit and all(not t.startswith(kind) for t in first_tb):
                first_tb.append(last[:300])
    return {"error_lines": errors, "tracebacks": sum(exceptions.values()), "exceptions": exceptions,
            "first_errors": first_errors, "first_tracebacks": first_tb}


# --- a raw HTTP/1.1 client ------------------------------------------------------------------------------

def request_bytes(method: str, target: str | bytes, headers: list[tuple[str, str | bytes]] | None = None,
                  body: bytes = b"", port: int = 0, content_length: bool = True) -> bytes:
    """One well-framed request (Host and Content-Length added unless given); ``target`` may be any bytes."""
    t = target.encode("latin-1") if isinstance(target, str) else target
    hs = list(headers or [])
    names = {k.lower() for k, _ in hs}
    if "host" not in names:
        hs.insert(0, ("Host", f"{HOST}:{port}"))
    if content_length and "content-length" not in names and "transfer-encoding" not in names and \
            (body or method in ("POST", "PUT", "PATCH")):
        hs.append(("Content-Length", str(len(body))))
    head = method.encode("latin-1") + b" " + t + b" HTTP/1.1\r\n"
    for k, v in hs:
        head += k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else v.encode("latin-1")) + b"\r\n"
    return head + b"\r\n" + body


@dataclass
class Reply:
    status: int | None = None          # None: no response at all (see error)
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    seconds: float = 0.0               # from the end of sending to the end of the response
    error: str | None = None           # timeout | closed | reset | refused | malformed | ...
    extra: list[int] = field(default_factory=list)   # statuses of further (pipelined) responses

    def header(self, name: str) -> str | None:
        name = name.lower()
        found = [v for k, v in self.headers if k == name]
        return found[-1] if found else None


class BadResponse(Exception):
    pass


async def read_response(reader: asyncio.StreamReader, head: bool = False) -> Reply:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise (BadResponse("truncated head") if exc.partial else EOFError()) from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise BadResponse(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
    rep = Reply(status=status, reason=parts[2] if len(parts) > 2 else "", headers=headers)
    if 100 <= status < 200 and status != 101:
        return await read_response(reader, head)        # 100 Continue: the final answer follows
    if head or status in (101, 204, 304):
        return rep
    te = rep.header("transfer-encoding")
    if te and "chunked" in te.lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        rep.body = b"".join(chunks)
    elif rep.header("content-length") is not None:
        rep.body = await reader.readexactly(int(rep.header("content-length")))
    else:
        rep.body = await reader.read()
    return rep


async def exchange(port: int, data: bytes | list[tuple[bytes, float]], timeout: float, *, head: bool = False,
                   read: bool = True, responses: int = 1, abort_after: float | None = None,
                   source: str | None = None) -> Reply:
    """Connect to 127.0.0.1:port, send ``data`` (bytes, or (piece, pause-after) pairs for a slow sender),
    read up to ``responses`` responses (the first is returned, later statuses in ``extra``), close.

    ``read=False`` sends, waits ``abort_after`` seconds and disconnects without reading (a client that
    gives up). The whole exchange is bounded by ``timeout`` (plus the slow sender's own pauses), and
    each further pipelined response by at most 1 s more; nothing raises. ``source``: another loopback
    address to connect from (127.0.0.2, ...), so that per-address limits see a different client.
    """
    pieces = [(data, 0.0)] if isinstance(data, bytes) else data
    writer = None
    rep = Reply()
    try:
        async with asyncio.timeout(timeout + sum(p for _, p in pieces) + (abort_after or 0.0)):
            reader, writer = await asyncio.open_connection(HOST, port, limit=16 * 2**20,
                                                           local_addr=(source, 0) if source else None)
            for piece, pause in pieces:
                writer.write(piece)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            if not read:
                await asyncio.sleep(abort_after or 0.0)
                rep.error = "aborted"
                return rep
            started = time.perf_counter()
            rep = await read_response(reader, head)
            rep.seconds = time.perf_counter() - started
        for _ in range(responses - 1):
            try:
                async with asyncio.timeout(1.0):
                    rep.extra.append((await read_response(reader, head)).status or 0)
            except (EOFError, BadResponse, asyncio.IncompleteReadError, TimeoutError, OSError, ValueError):
                break
    except TimeoutError:
        rep.error = "timeout"
    except EOFError:
        rep.error = "closed"
    except (ConnectionResetError, BrokenPipeError):
        rep.error = "reset"
    except ConnectionRefusedError:
        rep.error = "refused"
    except (BadResponse, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        rep.error = f"malformed: {exc}"[:120]
    except OSError as exc:
        rep.error = f"os: {exc.__class__.__name__}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
    return rep


def is_ecs_error(body: bytes) -> bool:
    """``{"error": {"code": str, "message": str, ...}}``."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    err = doc.get("error") if isinstance(doc, dict) else None
    return isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)


# --- other load on the machine ------------------------------------------------------------------------------

class CpuWatch:
    """CPU time the whole machine spent during a run, and how much of it was not ours (the server, this
    script, its reaped children such as the prober): other processes on a shared machine make numbers noisy."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK")
        self.start = self._read()

    def _read(self) -> tuple[float, float, float]:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / self.tick           # all but idle and iowait, all cores
        try:
            with open(f"/proc/{self.pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            server = (int(f[11]) + int(f[12])) / self.tick
        except (OSError, IndexError, ValueError):
            server = 0.0
        t = os.times()
        return time.monotonic(), busy, server + t.user + t.system + t.children_user + t.children_system

    def stop(self) -> dict[str, float]:
        t1, busy1, ours1 = self._read()
        t0, busy0, ours0 = self.start
        secs = max(t1 - t0, 1e-9)
        foreign = max(0.0, (busy1 - busy0) - (ours1 - ours0))
        return {"seconds": round(secs, 1), "machine_busy_cores": round((busy1 - busy0) / secs, 2),
                "ours_cores": round((ours1 - ours0) / secs, 2), "foreign_cores": round(foreign / secs, 2)}


# --- numbers ----------------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (inf for a timeout stays inf)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    """p50/p90/p99/max in ms over answered and unanswered (inf) requests alike."""
    s = sorted(seconds)
    out: dict[str, Any] = {"n": len(s)}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        v = percentile(s, q)
        out[name + "_ms"] = None if math.isnan(v) or math.isinf(v) else round(v * 1000, 2)
    return out


def ms(v: float | None, timeout: float | None = None) -> str:
    if v is None:
        return f">{timeout * 1000:.0f}" if timeout else "-"
    return f"{v:.1f}" if v < 100 else f"{v:,.0f}"


# --- the readiness prober -------------------------------------------------------------------------------

class Prober:
    """``python bench/harness.py probe`` in its own process; :meth:`finish` ends it and returns its samples."""

    def __init__(self, port: int, seconds: float, interval: float, timeout: float, delay: float = 0.0,
                 paths: tuple[str, ...] = ("/healthz", "/readyz"), cpus: set[int] | None = None,
                 source: str = PROBE_SOURCE) -> None:
        fd, self.out = tempfile.mkstemp(prefix="ecsd-probe-", suffix=".json")
        os.close(fd)
        self.timeout = timeout
        cmd = [sys.executable, os.path.abspath(__file__), "probe", "--port", str(port), "--seconds", str(seconds),
               "--interval", str(interval), "--timeout", str(timeout), "--delay", str(delay), "--out", self.out,
               "--source", source,
               *[a for p in paths for a in ("--path", p)]]
        # A higher priority than the load generator beside it (root may lower its nice value).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     preexec_fn=_preexec(cpus, nice=-5))  # noqa: PLW1509 - no threads yet

    def finish(self, wait: float | None = None) -> dict[str, list]:
        """Wait for the planned end (``wait`` seconds at most), or stop it now (``wait=0``); the samples by path."""
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        end_process(self.proc, grace=self.timeout + 10)
        try:
            with open(self.out) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.out)


def probe_summary(samples: list[list], timeout: float, stall: float = 1.0) -> dict[str, Any]:
    """Samples are [t, seconds|None, status|None, error|None]; unanswered probes count as infinite latency."""
    lat = [s[1] if s[1] is not None else float("inf") for s in samples]
    statuses: dict[str, int] = {}
    for s in samples:
        key = str(s[2]) if s[2] is not None else (s[3] or "error")
        statuses[key] = statuses.get(key, 0) + 1
    out = latency_summary(lat)
    slow = [s for s in samples if s[1] is None or s[1] > stall]
    out.update({"statuses": statuses, "timeouts": sum(1 for s in samples if s[3] == "timeout"),
                "not_200": sum(1 for s in samples if s[2] != 200),
                "stalls_over_1s": len(slow), "timeout_s": timeout,
                "first_stalls": [{"t": round(s[0], 2), "seconds": s[1], "status": s[2], "error": s[3]}
                                 for s in slow[:10]]})
    return out


async def _probe_main(port: int, paths: list[str], seconds: float, interval: float, timeout: float,
                      delay: float, stop: asyncio.Event, source: str | None = None) -> dict[str, list]:
    samples: dict[str, list] = {p: [] for p in paths}
    tasks: set[asyncio.Task] = set()
    t0 = time.perf_counter()

    async def one(path: str) -> None:
        started = time.perf_counter()
        rep = await exchange(port, request_bytes("GET", path, port=port), timeout, source=source)
        took = time.perf_counter() - started
        samples[path].append([round(started - t0, 3), took if rep.status else None, rep.status, rep.error])

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    start = time.perf_counter()
    tick = 0
    while not stop.is_set() and time.perf_counter() - start < seconds:
        for p in paths:
            if len(tasks) < 500:
                t = asyncio.create_task(one(p))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            else:                       # too many unanswered already: counted as one more without an answer
                samples[p].append([round(time.perf_counter() - t0, 3), None, None, "skipped"])
        tick += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, start + tick * interval - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 2)
    return samples


def _probe_cli(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="harness.py probe")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--delay", type=float, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", default="")
    a = ap.parse_args(argv)
    overall_alarm(a.delay + a.seconds + a.timeout + 60)

    async def run() -> dict[str, list]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await _probe_main(a.port, a.path or ["/healthz", "/readyz"], a.seconds, a.interval, a.timeout,
                                 a.delay, stop, a.source or None)

    samples = asyncio.run(run())
    with open(a.out, "w") as fh:
        json.dump(samples, fh)
    return 0


def count_codes(statuses: list) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in statuses:
        out[str(s)] = out.get(str(s), 0) + 1
    return dict(sorted(out.items()))


_SAFE = re.compile(rb"[^\x20-\x7e]")


def excerpt(data: bytes | str, n: int = 300) -> str:
    """A printable excerpt of bytes (non-printables as \\xNN), with the total length if cut."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    text = _SAFE.sub(lambda m: b"\\x%02x" % m.group()[0], raw[:n]).decode("ascii")
    return text + (f"... ({len(raw):,} bytes)" if len(raw) > n else "")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        raise SystemExit(_probe_cli(sys.argv[2:]))
    raise SystemExit("usage: harness.py probe --port P [--path /healthz ...] --out FILE")
