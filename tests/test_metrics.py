"""GET /metrics (ecsd/metrics.py, docs/operations.md "Metrics"): parsed with the client library's own
parser; requests by route template (never ids), job counters and step histograms, queue gauges, lease
take-overs, driver errors, bounded series, and an `ecsd worker` process's own metrics port."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from ecsd.app import create_app, operator_credentials
from ecsd.domain.changeos import JOB_TYPES
from ecsd.engine.engine import submit
from ecsd.store.db import Store
from tests import support as s
from tests.procs import Client, Proc, free_port
from tests.support import Api

SERVER = "/v1/{project_id}/cloudservers/{server_id}"
CHANGEOS = SERVER + "/changeos"
CHANGEOS_STEPS = [step.name for step in next(jt for jt in JOB_TYPES if jt.name == "changeOS").steps]


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of GET /metrics: (name, labels) -> value."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: dict, route: str, method: str, status: int) -> float:
    return value(samples, "ecsd_http_request_duration_seconds_count", route=route, method=method, status=str(status))


def stopped_server(api: Api) -> str:
    sid = api.create_servers(s.UBUNTU)[0]
    api.stop(sid)
    return sid


def change_os(api: Api, sid: str) -> str:
    r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {"imageid": s.DEBIAN}})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


# --- HTTP ------------------------------------------------------------------------------------------------

def test_requests_count_by_route_template_and_series_stay_bounded(client, api):
    before = scrape(client)
    for _ in range(5):
        assert api.get(f"/v1/{{pid}}/cloudservers/{uuid.uuid4()}").status_code == 404
        assert client.get(f"/no-such-path/{uuid.uuid4().hex}").status_code == 404
    assert client.get("/healthz").status_code == 200
    after = scrape(client)
    assert requests(after, SERVER, "GET", 404) - requests(before, SERVER, "GET", 404) == 5
    assert requests(after, "unmatched", "GET", 404) - requests(before, "unmatched", "GET", 404) == 5
    assert requests(after, "/healthz", "GET", 200) - requests(before, "/healthz", "GET", 200) == 1
    # the histogram is consistent: +Inf bucket = count, and the latency sum is positive
    labels = {"route": SERVER, "method": "GET", "status": "404"}
    assert value(after, "ecsd_http_request_duration_seconds_bucket", le="+Inf", **labels) == \
        requests(after, SERVER, "GET", 404)
    assert value(after, "ecsd_http_request_duration_seconds_sum", **labels) > 0
    # no label value is an id or a raw path: templates, methods, statuses only
    routes = {dict(labels)["route"] for name, labels in after if name.startswith("ecsd_http_")}
    assert all(r == "unmatched" or r.startswith("/") for r in routes)
    assert not any(api.pid in r or "no-such-path" in r for r in routes), routes

    # many more distinct ids (and a method no route serves): not one series more
    series = len(after)
    for _ in range(30):
        api.get(f"/v1/{{pid}}/cloudservers/{uuid.uuid4()}")
        client.get(f"/no-such-path/{uuid.uuid4().hex}")
    assert client.request("BREW", "/healthz").status_code in (400, 405)
    final = scrape(client)
    assert requests(final, SERVER, "GET", 404) - requests(after, SERVER, "GET", 404) == 30
    new = {k for k in final if k not in after}
    assert all(dict(labels).get("method") == "other" for _, labels in new), new
    assert len(final) - series <= 16          # the one series of method "other" (its buckets, sum, count)


# --- jobs ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", ["sqlite", "postgresql"], indirect=True)
def test_change_os_moves_job_counters_and_step_histograms(client, api):
    sid = stopped_server(api)
    before = scrape(client)
    job = api.wait_job(change_os(api, sid))
    assert job["status"] == "SUCCESS"
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ecsd_jobs_accepted_total", job_type="changeOS") == 1
    assert delta("ecsd_jobs_claimed_total", job_type="changeOS") == 1
    assert delta("ecsd_jobs_finished_total", job_type="changeOS", status="SUCCESS") == 1
    assert delta("ecsd_jobs_finished_total", job_type="changeOS", status="FAIL") == 0
    assert value(after, "ecsd_jobs_running", job_type="changeOS") == 0
    for step in CHANGEOS_STEPS:
        assert delta("ecsd_job_step_duration_seconds_count", job_type="changeOS", step=step) == 1, step
    assert requests(after, CHANGEOS, "POST", 200) - requests(before, CHANGEOS, "POST", 200) == 1
    # the jobs of create and stop were counted too (by their own types), and every job that was
    # accepted here was claimed and finished here (one process)
    assert value(after, "ecsd_jobs_accepted_total", job_type="createServer") == 1
    assert value(after, "ecsd_worker_up") == 1
    assert value(after, "ecsd_db_pool_checked_out") >= 0 and value(after, "ecsd_db_pool_max") > 0
    assert value(after, "ecsd_jobs_queued") == 0


def test_a_failed_step_counts_a_driver_error_and_a_failed_job(client, api, settings):
    sid = stopped_server(api)
    op = {"X-Ecsd-Operator-Token": operator_credentials(settings)["operator_token"]}
    r = client.post("/_ecsd/faults", json={"operation": "changeOS", "step": "create_disk", "code": "Ecs.0202"},
                    headers=op)
    assert r.status_code == 201, r.text
    before = scrape(client)
    assert api.wait_job(change_os(api, sid))["status"] == "FAIL"
    after = scrape(client)
    labels = {"job_type": "changeOS", "step": "create_disk", "kind": "failed"}
    assert value(after, "ecsd_driver_errors_total", **labels) - value(before, "ecsd_driver_errors_total", **labels) == 1
    fail = {"job_type": "changeOS", "status": "FAIL"}
    assert value(after, "ecsd_jobs_finished_total", **fail) - value(before, "ecsd_jobs_finished_total", **fail) == 1
    # the step before it finished; the failed one has no duration
    assert value(after, "ecsd_job_step_duration_seconds_count", job_type="changeOS", step="stop") == 1
    assert value(after, "ecsd_job_step_duration_seconds_count", job_type="changeOS", step="create_disk") == 0


def test_held_jobs_are_running_not_queued(client, api):
    sid = stopped_server(api)
    with s.held(api):
        job_id = change_os(api, sid)
        deadline = time.monotonic() + 5
        while value(samples := scrape(client), "ecsd_jobs_running", job_type="changeOS") != 1:
            assert time.monotonic() < deadline, "the job was not claimed"
            time.sleep(0.02)
        assert value(samples, "ecsd_jobs_queued") == 0
        assert value(samples, "ecsd_jobs_oldest_queued_age_seconds") == 0
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    assert value(scrape(client), "ecsd_jobs_running", job_type="changeOS") == 0


def test_queue_gauges_and_a_lease_take_over(settings, creds):
    """An API without a worker: accepted jobs wait (depth, age); a job whose worker's lease expired
    is claimed by the next worker as a take-over. Three apps in one process: registries apart."""
    with TestClient(create_app(settings)) as c:
        sids = [stopped_server(Api(c, creds)) for _ in range(2)]
    settings.run_worker = False
    with TestClient(create_app(settings)) as c:
        api = Api(c, creds)
        jobs = [change_os(api, sid) for sid in sids]
        time.sleep(0.3)
        samples = scrape(c)
        assert value(samples, "ecsd_jobs_queued") == 2
        assert 0.3 <= value(samples, "ecsd_jobs_oldest_queued_age_seconds") < 30
        assert value(samples, "ecsd_jobs_accepted_total", job_type="changeOS") == 2
        assert value(samples, "ecsd_worker_up") == 0
        assert value(samples, "ecsd_jobs_claimed_total", job_type="changeOS") == 0
        # one of them was running on a worker that died: its lease has expired
        s.sql(c, "UPDATE jobs SET status = 'RUNNING', owner = 'dead-worker', lease_until = 0, attempts = 1 "
                 "WHERE job_id = :j", j=jobs[0])
        assert value(scrape(c), "ecsd_jobs_queued") == 1
    settings.run_worker = True
    with TestClient(create_app(settings)) as c:
        api = Api(c, creds)
        assert {api.wait_job(j)["status"] for j in jobs} == {"SUCCESS"}
        samples = scrape(c)
        assert value(samples, "ecsd_job_lease_takeovers_total", job_type="changeOS") == 1
        assert value(samples, "ecsd_jobs_claimed_total", job_type="changeOS") == 2
        assert value(samples, "ecsd_jobs_accepted_total", job_type="changeOS") == 0     # accepted elsewhere
        assert value(samples, "ecsd_jobs_queued") == 0


def test_only_committed_jobs_count_as_accepted(settings):
    """A call that raises after submitting (a batch refused half-way) counts nothing, also inside an
    SQLite group commit shared with a call that succeeds."""
    store = Store(settings.url)

    def accept(conn, fail: bool) -> None:
        submit(conn, job_id=uuid.uuid4().hex, project_id="p" * 32, job_type="metricsTest", server_id=None,
               runnable=False)
        if fail:
            raise RuntimeError("refused after the submit")

    async def both() -> list:
        return await asyncio.gather(store.run(accept, False), store.run(accept, True), return_exceptions=True)

    try:
        ok, failed = asyncio.run(both())
        assert ok is None and isinstance(failed, RuntimeError)
        assert store.accepted_jobs["metricsTest"] == 1
        store.run_sync(accept, False)
        with pytest.raises(RuntimeError):
            store.run_sync(accept, True)
        assert store.accepted_jobs["metricsTest"] == 2
    finally:
        store.close()


# --- a worker process (PostgreSQL) ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_worker_process_serves_its_own_metrics(settings, creds):
    """An API process (no worker) and an `ecsd worker` on one PostgreSQL database: each its own metrics."""
    db = ["--database-url", settings.database_url]
    env = {"ECSD_SIM_DELAY": "0", "ECSD_SECRET_KEY": settings.secret_key}
    port = free_port()
    api = worker = None
    try:
        api = Proc.serve(settings.data_dir, env, extra=[*db, "--no-worker"])
        worker = Proc.worker(settings.data_dir, env, [*db, "--name", "w1", "--metrics-port", str(port)])
        client = Client(api.base, creds)
        sid = client.create(1)[0]
        assert sid
        deadline = time.monotonic() + 10
        while True:      # the worker's scrape is on its own port, on 127.0.0.1
            try:
                theirs = scrape(httpx.Client(base_url=f"http://127.0.0.1:{port}"))
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and worker.alive, "no metrics port"
                time.sleep(0.1)
        ours = scrape(client.http)
        assert value(theirs, "ecsd_worker_up") == 1
        assert value(theirs, "ecsd_jobs_finished_total", job_type="createSingleServer", status="SUCCESS") == 1
        assert value(theirs, "ecsd_jobs_claimed_total", job_type="createSingleServer") == 1
        steps = [k for k in theirs if k[0] == "ecsd_job_step_duration_seconds_count"
                 and ("job_type", "createSingleServer") in k[1]]
        assert len(steps) >= 2 and all(theirs[k] == 1 for k in steps), steps
        assert value(theirs, "ecsd_jobs_accepted_total", job_type="createServer") == 0
        assert value(theirs, "ecsd_jobs_queued") == 0
        assert value(theirs, "ecsd_db_pool_max") > 0
        assert not any(name.startswith("ecsd_http_") for name, _ in theirs)
        assert value(ours, "ecsd_worker_up") == 0
        assert value(ours, "ecsd_jobs_accepted_total", job_type="createServer") == 1
        assert value(ours, "ecsd_jobs_claimed_total", job_type="createSingleServer") == 0
    finally:
        for proc in (worker, api):
            if proc is not None:
                proc.stop()


def test_the_same_text_is_valid_for_a_scraper(client):
    """Every family has HELP and TYPE, and names follow Prometheus' conventions."""
    body = client.get("/metrics").text
    families = list(text_string_to_metric_families(body))
    names = {f.name for f in families}
    assert {"ecsd_http_request_duration_seconds", "ecsd_jobs_accepted", "ecsd_jobs_queued",
            "ecsd_job_step_duration_seconds", "ecsd_db_pool_checked_out", "process_cpu_seconds"} <= names
    for family in families:
        assert family.documentation, family.name
        assert f"# TYPE {family.name}" in body or f"# TYPE {family.name}_total" in body


# --- JSON logs (ecsd serve/worker --log-format json) ---------------------------------------------------

def test_json_log_records_carry_the_request_id():
    import io
    import json
    import logging

    from ecsd.cli.serve import JsonFormatter
    from ecsd.http.core import RequestIdMiddleware
    from ecsd.metrics import HttpObserver, Metrics

    async def logs_and_fails(scope, receive, send):
        logging.getLogger("ecsd.test").warning("inside %s", "the request")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("ecsd.test").exception("failed")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ecsd.test")
    logger.addHandler(handler)
    try:
        app = RequestIdMiddleware(logs_and_fails, observe=HttpObserver(Metrics(process=False)))
        rid = TestClient(app).get("/anything").headers["X-Request-Id"]       # no lifespan: a bare ASGI app
        logger.warning("outside any request")
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["request_id"] == rid and first["message"] == "inside the request"
    assert first["level"] == "WARNING" and first["logger"] == "ecsd.test" and first["time"].endswith("Z")
    assert second["request_id"] == rid and "ValueError: boom" in second["exception"]
    assert "request_id" not in third
