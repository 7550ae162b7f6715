"""The pytest plugin as a user meets it: tests written with the ``ecsd_cloud`` fixture and the official
clients, the way docs/testing-with-ecsd.md shows them. Nothing here imports ecsd's internals: the
fixture comes from the installed plugin (entry point ``pytest11: ecsd``)."""

from __future__ import annotations

import time

import httpx
import openstack
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkecs.v2 import (
    ChangeServerOsWithoutCloudInitOption,
    ChangeServerOsWithoutCloudInitRequest,
    ChangeServerOsWithoutCloudInitRequestBody,
    CreatePostPaidServersRequest,
    CreatePostPaidServersRequestBody,
    EcsClient,
    ListServersDetailsRequest,
    PostPaidServer,
    PostPaidServerNic,
    PostPaidServerRootVolume,
    ShowJobRequest,
    ShowServerRequest,
)

VPC = "3b5a1e2c-8d4f-4e6a-9b7c-1d2e3f4a5b6c"
SUBNET = "7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f"


# --- what a user writes --------------------------------------------------------------------------------

def ecs_client(cloud) -> EcsClient:
    creds = BasicCredentials(cloud.ak, cloud.sk, cloud.project_id)
    return EcsClient.new_builder().with_credentials(creds).with_endpoint(cloud.endpoint).build()


def image_id(cloud, name: str) -> str:
    token = httpx.post(cloud.auth_url + "/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": cloud.user_name, "password": cloud.password, "domain": {"name": cloud.domain_name}}}},
        "scope": {"project": {"id": cloud.project_id}}}}).headers["X-Subject-Token"]
    images = httpx.get(cloud.endpoint + "/v2/cloudimages", params={"name": name},
                       headers={"X-Auth-Token": token}).json()["images"]
    return images[0]["id"]


def wait_job(ecs: EcsClient, job_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        job = ecs.show_job(ShowJobRequest(job_id=job_id))
        if job.status in ("SUCCESS", "FAIL"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.05)


def create_server(ecs: EcsClient, cloud, name: str) -> str:
    server = PostPaidServer(name=name, image_ref=image_id(cloud, "Standard_Ubuntu_22.04_latest"),
                            flavor_ref="s3.small.1", vpcid=VPC, nics=[PostPaidServerNic(subnet_id=SUBNET)],
                            root_volume=PostPaidServerRootVolume(volumetype="SSD"))
    resp = ecs.create_post_paid_servers(CreatePostPaidServersRequest(
        body=CreatePostPaidServersRequestBody(server=server)))
    assert wait_job(ecs, resp.job_id).status == "SUCCESS"
    return resp.server_ids[0]


def change_os(ecs: EcsClient, cloud, server_id: str, image: str = "Standard_Debian_12_latest") -> str:
    option = ChangeServerOsWithoutCloudInitOption(adminpass="Test-Passw0rd!", imageid=image_id(cloud, image),
                                                  mode="withStopServer")
    return ecs.change_server_os_without_cloud_init(ChangeServerOsWithoutCloudInitRequest(
        server_id=server_id, body=ChangeServerOsWithoutCloudInitRequestBody(os_change=option))).job_id


def server_names(ecs: EcsClient) -> list[str]:
    return sorted(s.name for s in ecs.list_servers_details(ListServersDetailsRequest()).servers)


# --- the tests -----------------------------------------------------------------------------------------

def test_change_os_succeeds(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    server_id = create_server(ecs, ecsd_cloud, "web")
    job = wait_job(ecs, change_os(ecs, ecsd_cloud, server_id))
    assert job.status == "SUCCESS"
    server = ecs.show_server(ShowServerRequest(server_id=server_id)).server
    assert server.metadata["image_name"] == "Standard_Debian_12_latest"


def test_a_fault_injected_into_change_os_fails_the_job_with_the_chosen_code(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    server_id = create_server(ecs, ecsd_cloud, "web")
    ecsd_cloud.fail_next("changeOS", code="Ecs.0226", step="start")
    job = wait_job(ecs, change_os(ecs, ecsd_cloud, server_id))
    assert job.status == "FAIL"
    assert job.error_code == "Ecs.0226"
    # The fault was used up: the next change OS of the same server succeeds.
    assert wait_job(ecs, change_os(ecs, ecsd_cloud, server_id)).status == "SUCCESS"


def test_a_fault_can_target_one_server_and_name_no_step(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    first, second = create_server(ecs, ecsd_cloud, "a"), create_server(ecs, ecsd_cloud, "b")
    fault = ecsd_cloud.fail_next("changeOS", code="Ecs.0202", server_id=second)
    assert fault["step"] == "create_disk"         # the step whose own error code is Ecs.0202
    assert wait_job(ecs, change_os(ecs, ecsd_cloud, first)).status == "SUCCESS"
    job = wait_job(ecs, change_os(ecs, ecsd_cloud, second))
    assert (job.status, job.error_code) == ("FAIL", "Ecs.0202")
    # A failed change OS leaves the server in ERROR with its old disk (docs/decisions.md).
    assert ecs.show_server(ShowServerRequest(server_id=second)).server.status == "ERROR"


def test_a_hold_makes_rebuild_observable(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    server_id = create_server(ecs, ecsd_cloud, "web")
    ecsd_cloud.hold("changeOS", "start")
    job_id = change_os(ecs, ecsd_cloud, server_id)
    (held,) = ecsd_cloud.wait_held()
    assert held["job_id"] == job_id and held["step"] == "start"
    time.sleep(0.3)                                      # held: nothing moves however long we look
    assert ecs.show_server(ShowServerRequest(server_id=server_id)).server.status == "REBUILD"
    assert ecs.show_job(ShowJobRequest(job_id=job_id)).status == "RUNNING"
    assert ecsd_cloud.release() == 1
    assert wait_job(ecs, job_id).status == "SUCCESS"
    assert ecs.show_server(ShowServerRequest(server_id=server_id)).server.status == "ACTIVE"


def test_reset_empties_the_state(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    create_server(ecs, ecsd_cloud, "short-lived")
    ecsd_cloud.fail_next("changeOS")
    ecsd_cloud.hold("createServer")
    assert server_names(ecs) == ["short-lived"]
    ecsd_cloud.reset()
    assert ecsd_cloud.requests() == []
    assert server_names(ecs) == []
    assert ecsd_cloud.faults() == [] and ecsd_cloud.held_jobs() == []
    # The same client (AK/SK) keeps working, and the catalogue is still there.
    assert create_server(ecs, ecsd_cloud, "after-reset")


@pytest.mark.parametrize("name", ["isolated-a", "isolated-b"])
def test_two_tests_do_not_see_each_others_servers(ecsd_cloud, name):
    ecs = ecs_client(ecsd_cloud)
    assert server_names(ecs) == []
    create_server(ecs, ecsd_cloud, name)
    assert server_names(ecs) == [name]


def test_requests_records_the_calls(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    server_id = create_server(ecs, ecsd_cloud, "web")
    wait_job(ecs, change_os(ecs, ecsd_cloud, server_id))
    calls = [r for r in ecsd_cloud.requests() if r["method"] == "POST" and r["path"].endswith("/changeos")]
    assert len(calls) == 1
    (call,) = calls
    assert call["status"] == 200 and call["request_id"]
    assert call["body"]["os-change"]["mode"] == "withStopServer"
    assert call["body"]["os-change"]["adminpass"] == "******"       # secrets never reach the log


def test_step_delay_slows_jobs_down(ecsd_cloud):
    ecs = ecs_client(ecsd_cloud)
    server_id = create_server(ecs, ecsd_cloud, "web")
    ecsd_cloud.set_step_delay(0.2)
    job_id = change_os(ecs, ecsd_cloud, server_id)
    time.sleep(0.3)
    assert ecs.show_job(ShowJobRequest(job_id=job_id)).status == "RUNNING"
    assert wait_job(ecs, job_id).status == "SUCCESS"


def test_seed_snapshot_and_restore(ecsd_cloud, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("servers:\n  - {name: db, image: Standard_Debian_12_latest, flavor: s3.medium.2, "
                    "status: SHUTOFF, count: 2}\n")
    made = ecsd_cloud.seed(str(seed))
    assert [s["name"] for s in made["servers"]] == ["db-0001", "db-0002"]
    ecs = ecs_client(ecsd_cloud)
    details = ecs.list_servers_details(ListServersDetailsRequest()).servers
    assert sorted((s.name, s.status) for s in details) == [("db-0001", "SHUTOFF"), ("db-0002", "SHUTOFF")]
    ecsd_cloud.snapshot("two-dbs")
    create_server(ecs, ecsd_cloud, "extra")
    ecsd_cloud.restore("two-dbs")
    assert server_names(ecs) == ["db-0001", "db-0002"]


def test_openstacksdk_against_ecsd_cloud(ecsd_cloud):
    conn = openstack.connect(auth_url=ecsd_cloud.auth_url, username=ecsd_cloud.user_name,
                             password=ecsd_cloud.password, project_name=ecsd_cloud.project_name,
                             user_domain_name=ecsd_cloud.domain_name, project_domain_name=ecsd_cloud.domain_name,
                             region_name=ecsd_cloud.region)
    server = conn.create_server("nova-made", image="Standard_Debian_12_latest", flavor="s3.small.1",
                                auto_ip=False, wait=True, timeout=30)
    assert server.status == "ACTIVE"
    ecsd_cloud.hold("rebootServer")
    conn.compute.reboot_server(server.id, "SOFT")
    ecsd_cloud.wait_held()
    assert conn.compute.get_server(server.id).status == "REBOOT"
    ecsd_cloud.release()
    conn.compute.wait_for_server(conn.compute.get_server(server.id), status="ACTIVE", wait=30, interval=0.1)
    ecsd_cloud.reset()
    assert list(conn.compute.servers()) == []        # the token openstacksdk holds survives the reset


def test_the_readme_example_passes(ecsd_cloud):
    """The ten-line test the README shows, run as it is written there."""
    import os
    import re

    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(readme, encoding="utf-8") as fh:
        section = fh.read().split("## In your test suite", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)       # noqa: S102 - our own README
    (test,) = [v for k, v in namespace.items() if k.startswith("test_")]
    test(ecsd_cloud)
