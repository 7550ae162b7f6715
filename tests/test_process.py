"""The real `ecsd` command: first start, credentials, restart persistence, and a job surviving kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import httpx
import pytest

from tests import support as s

pytestmark = pytest.mark.slow
ECSD = [sys.executable, "-m", "ecsd"]


def read_json(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One `ecsd serve` process on a free loopback port; ended by its own PID only."""

    def __init__(self, data_dir: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ECSD + ["serve", "--port", str(self.port), "--data-dir", data_dir],
            env={**os.environ, "ECSD_SIM_DELAY": "0", **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ecsd exited: {self.proc.stdout.read()}")
            try:
                httpx.get(self.base + "/", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError("ecsd did not start in 20 s")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return out

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)


class Client:
    def __init__(self, base: str, creds: dict) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.pid = creds["project_id"]
        r = self.http.post("/v3/auth/tokens", json=s.token_request(creds))
        assert r.status_code == 201, r.text
        self.http.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.http.post(path.replace("{pid}", self.pid), json=body)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path.replace("{pid}", self.pid))

    def wait(self, job_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/{{pid}}/jobs/{job_id}").json()
            if job["status"] in ("SUCCESS", "FAIL"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not finished: {job}")

    def create(self) -> str:
        body = {"server": {"name": "p", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                           "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
        job = self.wait(self.post("/v1/{pid}/cloudservers", body).json()["job_id"])
        assert job["status"] == "SUCCESS", job
        return job["entities"]["sub_jobs"][0]["entities"]["server_id"]


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
        sid = client.create()
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
        sid = client.create()
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
