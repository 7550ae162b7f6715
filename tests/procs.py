"""Real `ecsd` processes for tests and benchmarks: started on free loopback ports, ended by their own PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests import support as s

ECSD = [sys.executable, "-m", "ecsd"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_json(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


class Proc:
    """One `ecsd serve` (API, with or without worker) or `ecsd worker` process."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, port: int | None = None,
                 log_path: str | None = None) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}" if port else None
        self.log = open(log_path, "ab") if log_path else subprocess.PIPE  # noqa: SIM115
        self.proc = subprocess.Popen(ECSD + args, env={**os.environ, **(env or {})}, stdout=self.log,
                                     stderr=subprocess.STDOUT, text=log_path is None)
        if port:
            self._wait_ready()

    @classmethod
    def serve(cls, data_dir: str, env: dict[str, str] | None = None, port: int | None = None,
              extra: list[str] | None = None, log_path: str | None = None) -> Proc:
        port = port or free_port()
        return cls(["serve", "--port", str(port), "--data-dir", data_dir, *(extra or [])], env, port, log_path)

    @classmethod
    def worker(cls, data_dir: str, env: dict[str, str] | None = None, extra: list[str] | None = None,
               log_path: str | None = None) -> Proc:
        return cls(["worker", "--data-dir", data_dir, *(extra or [])], env, None, log_path)

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.log is subprocess.PIPE else "(see log)"
                raise AssertionError(f"ecsd exited with {self.proc.returncode}: {out}")
            try:
                if httpx.get(self.base + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"ecsd did not answer within {timeout} s")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM and wait: a graceful shutdown."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        self._close()
        return out or ""

    def kill(self) -> None:
        """SIGKILL: a crash at an arbitrary moment."""
        if self.alive:
            self.proc.kill()
        self.proc.communicate(timeout=10)
        self._close()

    def _close(self) -> None:
        if self.log is not subprocess.PIPE:
            self.log.close()


class Client:
    """Token-authenticated calls; ``{pid}`` in a path is the project id."""

    def __init__(self, base: str, creds: dict, timeout: float = 10) -> None:
        self.http = httpx.Client(base_url=base, timeout=timeout)
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
        job: dict = {}
        while time.monotonic() < deadline:
            job = self.get(f"/v1/{{pid}}/jobs/{job_id}").json()
            if job["status"] in ("SUCCESS", "FAIL"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not finished: {job}")

    def request(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return self.http.request(method, path.replace("{pid}", self.pid), json=body)

    def create(self, count: int = 1, data_disk: bool = False) -> list[str]:
        body = {"server": {"name": "p", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                           "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
                           "count": count}}
        if data_disk:
            body["server"]["data_volumes"] = [{"volumetype": "SSD", "size": 10}]
        job = self.wait(self.post("/v1/{pid}/cloudservers", body).json()["job_id"], timeout=120)
        assert job["status"] == "SUCCESS", job
        return [sub["entities"]["server_id"] for sub in job["entities"]["sub_jobs"]]

    def data_disks(self, server_ids: list[str]) -> list[str]:
        """The ids of the data disks attached to these servers (their system disks left out)."""
        out = []
        for sid in server_ids:
            server = self.get(f"/v1/{{pid}}/cloudservers/{sid}").json()["server"]
            root = server["OS-EXT-SRV-ATTR:root_device_name"]
            out += [v["id"] for v in server["os-extended-volumes:volumes_attached"] if v.get("device") != root]
        return out
