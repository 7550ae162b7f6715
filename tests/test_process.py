"""The real `ecsd` command: first start, credentials, restart persistence, and a job surviving kill -9."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

import pytest

from tests import support as s
from tests.procs import ECSD, Client, Proc, free_port, read_json

pytestmark = pytest.mark.slow


class Server(Proc):
    """`ecsd serve` with the simulated driver at zero delay unless the test says otherwise."""

    def __init__(self, data_dir: str, env: dict[str, str] | None = None) -> None:
        port = free_port()
        super().__init__(["serve", "--port", str(port), "--data-dir", data_dir],
                         {"ECSD_SIM_DELAY": "0", **(env or {})}, port)


def test_first_start_writes_credentials_and_data_survives_restart(tmp_path):
    data = str(tmp_path / "data")
    server = Server(data)
    try:
        path = os.path.join(data, "credentials.json")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        creds = read_json(path)
        for key in ("domain_name", "user_name", "password", "project_id", "project_name"):
            assert creds[key]
        client = Client(server.base, creds)
        sid = client.create()[0]
    finally:
        out = server.stop()
    assert "credentials written" in out and "curl" in out
    assert server.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown

    again = Server(data)
    try:
        assert read_json(os.path.join(data, "credentials.json")) == creds  # not seeded twice
        client = Client(again.base, creds)
        r = client.get(f"/v1/{{pid}}/cloudservers/{sid}")
        assert r.status_code == 200 and r.json()["server"]["status"] == "ACTIVE"
    finally:
        out = again.stop()
    assert "credentials written" not in out


def test_accepted_change_os_finishes_after_kill_9(tmp_path):
    data = str(tmp_path / "data")
    env = {"ECSD_SIM_DELAY": "0.4", "ECSD_LEASE_SECONDS": "2"}
    server = Server(data, env)
    try:
        creds = read_json(os.path.join(data, "credentials.json"))
        client = Client(server.base, creds)
        sid = client.create()[0]
        job_id = client.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                             {"os-change": {"imageid": s.DEBIAN, "mode": "withStopServer"}}).json()["job_id"]
        time.sleep(1.0)  # somewhere in the middle of the steps
        assert client.get(f"/v1/{{pid}}/jobs/{job_id}").json()["status"] == "RUNNING"
    finally:
        server.kill()
    again = Server(data, env)
    try:
        client = Client(again.base, creds)
        job = client.wait(job_id)
        assert job["status"] == "SUCCESS", job
        srv = client.get(f"/v1/{{pid}}/cloudservers/{sid}").json()["server"]
        assert srv["status"] == "ACTIVE" and srv["image"]["id"] == s.DEBIAN
        system = [v for v in srv["os-extended-volumes:volumes_attached"] if v["bootIndex"] == "0"]
        assert len(system) == 1
    finally:
        again.stop()


def test_db_upgrade_and_version(tmp_path):
    out = subprocess.run(ECSD + ["db", "upgrade", "--data-dir", str(tmp_path / "d")], capture_output=True,
                         text=True, check=True).stdout
    assert "upgraded" in out
    out = subprocess.run(ECSD + ["db", "upgrade", "--data-dir", str(tmp_path / "d")], capture_output=True,
                         text=True, check=True).stdout
    assert "upgraded" not in out and "schema at" in out
    out = subprocess.run(ECSD + ["--version"], capture_output=True, text=True, check=True).stdout
    assert "ecsd" in out


def test_bad_sim_delay_is_refused(tmp_path):
    r = subprocess.run(ECSD + ["serve", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())],
                       env={**os.environ, "ECSD_SIM_DELAY": "soon"}, capture_output=True, text=True, timeout=30,
                       check=False)
    assert r.returncode != 0
    assert "ECSD_SIM_DELAY" in r.stderr + r.stdout


def test_worker_stops_gracefully_and_hands_jobs_back(tmp_path):
    """SIGTERM on a worker: it exits within its grace period; its unfinished jobs are finished by another."""
    data = str(tmp_path / "data")
    api = Server(data, {"ECSD_SIM_DELAY": "0"})
    env = {"ECSD_SIM_DELAY": "1.0", "ECSD_LEASE_SECONDS": "30"}
    try:
        creds = read_json(os.path.join(data, "credentials.json"))
        client = Client(api.base, creds)
        sids = client.create(3)
        api.stop()
        api = Proc.serve(data, env, extra=["--no-worker"])
        client = Client(api.base, creds)
        first = Proc.worker(data, env, ["--name", "first", "--grace", "0.2"])
        jobs = [client.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                            {"os-change": {"imageid": s.DEBIAN, "mode": "withStopServer"}}).json()["job_id"]
                for sid in sids]
        time.sleep(2.5)   # the worker is inside the jobs' one-second steps
        started = time.monotonic()
        first.stop(timeout=20)
        assert time.monotonic() - started < 10          # bounded: grace plus a moment
        assert {client.get(f"/v1/{{pid}}/jobs/{j}").json()["status"] for j in jobs} == {"RUNNING"}
        # Handed back: another worker resumes them at once, without waiting out the 30 s lease.
        second = Proc.worker(data, {**env, "ECSD_SIM_DELAY": "0"}, ["--name", "second"])
        try:
            assert {client.wait(j, timeout=15)["status"] for j in jobs} == {"SUCCESS"}
        finally:
            second.stop()
    finally:
        api.stop()
