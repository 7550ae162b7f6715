"""Job leases under unlucky timing, on SQLite and PostgreSQL: a late heartbeat never runs a job twice in
its worker, a job whose checkpoint the database refused is resumed while its worker lives, and a worker
that cannot renew its leases starts no more driver work.

The database is disturbed the way an operator with database access could: a lease set back (what a
late heartbeat leaves), and triggers that refuse one checkpoint or every lease renewal.
"""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app
from tests import support as s
from tests.support import Api

BOTH_DATABASES = True
LEASE = 2.0
CHANGE_OS_STEPS = ["stop", "create_disk", "inject", "swap_disk", "delete_old_disk", "start"]


@pytest.fixture
def client(settings):
    settings.lease_seconds = LEASE        # heartbeats every 0.67 s; half a lease is 1 s
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def change_os(api: Api, sid: str) -> str:
    r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                 {"os-change": {"adminpass": "Test-Passw0rd!", "imageid": s.DEBIAN}})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def stopped_server(api: Api) -> str:
    sid = api.create_servers(s.UBUNTU)[0]
    api.stop(sid)
    return sid


def row(client, job_id: str) -> dict:
    r = s.sql(client, "SELECT status, step, attempts, owner, events FROM jobs WHERE job_id = :j", j=job_id).one()
    return dict(r._mapping)


def steps_recorded(client, job_id: str) -> list[str]:
    return [e["step"] for e in json.loads("[" + (row(client, job_id)["events"] or "").rstrip(",") + "]")]


def wait_calls(driver, more_than: int) -> None:
    deadline = time.monotonic() + 5
    while driver.calls <= more_than:
        assert time.monotonic() < deadline, "the job's driver operation never began"
        time.sleep(0.005)


class Trigger:
    """A trigger on ``jobs`` that raises while ``when`` holds for the updated row (both dialects), and
    a one-row table ``lease_trap`` the condition may consult. Dropped on exit (the PostgreSQL schema is
    shared by the session's tests)."""

    def __init__(self, client, columns: str, when: str) -> None:
        self.client, self.columns, self.when = client, columns, when
        self.sqlite = client.app.state.services.store.is_sqlite

    def __enter__(self):
        run = self.sql
        run("CREATE TABLE lease_trap (armed INTEGER NOT NULL)")
        run("INSERT INTO lease_trap VALUES (0)")
        if self.sqlite:
            run(f"CREATE TRIGGER lease_test BEFORE UPDATE OF {self.columns} ON jobs WHEN {self.when} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        else:
            run("CREATE FUNCTION lease_test() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {self.when} THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$")
            run(f"CREATE TRIGGER lease_test BEFORE UPDATE OF {self.columns} ON jobs FOR EACH ROW "
                "EXECUTE FUNCTION lease_test()")
        return self

    def arm(self, armed: bool) -> None:
        self.sql("UPDATE lease_trap SET armed = :a", a=int(armed))

    def sql(self, statement: str, **params):
        return s.sql(self.client, statement, **params)

    def __exit__(self, *exc) -> None:
        self.sql("DROP TRIGGER lease_test" + ("" if self.sqlite else " ON jobs"))
        if not self.sqlite:
            self.sql("DROP FUNCTION lease_test()")
        self.sql("DROP TABLE lease_trap")


def test_a_late_heartbeat_never_runs_a_job_twice_in_its_worker(api, client):
    """The worker's heartbeat was late (its lease ran out) while the job still runs there: the worker's
    next claim renews the lease instead of starting the job a second time beside itself."""
    sid, other = stopped_server(api), stopped_server(api)
    driver = client.app.state.services.driver
    with s.held(api):
        calls = driver.calls
        job_id = change_os(api, sid)
        wait_calls(driver, calls)                        # its first act has begun and waits
        s.sql(client, "UPDATE jobs SET lease_until = 0 WHERE job_id = :j", j=job_id)
        r = api.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": other}]}})
        assert r.status_code == 200, r.text              # a submission: the worker claims at once
        time.sleep(0.3)
    s.wait_success(api, job_id, timeout=10)
    assert row(client, job_id)["attempts"] == 1
    assert steps_recorded(client, job_id) == CHANGE_OS_STEPS


def test_a_job_the_database_interrupted_is_resumed_while_its_worker_lives(api, client):
    """The database refuses one checkpoint: the worker hands the job back at once and it is resumed from
    its last checkpoint (the steps before are not run again), not left RUNNING until a restart."""
    sid = stopped_server(api)
    when = "NEW.step = 2 AND OLD.attempts = 1 AND OLD.job_type = 'changeOS'"
    with Trigger(client, "step", when):
        job_id = change_os(api, sid)
        s.wait_success(api, job_id, timeout=4 * LEASE)
    assert row(client, job_id)["attempts"] == 2
    assert steps_recorded(client, job_id) == CHANGE_OS_STEPS
    assert api.server(sid)["image"]["id"] == s.DEBIAN


def test_a_worker_that_cannot_renew_its_leases_starts_no_more_driver_work(api, client):
    """Every lease renewal fails (the database refuses them) while an act runs: the act's step is
    recorded, but the next act does not start on a lease the worker cannot vouch for; the job is
    handed back and resumed once renewals work again."""
    sid = stopped_server(api)
    driver = client.app.state.services.driver
    with Trigger(client, "lease_until", "NEW.lease_until > OLD.lease_until "
                                        "AND (SELECT armed FROM lease_trap) = 1") as trap:
        with s.held(api):
            calls = driver.calls
            job_id = change_os(api, sid)
            wait_calls(driver, calls)
            acting = row(client, job_id)["step"]          # steps recorded before the act that waits
            trap.arm(True)
            time.sleep(LEASE / 2 + 0.2)                  # less than half of the lease is surely left
            calls = driver.calls
        time.sleep(0.5)
        assert driver.calls == calls                     # no second act
        assert row(client, job_id)["step"] == acting + 1     # the act that ran was recorded
        assert api.job(job_id)["status"] == "RUNNING"
        trap.arm(False)
        s.wait_success(api, job_id, timeout=4 * LEASE)
    assert row(client, job_id)["attempts"] == 2
    assert steps_recorded(client, job_id) == CHANGE_OS_STEPS


def test_the_heartbeat_never_waits_for_a_job_row_another_transaction_holds(api, client):
    """PostgreSQL: while one job's row is locked by another transaction (a checkpoint, another worker's
    claim), the heartbeat still renews the worker's other jobs. A heartbeat that waited deadlocked with
    the group commit, and every lease of the worker ran out meanwhile."""
    store = client.app.state.services.store
    if store.is_sqlite:
        pytest.skip("SQLite has no row locks")
    first, second = stopped_server(api), stopped_server(api)
    lease_until = "SELECT lease_until FROM jobs WHERE job_id = :j"
    driver = client.app.state.services.driver
    with s.held(api):
        calls = driver.calls
        locked, other = change_os(api, first), change_os(api, second)
        wait_calls(driver, calls + 1)                    # both are in an act
        with store.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SELECT 1 FROM jobs WHERE job_id = %(j)s FOR UPDATE", {"j": locked})
            before = s.sql(client, lease_until, j=other).scalar()
            deadline = time.monotonic() + 3 * LEASE      # a heartbeat every LEASE / 3
            while s.sql(client, lease_until, j=other).scalar() == before:
                assert time.monotonic() < deadline, "the heartbeat waited for the locked row"
                time.sleep(0.05)
            assert row(client, other)["attempts"] == 1     # renewed by a heartbeat, not claimed again
            conn.rollback()
    s.wait_success(api, locked, timeout=10)
    s.wait_success(api, other, timeout=10)
