"""Renders the results of bench/run.py: a table for the terminal and docs/benchmarks.md.

    .venv/bin/python bench/report.py results.json            # re-render a saved run (run.py --json)
"""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Row:
    scenario: str
    metric: str
    value: float | None
    unit: str
    op: str | None = None          # ">=" or "<=" (None: no target, informative)
    target: float | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.op is None or self.target is None or self.value is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    @property
    def verdict(self) -> str:
        p = self.passed
        return "—" if p is None else ("pass" if p else "MISS")

    @property
    def miss(self) -> str:
        """How far from the target a miss is ("" when passed or without a target)."""
        if self.passed is not False:
            return ""
        v, t = self.value or 0.0, self.target or 0.0
        if self.op == ">=":
            if t == 0:
                return ""
            return f"{(t - v) / t * 100:.0f}% below the target ({v / t:.2f}× of it)"
        if t == 0:
            return f"{fmt(v, self.unit)} instead of none"
        return f"{(v - t) / t * 100:.0f}% over the target ({v / t:.1f}× of it)"


@dataclass
class Run:
    command: str
    date: str
    seconds: float
    quick: bool
    scenarios: list[int]
    postgres: bool
    pinning: str
    machine: dict[str, str]
    rows: list[Row]
    details: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    profile: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "x":
        return f"{value:.2f}"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.0f}"


def target_text(row: Row) -> str:
    if row.op is None or row.target is None:
        return "—"
    if row.op == "<=" and row.target == 0:
        return "none"
    return f"{'≥' if row.op == '>=' else '≤'} {fmt(row.target, row.unit)}"


def one_line(row: Row) -> str:
    line = f"{row.metric}: {fmt(row.value, row.unit)}  (target {target_text(row)}: {row.verdict})"
    if row.miss:
        line += f"  {row.miss}"
    if row.note:
        line += f"  [{row.note}]"
    return line


def _order(scenario: str) -> str:
    return scenario.split(" ", 1)[0]      # "1", "1b", "2", ...: rows by scenario, in run order within one


def ordered(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: _order(r.scenario))


def table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    rows = ordered(rows)
    head = ["scenario", "metric", "target", "measured", "result"]
    cells = [[r.scenario, r.metric, target_text(r), fmt(r.value, r.unit), r.verdict + (f" ({r.miss})" if r.miss else "")]
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


# --- machine ------------------------------------------------------------------------------------------

def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, str]:
    """nproc, CPU model, memory, kernel, Python, SQLite, PostgreSQL, wrk, and the code measured."""
    info: dict[str, str] = {}
    info["nproc"] = _cmd(["nproc"]) or str(os.cpu_count())
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model or platform.processor() or "unknown"
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line for line in fh if line.startswith("MemTotal:")).split()[1])
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        info["memory"] = "unknown"
    info["kernel"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version() + f" ({platform.python_implementation()})"
    info["sqlite"] = sqlite3.sqlite_version
    info["postgresql"] = _pg_version()
    info["wrk"] = (_cmd(["wrk", "-v"]).splitlines() or ["not installed"])[0].replace(" Copyright (C) 2012 Will Glozer", "")
    try:
        import sqlalchemy
        import uvicorn

        info["libraries"] = f"SQLAlchemy {sqlalchemy.__version__}, uvicorn {uvicorn.__version__}"
    except ImportError:
        pass
    rev = _cmd(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "src"])
    if rev:
        info["code"] = f"ecsd at {rev}" + (" with uncommitted changes under src/" if dirty else "")
    return info


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "unknown"


def _pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except Exception:  # noqa: BLE001 - any failure: not reachable
        return "not reachable on 127.0.0.1:5432"


# --- profile ------------------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")              # py-spy already gives paths relative to sys.path
    for marker in ("site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('fn')} ({path})"


def top_frames(raw_path: str, n: int = 15) -> list[str]:
    """The top frames of a py-spy ``--format raw`` profile: by own time, and ecsd's own by total time."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(raw_path, errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or " " not in line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                k = int(count)
            except ValueError:
                continue
            frames = [_short(f) for f in stack.split(";") if f.strip()]
            frames = [f for f in frames if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            samples += k
            own[frames[-1]] += k
            for f in set(frames):
                total[f] += k
    if not samples:
        return ["(no samples)"]
    libs: Counter[str] = Counter()
    for f, k in own.items():
        libs[_library(f)] += k
    out = [f"{samples:,} samples of the server process (py-spy, 200 Hz).", "",
           "Own time by library: " + ", ".join(f"{lib} {k / samples * 100:.0f}%" for lib, k in libs.most_common()),
           "", "By own time (where the CPU is):", ""]
    out += [f"{i}. {k / samples * 100:.1f}% `{f}`" for i, (f, k) in enumerate(own.most_common(n), 1)]
    ecsd = [(f, k) for f, k in total.most_common()
            if "ecsd/" in f and not any(x in f for x in ("ecsd/__main__.py", "ecsd/cli/"))]
    out += ["", "ecsd functions by total time (own + callees):", ""]
    out += [f"{i}. {k / samples * 100:.1f}% `{f}`" for i, (f, k) in enumerate(ecsd[:n], 1)]
    return out


def _library(frame: str) -> str:
    path = frame.rsplit("(", 1)[-1]
    for lib in ("ecsd", "sqlalchemy", "starlette", "uvicorn", "pydantic", "httptools", "uvloop", "orjson",
                "psycopg", "anyio"):
        if path.startswith((lib + "/", lib + "_")):
            return lib
    return "Python stdlib and C"


# --- markdown -----------------------------------------------------------------------------------------

_METHOD = """\
- **Load generator**: [wrk](https://github.com/wg/wrk) 4 with Lua scripts (`bench/lua/`), 32 connections,
  one wrk thread, keep-alive, closed loop (each connection sends its next request when the previous
  answer arrived, so latencies are those of a saturated server, without coordinated-omission
  correction). The scripts count 2xx responses whose body holds what it must (`job_id`, `status`,
  `servers`) separately from non-2xx responses, per status code, and print one JSON summary (rate,
  p50/p90/p99/p99.9/max latency). Every run is bounded with `wrk -d`; each measured run follows a
  short warm-up run.
- **Pinning**: the measured process runs on core 0 (`taskset -c 0`), wrk and the driver script on
  core 1 (`taskset -c 1`), so the load generator does not take CPU from the server.
- **Processes**: real `ecsd serve` / `ecsd worker` processes started from the virtualenv's Python,
  listening on 127.0.0.1 only, each ended by its PID (SIGTERM, then SIGKILL); every data directory is
  temporary and removed at the end, the PostgreSQL schema `ecsd_bench_<random>` is dropped.
- **Data**: a first short `ecsd serve` makes the data directory (migrations, demo tenant,
  `credentials.json`); it is stopped, and `bench/seed.py` inserts servers (with their system-disk
  volume rows) and jobs directly with SQLAlchemy Core bulk inserts (executemany, ~5,000 rows per
  transaction), with the column values the application writes (and what it keeps beside them, such
  as a project's server count). Every seeded data set must pass the application's own consistency
  checks (`ecsd.domain.invariants.check_all`), or the scenario fails. Seeded databases are copied
  for each scenario and never committed. Authentication is a Keystone token from
  `POST /v3/auth/tokens`.
- **Other load**: during each measured run the suite reads core 0's counters in `/proc/stat` and the
  server's own CPU time in `/proc/PID/stat`; what other processes took from the server's core is
  reported (per run in the details, the maximum above). Numbers from a run where that is more
  than a few percent are noisy.

Scenarios:

1. **Change-OS acceptance**: `POST /v1/{project_id}/cloudservers/{server_id}/changeos` (change to
   Debian 12 with an admin password) on distinct stopped servers: the Lua script walks a shuffled
   list of server ids, a disjoint share per wrk thread, so no request repeats a server. Accepted =
   200 with a `job_id`. The server runs **`ecsd serve --no-worker`**: this measures acceptance only,
   the jobs stay INIT (their count in the database is checked against the accepted count).
   `GET /healthz` on the same process in the same run is the baseline of the ratio. *1b* repeats the
   run on a fresh copy with the in-process worker (default `ECSD_SIM_DELAY=0.3`), informative only.
   With `--postgres`, the same on PostgreSQL (a fresh schema, `ANALYZE`d after seeding, as
   autovacuum would), target ≥ 1,200/s.
2. **Job status**: `GET /v1/{project_id}/jobs/{job_id}` cycling over 1,000 job ids sampled at random
   from 1,000,000 stored finished change-OS jobs (single jobs, not batches: 1,000 per server over
   1,000 servers, each server's jobs a chain of disks ending at its system disk), and the same with
   1,000 jobs stored; "no slower" is read as the 1M throughput being at least 0.9 of the 1k throughput.
   Here and in scenarios 4 and 5 the server is a plain `ecsd serve`, with its in-process job worker
   (idle: it only polls for jobs every 0.5 s), as it is deployed by default.
3. **Job engine**: 10,000 stopped servers; one `ecsd worker` process is started and ready, then one
   transaction submits 10,000 change-OS jobs exactly as `changeos.accept` would (the gate taken on
   each server, the job INIT with the same params). Time is measured from the jobs' `created_at`
   (start of the submitting transaction) to the last job's `end_time`, with `SELECT count(*) FROM
   jobs WHERE status IN ('INIT','RUNNING')` polled every 0.2 s to see the end. With
   `ECSD_SIM_DELAY=1` a stopped server's change OS spends 6 s in the driver (create disk, inject,
   detach + attach, delete old disk, start); the target is 6 s + 10 s. With `ECSD_SIM_DELAY=0` the
   rate is jobs / that time.
4. **Listing**: `GET /v1/{project_id}/cloudservers/detail?limit=100&offset=PAGE` with 100,000 servers
   (`offset` is a page number): page 1, the middle page and the last page, each its own wrk run.
5. **Start-up and memory**: spawn of `ecsd serve` (with its worker) on the 100,000 servers until
   `/healthz` answers 200, median of 3; resident memory is the server's peak `VmHWM` from
   `/proc/PID/status` after scenario 1's runs.
"""


KEEP = "<!-- bench/run.py keeps what follows: the sections of bench/hostile.py and bench/fuzz.py -->"


def write_doc(path: str, run: Run) -> None:
    """Write the suite's part of ``path`` and keep what follows :data:`KEEP` in the file there now."""
    kept = ""
    try:
        with open(path) as fh:
            old = fh.read()
        if KEEP in old:
            kept = old[old.index(KEEP):]
    except FileNotFoundError:
        pass
    with open(path, "w") as fh:
        fh.write(markdown(run).rstrip("\n") + "\n\n" + (kept or KEEP + "\n"))


def markdown(run: Run) -> str:
    m = run.machine
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py` (with `bench/seed.py`, `bench/report.py` and the wrk scripts in",
        "`bench/lua/`); rerun it rather than editing this file. The targets are those of the issue",
        "\"Fast at scale\". The numbers are measured, not tuned for: a miss says by how much.",
        "",
        "## Run it",
        "",
        "```sh",
        ".venv/bin/python bench/run.py              # full suite, writes this file",
        ".venv/bin/python bench/run.py --postgres   # ... plus scenario 1 on PostgreSQL (127.0.0.1:5432, database test)",
        ".venv/bin/python bench/run.py --quick      # smoke test: small data sets, 3 s runs (prints only)",
        ".venv/bin/python bench/run.py --only 1,2   # some scenarios (prints only unless --doc FILE)",
        ".venv/bin/python bench/run.py --profile    # also py-spy profiles of the server (scenarios 1, 2 and 4)",
        "```",
        "",
        "Needs `wrk` (Debian package `wrk`) and, for `--postgres`, PostgreSQL on 127.0.0.1:5432 with trust",
        "auth for user `postgres` and a database `test`. Load goes only to 127.0.0.1; every run is bounded.",
        "",
        "## Results",
        "",
        f"- **Date**: {run.date}",
        f"- **Command**: `{run.command}`" + (" (quick: small data sets, short runs)" if run.quick else ""),
        f"- **Duration of the whole run**: {run.seconds / 60:.1f} min ({run.seconds:.0f} s)",
        f"- **Pinning**: {run.pinning}",
        f"- **Other load on the machine**: {m.get('interference', 'not measured')}; {m.get('load', '')}",
        "",
        "| Scenario | Metric | Target | Measured | Result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in ordered(run.rows):
        result = "pass" if r.passed else ("**MISS**" if r.passed is False else "—")
        if r.miss:
            result += f": {r.miss}"
        if r.note:
            result += f" ({r.note})"
        lines.append(f"| {r.scenario} | {r.metric} | {target_text(r)} | {fmt(r.value, r.unit)} | {result} |")
    lines.append("")
    misses = [r for r in ordered(run.rows) if r.passed is False]
    passes = [r for r in run.rows if r.passed]
    lines.append(f"{len(passes)} of {len(passes) + len(misses)} targets met.")
    if misses:
        lines += ["", "Missed targets:", ""]
        lines += [f"- {r.scenario}, {r.metric}: {fmt(r.value, r.unit)} against {target_text(r)}, {r.miss}."
                  for r in misses]
    if run.failures:
        lines += ["", "Scenarios that failed to run:", ""] + [f"- {f}" for f in run.failures]
    lines += ["", "### Details", ""]
    for scenario, items in sorted(run.details.items(), key=lambda kv: _order(kv[0])):
        lines.append(f"**{scenario}**")
        lines.append("")
        lines += [f"- {d}" for d in items]
        lines.append("")
    if run.notes:
        lines += ["**Seeding**", ""] + [f"- {n}" for n in run.notes] + [""]
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):   # hand-written: why the misses are misses, what was done, what is next
        with open(analysis, encoding="utf-8") as fh:
            lines += [fh.read().rstrip(), ""]
    if run.profile:
        lines += ["## Profiles", "",
                  "Recorded with `--profile`: py-spy (200 Hz, on wrk's core) on the server during an",
                  "extra wrk run after the measured one. Time in C code is counted in the Python frame that",
                  "called it: SQLAlchemy's `do_execute` / `do_commit` are SQLite (or psycopg) at work,",
                  "uvicorn's `RequestResponseCycle.send` is the socket write.", ""]
        for what, frames in sorted(run.profile.items(), key=lambda kv: kv[0].split(":")[0]):
            lines += [f"### {what}", ""] + frames + [""]
    lines += [
        "## Machine",
        "",
        f"- **CPUs**: {m.get('nproc')} (`nproc`), {m.get('cpu')}",
        f"- **Memory**: {m.get('memory')}",
        f"- **OS**: {m.get('kernel')}",
        f"- **Python**: {m.get('python')}",
        f"- **SQLite**: {m.get('sqlite')}",
        f"- **PostgreSQL**: {m.get('postgresql')}",
        f"- **Load generator**: {m.get('wrk')}",
    ]
    if m.get("libraries"):
        lines.append(f"- **Libraries**: {m['libraries']}")
    if m.get("code"):
        lines.append(f"- **Code**: {m['code']}")
    lines += ["", "## Method", "", _METHOD]
    lines += [
        "## Soak test",
        "",
        "`bench/soak.py` is a separate script: change-OS load on real processes killed with SIGKILL at",
        "random moments for minutes, then every invariant checked (`.venv/bin/python bench/soak.py",
        "--minutes 5`, or `--postgres --workers 2`). It measures robustness, not speed, and is not part",
        "of this suite.",
        "",
    ]
    return "\n".join(lines)


def as_dict(run: Run) -> dict[str, Any]:
    d = asdict(run)
    for row, raw in zip(run.rows, d["rows"]):
        raw["passed"] = row.passed
        raw["miss"] = row.miss
    return d


def from_dict(d: dict[str, Any]) -> Run:
    rows = [Row(**{k: v for k, v in r.items() if k not in ("passed", "miss")}) for r in d.pop("rows")]
    return Run(rows=rows, **d)


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    with open(sys.argv[1]) as fh:
        run = from_dict(json.load(fh))
    print(table(run.rows))
    if len(sys.argv) == 3:
        write_doc(sys.argv[2], run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
