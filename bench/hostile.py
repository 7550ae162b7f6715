"""Health under hostile load: /healthz and /readyz latency while wrong-password logins and writers run.

    .venv/bin/python bench/hostile.py                          # idle, main, defaults (~1 min)
    .venv/bin/python bench/hostile.py --seconds 20 --json /tmp/hostile.json
    .venv/bin/python bench/hostile.py --variants main --no-pin --src /tmp/ecsd-head/src
    .venv/bin/python bench/hostile.py --polite          # login clients wait as a 429's Retry-After says

Each variant gets its own `ecsd serve` (SQLite, simulated driver, ECSD_SIM_DELAY=0, a temporary data
directory, a free port of 127.0.0.1) and measures for ``--seconds`` after ``--warmup``:

* ``idle``      the probes alone, no load (the baseline);
* ``main``      ``--logins`` clients (100, from 127.0.0.1) each posting ``POST /v3/auth/tokens`` for the
                demo user with a wrong password as soon as its previous answer came (the README's
                Keystone body; scrypt on the server), ``--writers`` clients (4, from 127.0.0.3) writing
                with a valid token (metadata merge and rename of one server, change OS of another: each a
                write transaction), and the demo user itself logging in with the right password once a
                second (from 127.0.0.4); the throttles are off (``ECSD_LOCKOUT_FAILURE_ATTEMPTS=0``,
                ``ECSD_LOGIN_ADDRESS_LIMIT=0``), so that only the server's own capacity limits the logins;
* ``defaults``  the same load with the throttles at their defaults (variables unset): 401 against 429;
* ``logins`` / ``writers`` (on request): one half of the load alone.

A prober in its own process (from 127.0.0.2, nice -5, beside the load on core 1) opens a fresh
connection to /healthz and to /readyz every ``--interval`` seconds on an open-loop schedule, each
bounded by ``--timeout``; a probe without an answer counts as infinitely slow (">timeout" in the
table). Logins and writes are bounded by ``--load-timeout``; none starts after the measured time, and
those still running 2 s later are dropped. The server runs on core 0 and everything else on core 1
(``--no-pin``: anywhere). CPU taken by other processes of the machine is reported with each variant.
Every process is ended by its PID, data directories are removed, and an alarm ends the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h

THROTTLES_OFF = {"ECSD_LOCKOUT_FAILURE_ATTEMPTS": "0", "ECSD_LOGIN_ADDRESS_LIMIT": "0"}
THROTTLES_DEFAULT = {"ECSD_LOCKOUT_FAILURE_ATTEMPTS": None, "ECSD_LOGIN_ADDRESS_LIMIT": None}
VARIANTS = {  # name: (env, logins?, writers?)
    "idle": (THROTTLES_OFF, False, False),
    "main": (THROTTLES_OFF, True, True),
    "defaults": (THROTTLES_DEFAULT, True, True),
    "logins": (THROTTLES_OFF, True, False),
    "writers": (THROTTLES_OFF, False, True),
}
DEBIAN = "Standard_Debian_12_latest"
UBUNTU = "Standard_Ubuntu_22.04_latest"
ADMIN_PASS = "Hostile-Bench-9x!"
WRITER_SOURCE = "127.0.0.3"   # the writers are other clients than the attacker (127.0.0.1) and the prober
USER_SOURCE = "127.0.0.4"     # the demo user, logging in with the right password once a second


# --- setup through the public API ----------------------------------------------------------------------

def setup(srv: h.Server, writers: int) -> dict[str, Any]:
    """A token, image ids, and two servers per writer (one for metadata and rename, one for change OS)."""
    with h.api(srv.port, srv.creds) as (x, token):
        images = {i["name"]: i["id"] for i in x.get("/v2/cloudimages").json()["images"]}
        pid = srv.creds["project_id"]
        servers = h.create_servers(x, pid, images[UBUNTU], 2 * writers)[1] if writers else []
    return {"token": token, "pid": pid, "images": images, "servers": servers}


# --- load ------------------------------------------------------------------------------------------------

class Tally:
    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.latencies: list[float] = []
        self.ok = 0
        self.examples: dict[str, str] = {}     # first body seen per status
        self.by_status: dict[str, list[float]] = {}

    def add(self, rep: h.Reply, ok: bool) -> None:
        key = str(rep.status) if rep.status else (rep.error or "error")
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if rep.status and key not in self.examples:
            self.examples[key] = h.excerpt(rep.body, 200)
        self.latencies.append(rep.seconds if rep.status else float("inf"))
        self.by_status.setdefault(key, []).append(rep.seconds if rep.status else float("inf"))
        self.ok += ok

    def summary(self, seconds: float) -> dict[str, Any]:
        n = sum(self.statuses.values())
        answered = sum(v for k, v in self.statuses.items() if k.isdigit())
        return {"requests": n, "per_s": round(n / seconds, 1), "answered_per_s": round(answered / seconds, 1),
                "ok": self.ok, "ok_per_s": round(self.ok / seconds, 1),
                "statuses": dict(sorted(self.statuses.items())), "latency": h.latency_summary(self.latencies),
                "latency_by_status": {k: h.latency_summary(v) for k, v in sorted(self.by_status.items())},
                "examples": self.examples}


async def login_client(port: int, creds: dict, end: float, timeout: float, tally: Tally, i: int,
                       polite: bool = False) -> None:
    body = json.dumps(h.token_body(creds, f"wrong-password-{i}")).encode()
    req = h.request_bytes("POST", "/v3/auth/tokens", [("Content-Type", "application/json")], body, port=port)
    while time.monotonic() < end:
        rep = await h.exchange(port, req, timeout)
        tally.add(rep, rep.status == 401)
        if polite and rep.status == 429:       # --polite: wait as Retry-After says (at most 5 s)
            await asyncio.sleep(min(5.0, float(rep.header("retry-after") or 1)))
        elif rep.status is None and rep.error != "timeout":
            await asyncio.sleep(0.05)        # refused/reset: do not spin


async def user_client(port: int, creds: dict, end: float, timeout: float, tally: Tally) -> None:
    """The attacked user itself: a correct-password login every second (what the attack costs them)."""
    body = json.dumps(h.token_body(creds, creds["password"])).encode()
    req = h.request_bytes("POST", "/v3/auth/tokens", [("Content-Type", "application/json")], body, port=port)
    while time.monotonic() < end:
        started = time.monotonic()
        rep = await h.exchange(port, req, timeout, source=USER_SOURCE)
        tally.add(rep, rep.status == 201)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def writer_client(port: int, env: dict, i: int, end: float, timeout: float,
                        tallies: dict[str, Tally]) -> None:
    pid, token = env["pid"], env["token"]
    a, b = env["servers"][2 * i], env["servers"][2 * i + 1]
    hdr = [("Content-Type", "application/json"), ("X-Auth-Token", token)]
    images = [env["images"][DEBIAN], env["images"][UBUNTU]]
    n = 0
    while time.monotonic() < end:
        ops = [
            ("metadata", "POST", f"/v1/{pid}/cloudservers/{a}/metadata", {"metadata": {"round": str(n)}}),
            ("rename", "PUT", f"/v1/{pid}/cloudservers/{a}", {"server": {"name": f"hostile-{i}-{n}"}}),
            ("changeos", "POST", f"/v1/{pid}/cloudservers/{b}/changeos",
             {"os-change": {"imageid": images[n % 2], "adminpass": ADMIN_PASS, "mode": "withStopServer"}}),
        ]
        for name, method, path, body in ops:
            if time.monotonic() >= end:
                break
            req = h.request_bytes(method, path, hdr, json.dumps(body).encode(), port=port)
            rep = await h.exchange(port, req, timeout=timeout, source=WRITER_SOURCE)
            tallies[name].add(rep, rep.status == 200)
            if rep.status is None and rep.error != "timeout":
                await asyncio.sleep(0.05)
        n += 1


async def run_load(port: int, creds: dict, env: dict, logins: int, writers: int, seconds: float,
                   timeout: float, polite: bool) -> dict[str, Any]:
    end = time.monotonic() + seconds
    login_tally, user_tally = Tally(), Tally()
    write_tallies = {k: Tally() for k in ("metadata", "rename", "changeos")}
    tasks = [asyncio.create_task(login_client(port, creds, end, timeout, login_tally, i, polite))
             for i in range(logins)]
    tasks += [asyncio.create_task(writer_client(port, env, i, end, timeout, write_tallies)) for i in range(writers)]
    if logins:
        tasks.append(asyncio.create_task(user_client(port, creds, end, timeout, user_tally)))
    # No request starts after `end`; those still in flight 2 s later are cancelled and not counted.
    await asyncio.wait(tasks, timeout=max(0.0, end - time.monotonic()) + 2.0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out: dict[str, Any] = {}
    if logins:
        out["logins"] = login_tally.summary(seconds)
        out["user_logins"] = user_tally.summary(seconds)
    if writers:
        out["writes"] = {k: t.summary(seconds) for k, t in write_tallies.items()}
        ok = sum(t.ok for t in write_tallies.values())
        out["writes_ok_per_s"] = round(ok / seconds, 1)
    return out


# --- one variant -----------------------------------------------------------------------------------------

def run_variant(name: str, a: argparse.Namespace, server_cpus, client_cpus) -> dict[str, Any]:
    env_over, logins, writers = VARIANTS[name]
    nl, nw = (a.logins if logins else 0), (a.writers if writers else 0)
    seconds = a.idle_seconds if name == "idle" else a.seconds
    warmup = 0.0 if name == "idle" else a.warmup
    srv = h.Server(env_over, cpus=server_cpus, label="hostile", src=a.src)
    prober = None
    result: dict[str, Any] = {"variant": name, "env": {k: v for k, v in env_over.items() if v is not None},
                              "login_clients": nl, "writer_clients": nw, "seconds": seconds}
    try:
        creds = srv.wait_ready()
        env = setup(srv, nw)
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        prober = h.Prober(srv.port, seconds, a.interval, a.timeout, delay=warmup, cpus=client_cpus)
        watch = h.CpuWatch(srv.proc.pid)
        if nl or nw:
            load = asyncio.run(run_load(srv.port, creds, env, nl, nw, warmup + seconds, a.load_timeout,
                                      a.polite))
            for part in load.values():   # rates over the whole load time (warm-up included)
                if isinstance(part, dict) and "per_s" in part:
                    part["load_seconds"] = warmup + seconds
            result.update(load)
        samples = prober.finish(wait=warmup + seconds + a.timeout + 5)   # usually ended already
        prober = None
        result["cpu"] = watch.stop()
        result["probes"] = {p: h.probe_summary(s, a.timeout) for p, s in samples.items()}
        result["server_alive"] = srv.alive
    finally:
        if prober is not None:
            prober.finish(wait=0)
        srv.stop()
        result["log"] = h.scan_log(srv.log_path)
        srv.remove(keep_log_to=os.path.join(a.logs, f"hostile-{name}.log") if a.logs else None)
    return result


# --- report ----------------------------------------------------------------------------------------------

def print_report(results: list[dict[str, Any]], timeout: float, load_timeout: float) -> None:
    print("\nprobe latency (ms; fresh connection each; '>N' = timed out)")
    print(f"{'variant':<10} {'path':<9} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8} {'timeouts':>8} {'>1s':>5} "
          f"{'not 200':>7}")
    for r in results:
        for path, p in r.get("probes", {}).items():
            print(f"{r['variant']:<10} {path:<9} {p['n']:>5} {h.ms(p['p50_ms'], timeout):>8} "
                  f"{h.ms(p['p99_ms'], timeout):>8} {h.ms(p['max_ms'], timeout):>8} {p['timeouts']:>8} "
                  f"{p['stalls_over_1s']:>5} {p['not_200']:>7}")
    print("\nload (rates over warm-up + measured time)")
    for r in results:
        if "logins" in r and isinstance(r["logins"], dict):
            lg = r["logins"]
            per = "  ".join(f"{k}: {v} (p50 {h.ms(lg['latency_by_status'][k]['p50_ms'], load_timeout)} ms)"
                            for k, v in lg["statuses"].items())
            print(f"{r['variant']:<10} logins  {lg['answered_per_s']:>8.1f}/s answered  {per}")
        if "user_logins" in r:
            u = r["user_logins"]
            per = "  ".join(f"{k}: {v} (p50 {h.ms(u['latency_by_status'][k]['p50_ms'], load_timeout)} ms)"
                            for k, v in u["statuses"].items())
            print(f"{r['variant']:<10} the user's own logins (right password, 1/s): {per}")
        if "writes" in r:
            print(f"{r['variant']:<10} writes  {r['writes_ok_per_s']:>8.1f}/s 200  " + "  ".join(
                f"{k} {v['statuses']}" for k, v in r["writes"].items()))
        if r.get("cpu"):
            c = r["cpu"]
            print(f"{r['variant']:<10} cpu     machine {c['machine_busy_cores']:.2f} cores busy, ours "
                  f"{c['ours_cores']:.2f}, other processes {c['foreign_cores']:.2f}")
        if r.get("error"):
            print(f"{r['variant']:<10} FAILED: {r['error']}")
        lg = r.get("log", {})
        if lg.get("error_lines") or lg.get("tracebacks"):
            print(f"{r['variant']:<10} server log: {lg['error_lines']} ERROR lines, {lg['tracebacks']} tracebacks")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="idle,main,defaults", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time per loaded variant (max 300)")
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0, help="load before the probes start")
    ap.add_argument("--logins", type=int, default=100)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between probes of each path")
    ap.add_argument("--timeout", type=float, default=5.0, help="client timeout of every probe (s)")
    ap.add_argument("--load-timeout", type=float, default=30.0, help="client timeout of every login and write (s)")
    ap.add_argument("--polite", action="store_true", help="login clients wait as a 429's Retry-After says")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the server to core 0 and clients to core 1")
    ap.add_argument("--src", help="run the server from this src/ directory instead of the installed tree")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--logs", help="keep each variant's server log in this directory")
    a = ap.parse_args()
    names = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    a.seconds = min(max(a.seconds, 1.0), 300.0)
    a.idle_seconds = min(max(a.idle_seconds, 1.0), 300.0)
    a.logins, a.writers = max(0, min(a.logins, 1000)), max(0, min(a.writers, 50))
    if a.logs:
        os.makedirs(a.logs, exist_ok=True)
    h.overall_alarm(sum((a.idle_seconds if n == "idle" else a.seconds + a.warmup)
                        + a.load_timeout + 2 * a.timeout + 90
                        for n in names))
    server_cpus, client_cpus = h.cores(not a.no_pin)
    results = []
    try:
        for name in names:
            print(f"variant {name} ...", flush=True)
            try:
                results.append(run_variant(name, a, server_cpus, client_cpus))
            except Exception as exc:  # noqa: BLE001 - a server that does not start is a result too
                print(f"variant {name} failed: {exc!r}", file=sys.stderr)
                results.append({"variant": name, "error": repr(exc)})
    except (h.RunTimeout, KeyboardInterrupt) as exc:
        print(f"stopped: {exc or 'interrupted'}", file=sys.stderr)
        return 2
    finally:
        print_report(results, a.timeout, a.load_timeout)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump({"timeout_s": a.timeout, "interval_s": a.interval, "pinned": server_cpus is not None,
                           "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
