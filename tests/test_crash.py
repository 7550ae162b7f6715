"""Nothing lost: change-OS jobs (and a mix with resize, attach and detach) on real processes killed
with SIGKILL at random moments.

Afterwards every accepted job has ended, every server has exactly one system disk holding its image,
no disk is orphaned in the database or the driver, and no two driver operations on one server or disk
overlapped (no job ran twice at once). See tests/crash_harness.py.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import PG_URL, _postgres_unreachable
from tests.crash_harness import run

pytestmark = pytest.mark.slow


def _report(outcome) -> str:
    return (f"{len(outcome.accepted)} accepted, {outcome.refused} refused (busy), {outcome.unreachable} "
            f"unreachable, {outcome.kills} kills, "
            f"{outcome.statuses}, {outcome.seconds:.1f} s; violations: {outcome.violations[:10]}")


def test_sqlite_mixed_operations_survive_kill_9(tmp_path):
    """One node on SQLite: change OS, resize, attach and detach of data disks between servers, with kills
    in between. Every job ends, every server has one system disk with the image of its last successful
    change and the flavor of its last successful resize, every disk is attached to one server or none.
    The PostgreSQL test below runs the same mix across an API process and two workers."""
    outcome = run(str(tmp_path), servers=20, seconds=20, target_jobs=250, seed=5, mixed=True)
    assert outcome.violations == [], _report(outcome)
    assert len(outcome.accepted) >= 50, _report(outcome)
    assert outcome.kills >= 3, _report(outcome)
    assert sum(outcome.statuses.values()) == len(outcome.accepted), _report(outcome)


def test_postgresql_api_and_two_workers_survive_kill_9(tmp_path):
    reason = _postgres_unreachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = "ecsd_crash_" + uuid.uuid4().hex[:8]
    conninfo = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        os.environ.setdefault("ECSD_SECRET_KEY", "")
        outcome = run(str(tmp_path), database_url=f"{PG_URL}?options=-csearch_path%3D{schema}", workers=2,
                      servers=30, seconds=15, target_jobs=250, seed=11, mixed=True)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    assert outcome.violations == [], _report(outcome)
    assert len(outcome.accepted) >= 50, _report(outcome)
    assert outcome.kills >= 3, _report(outcome)
    assert sum(outcome.statuses.values()) == len(outcome.accepted), _report(outcome)
