"""Soak: change-OS load on real processes killed with SIGKILL at random moments, for minutes.

    .venv/bin/python bench/soak.py --minutes 5                       # SQLite, one node
    .venv/bin/python bench/soak.py --minutes 5 --postgres --workers 2

Bounded in time (and it stops by itself); traffic goes only to 127.0.0.1. Prints what was accepted,
how often processes were killed, and every invariant violation found afterwards (exit code 1 if any).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.crash_harness import run

PG = "postgresql://postgres@127.0.0.1:5432/test"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="load duration (at most 60)")
    ap.add_argument("--servers", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=5000, help="stop accepting after this many jobs")
    ap.add_argument("--postgres", action="store_true", help="use PostgreSQL on 127.0.0.1:5432 (database test)")
    ap.add_argument("--workers", type=int, default=0, help="separate worker processes (API runs --no-worker)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    seconds = min(max(args.minutes, 0.1), 60.0) * 60
    url, schema = None, None
    if args.postgres:
        import psycopg

        schema = "ecsd_soak_" + uuid.uuid4().hex[:8]
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        url = f"{PG}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory(prefix="ecsd-soak-") as data_dir:
            out = run(data_dir, database_url=url, workers=args.workers, servers=args.servers, seconds=seconds,
                      target_jobs=args.jobs, seed=args.seed, settle=300)
    finally:
        if schema:
            import psycopg

            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
    print(f"database        {'PostgreSQL' if url else 'SQLite'}, {args.workers or 'in-process'} worker(s)")
    print(f"duration        {out.seconds:.0f} s")
    print(f"accepted jobs   {len(out.accepted)}  (outcomes: {out.statuses})")
    print(f"refused (busy)  {out.refused}")
    print(f"kills           {out.kills}")
    print(f"violations      {len(out.violations)}")
    for v in out.violations[:50]:
        print("  -", v)
    return 1 if out.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
