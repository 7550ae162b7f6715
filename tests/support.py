"""Test helpers: a thin client that speaks the public HTTP API like a script would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ecsd.domain.seed import image_id

UBUNTU = image_id("Standard_Ubuntu_22.04_latest")
DEBIAN = image_id("Standard_Debian_12_latest")
CENTOS = image_id("Standard_CentOS_7_latest")
EULER = image_id("Standard_EulerOS_2.9_latest")
UBUNTU_UEFI = image_id("Standard_Ubuntu_22.04_UEFI")
WINDOWS = image_id("Standard_Windows_Server_2022_DataCenter")
FEDORA_QUEUED = image_id("Standard_Fedora_40_pending")
DATA_IMAGE = image_id("Data_Disk_Image_100GB")
FAULTY_DISK = image_id("Test_Faulty_Image_disk_creation")
FAULTY_BOOT = image_id("Test_Faulty_Image_boot")
VPC = "3b5a1e2c-8d4f-4e6a-9b7c-1d2e3f4a5b6c"
SUBNET = "7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f"

T = TypeVar("T")


def server_body(image: str = UBUNTU, *, name: str = "srv", flavor: str = "s3.small.1", size: int | None = None,
                key_name: str | None = None, **extra: Any) -> dict:
    """A v1 create body: one NIC on the seeded subnet, an SSD system disk (``extra``: more server fields)."""
    root: dict[str, Any] = {"volumetype": "SSD"}
    if size is not None:
        root["size"] = size
    server: dict[str, Any] = {"name": name, "imageRef": image, "flavorRef": flavor, "vpcid": VPC,
                              "nics": [{"subnet_id": SUBNET}], "root_volume": root, **extra}
    if key_name:
        server["key_name"] = key_name
    return {"server": server}


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run every call in a thread of its own, all released at the same moment (a race); their results in
    the order of the calls. An exception in a call is raised here."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def token_request(creds: dict, password: str | None = None, project: str | None = None) -> dict:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": creds["user_name"], "password": password or creds["password"],
        "domain": {"name": creds["domain_name"]}}}},
        "scope": {"project": {"name": project or creds["project_name"]}}}}


class Api:
    """Authenticated calls against one project; ``{pid}`` in a path is the project id."""

    def __init__(self, client, creds: dict, token: str | None = None) -> None:
        """Logs in, unless given a token of the same user and project (tests/conftest.py issues one in
        the template database, which every test's copy holds)."""
        self.client = client
        self.creds = creds
        self.pid = creds["project_id"]
        if token is None:
            r = client.post("/v3/auth/tokens", json=token_request(creds))
            assert r.status_code == 201, r.text
            token = r.headers["X-Subject-Token"]
        self.token = token

    def call(self, method: str, path: str, json: Any = None, *, headers: dict | None = None,
             token: bool = True, content: bytes | None = None):
        h = {"X-Auth-Token": self.token} if token else {}
        h.update(headers or {})
        return self.client.request(method, path.replace("{pid}", self.pid), json=json, content=content,
                                   headers=h)

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw):
        return self.call("POST", path, json, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)

    def job(self, job_id: str) -> dict:
        r = self.get(f"/v1/{{pid}}/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, job_id: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in ("SUCCESS", "FAIL"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
            time.sleep(0.01)

    def server(self, server_id: str) -> dict:
        r = self.get(f"/v1/{{pid}}/cloudservers/{server_id}")
        assert r.status_code == 200, r.text
        return r.json()["server"]

    def create_servers(self, image: str = UBUNTU, *, count: int = 1, key_name: str | None = None,
                       flavor: str = "s3.small.1", size: int | None = None, name: str = "srv") -> list[str]:
        body = server_body(image, name=name, flavor=flavor, size=size, key_name=key_name, count=count)
        r = self.post("/v1/{pid}/cloudservers", body)
        assert r.status_code == 200, r.text
        job = self.wait_job(r.json()["job_id"])
        assert job["status"] == "SUCCESS", job
        return [s["entities"]["server_id"] for s in job["entities"]["sub_jobs"]]

    def stop(self, server_id: str) -> None:
        r = self.post("/v1/{pid}/cloudservers/action", {"os-stop": {"servers": [{"id": server_id}]}})
        assert r.status_code == 200, r.text
        assert self.wait_job(r.json()["job_id"])["status"] == "SUCCESS"

    def keypair(self, name: str) -> dict:
        r = self.post("/v2.1/{pid}/os-keypairs", {"keypair": {"name": name}})
        assert r.status_code == 200, r.text
        return r.json()["keypair"]


def sql(client, statement: str, **params):
    """Run one statement on the app's database, as an operator with database access would (both dialects)."""
    from sqlalchemy import text

    return client.app.state.services.store.run_sync(lambda conn: conn.execute(text(statement), params))


class held:
    """``with held(api):`` every driver operation waits until the block ends, so jobs stay in flight."""

    def __init__(self, api: Api) -> None:
        self.driver = api.client.app.state.services.driver

    def __enter__(self):
        self.driver.hold()
        return self

    def __exit__(self, *exc) -> None:
        self.driver.release()


def assert_error(resp, status: int, code: str) -> dict:
    """The documented status and ECS error body (code, a message) and a request id; returns the error."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    assert resp.headers["X-Request-Id"]
    return err


def wait_success(api: Api, job_id: str, timeout: float) -> dict:
    """The finished job, asserted SUCCESS (the failure reasons of it and its sub-jobs in the message)."""
    job = api.wait_job(job_id, timeout=timeout)
    reasons = [job.get("fail_reason")] + [sub.get("fail_reason") for sub in job["entities"].get("sub_jobs", [])]
    assert job["status"] == "SUCCESS", f"{job['job_type']} {job['status']}: {[r for r in reasons if r]}"
    return job
