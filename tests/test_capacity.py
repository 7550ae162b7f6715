"""Admission by host memory (domain/capacity.py) through the public API: a host whose budget fits N
servers of a flavor refuses the next create with 400 Ecs.0319 and charges nothing; a stop makes room;
a start, a count > 1 create and the resize of a running server are admitted all or nothing; servers
being built or started count; concurrent creates never pass the budget together; the official SDK sees
the same refusal. The simulated driver gets its budget from ECSD_SIM_MEMORY_BUDGET_MB."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app
from tests import support as s
from tests.support import Api, assert_error, held

BOTH_DATABASES = True
SMALL_MB = 1024                  # s3.small.1: 1 vCPU, 1024 MB
BUDGET = 3 * SMALL_MB            # three small servers fit
CREATE = "/v1/{pid}/cloudservers"
ACTION = "/v1/{pid}/cloudservers/action"
NOVA_SERVERS = "/v2.1/{pid}/servers"


@pytest.fixture
def capped(settings, creds, monkeypatch):
    """An app whose simulated host gives its servers BUDGET MB together."""
    monkeypatch.setenv("ECSD_SIM_MEMORY_BUDGET_MB", str(BUDGET))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield Api(c, creds, token=creds.get("token"))


def create_body(name: str, count: int = 1, flavor: str = "s3.small.1", **extra: Any) -> dict:
    return {"server": {"name": name, "imageRef": s.UBUNTU, "flavorRef": flavor, "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}, "count": count},
            **extra}


def usage(api: Api) -> tuple[int, int, int]:
    a = api.get("/v1/{pid}/cloudservers/limits").json()["absolute"]
    return a["totalInstancesUsed"], a["totalCoresUsed"], a["totalRAMUsed"]


def named(api: Api, prefix: str) -> list[str]:
    servers = api.get("/v1/{pid}/cloudservers/detail?limit=1000").json()["servers"]
    return sorted(x["id"] for x in servers if x["name"].startswith(prefix))


def start(api: Api, *sids: str):
    return api.post(ACTION, {"os-start": {"servers": [{"id": sid} for sid in sids]}})


def delete(api: Api, sid: str) -> None:
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


def wait_status(api: Api, sid: str, status: str) -> None:
    deadline = time.monotonic() + 15
    while api.server(sid)["status"] != status:
        assert time.monotonic() < deadline, api.server(sid)
        time.sleep(0.01)


def assert_full(resp) -> None:
    err = assert_error(resp, 400, "Ecs.0319")
    assert err["message"].startswith("Insufficient resources for this flavor.")
    assert "MB" in err["details"][0]["message"]


def test_the_budget_admits_n_servers_and_refuses_the_next_with_ecs_0319(capped):
    api = capped
    for n in range(3):
        api.create_servers(name=f"fit{n}")
    before = usage(api)
    assert before == (3, 3, BUDGET)
    assert_full(api.post(CREATE, create_body("over")))
    assert_full(api.post(CREATE, create_body("over", dry_run=True)))
    assert usage(api) == before                     # no quota charged
    assert named(api, "over") == []                 # nothing created, so no job either
    assert all(api.server(sid)["status"] == "ACTIVE" for sid in named(api, "fit"))


def test_a_stopped_server_makes_room_and_its_start_is_refused_while_full(capped):
    api = capped
    sids = api.create_servers(count=3, name="full")
    api.stop(sids[0])
    (late,) = api.create_servers(name="late")       # the stopped server's memory was free
    assert_full(start(api, sids[0]))
    assert_full(api.post(f"/v2.1/{{pid}}/servers/{sids[0]}/action", {"os-start": None}))
    server = api.server(sids[0])
    assert server["status"] == "SHUTOFF" and server["OS-EXT-STS:task_state"] in (None, "")
    delete(api, late)
    r = start(api, sids[0])
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sids[0])["status"] == "ACTIVE"


def test_a_batch_start_is_all_or_nothing(capped):
    api = capped
    sids = api.create_servers(count=3, name="pair")
    for sid in sids[:2]:
        api.stop(sid)
    (other,) = api.create_servers(name="other")    # 2 running: room for one more, not two
    assert_full(start(api, *sids[:2]))
    assert [api.server(sid)["status"] for sid in sids[:2]] == ["SHUTOFF", "SHUTOFF"]
    r = start(api, sids[0])
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert other in named(api, "other")


def test_a_create_of_several_servers_is_all_or_nothing(capped):
    api = capped
    api.create_servers(name="first")
    before = usage(api)
    assert_full(api.post(CREATE, create_body("many", count=3)))
    assert named(api, "many") == [] and usage(api) == before
    assert len(api.create_servers(count=2, name="two")) == 2
    assert usage(api) == (3, 3, BUDGET)


def test_servers_being_built_or_started_count(capped):
    api = capped
    sid = api.create_servers(name="stopped")[0]
    api.stop(sid)
    with held(api):
        r = api.post(CREATE, create_body("building", count=2))
        assert r.status_code == 200, r.text
        building = r.json()["job_id"]
        started = start(api, sid)                   # 2 building + 1 being started: the budget
        assert started.status_code == 200, started.text
        assert api.server(sid)["OS-EXT-STS:task_state"] == "powering-on"
        assert_full(api.post(CREATE, create_body("over")))
    assert api.wait_job(building)["status"] == "SUCCESS"
    assert api.wait_job(started.json()["job_id"])["status"] == "SUCCESS"
    assert_full(api.post(CREATE, create_body("over")))
    assert named(api, "over") == []


def test_nova_create_is_refused_and_min_count_takes_what_fits(capped):
    api = capped
    api.create_servers(name="v1")
    body = {"server": {"name": "nova", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1",
                       "networks": [{"uuid": s.SUBNET}], "min_count": 1, "max_count": 5}}
    r = api.post(NOVA_SERVERS, body)
    assert r.status_code == 202, r.text
    assert len(named(api, "nova")) == 2             # as many as the host's memory allows
    before = usage(api)
    assert before == (3, 3, BUDGET)
    assert_full(api.post(NOVA_SERVERS, {"server": {**body["server"], "name": "late", "min_count": 1,
                                                   "max_count": 1}}))
    assert named(api, "late") == [] and usage(api) == before


def test_concurrent_creates_never_pass_the_budget_together(capped):
    api = capped
    api.create_servers(count=2, name="base")
    results = s.at_once(*(functools.partial(api.post, CREATE, create_body(f"race{n}")) for n in range(8)))
    accepted = [r for r in results if r.status_code == 200]
    assert len(accepted) == 1, [r.text for r in results]
    for r in results:
        if r.status_code != 200:
            assert_full(r)
    assert api.wait_job(accepted[0].json()["job_id"])["status"] == "SUCCESS"
    assert usage(api) == (3, 3, BUDGET)


def test_resize_of_a_running_server_needs_room_and_a_stopped_one_its_start(capped):
    api = capped
    sids = api.create_servers(count=3, name="rs")
    before = usage(api)
    grow = {"resize": {"flavorRef": "s3.medium.2", "mode": "withStopServer"}}
    assert_full(api.post(f"/v1/{{pid}}/cloudservers/{sids[0]}/resize", grow))
    assert_full(api.post(f"/v2.1/{{pid}}/servers/{sids[0]}/action", {"resize": {"flavorRef": "s3.medium.2"}}))
    assert usage(api) == before and api.server(sids[0])["status"] == "ACTIVE"
    api.stop(sids[0])                                # a stopped server stays stopped: no memory needed
    r = api.post(f"/v1/{{pid}}/cloudservers/{sids[0]}/resize", {"resize": {"flavorRef": "s3.medium.2"}})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sids[0])["status"] == "SHUTOFF"
    assert_full(start(api, sids[0]))                 # 2048 MB beside 2 x 1024 MB: over 3072
    delete(api, sids[1])
    r = start(api, sids[0])
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


def test_a_running_resize_counts_the_larger_flavor_until_it_ends(capped):
    api = capped
    sid = api.create_servers(name="grow")[0]
    with held(api):
        r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/resize",
                     {"resize": {"flavorRef": "s3.medium.2", "mode": "withStopServer"}})
        assert r.status_code == 200, r.text
        # 2048 MB held for the resized server: one small server fits, not two
        assert_full(api.post(CREATE, create_body("during", count=2)))
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sid)["status"] == "ACTIVE"
    assert_full(api.post(CREATE, create_body("after", count=2)))
    assert len(api.create_servers(name="after")) == 1


def test_revert_of_a_running_downsize_needs_room_again(capped):
    api = capped
    sid = api.create_servers(name="shrink", flavor="s3.medium.2")[0]
    action = f"/v2.1/{{pid}}/servers/{sid}/action"
    r = api.post(action, {"resize": {"flavorRef": "s3.small.1"}})
    assert r.status_code == 202, r.text
    wait_status(api, sid, "VERIFY_RESIZE")               # Nova's resize answers no job id
    api.create_servers(count=2, name="filler")           # 1024 + 2 x 1024: full
    assert_full(api.post(action, {"revertResize": None}))  # back to 2048 MB: 1024 MB more
    assert api.server(sid)["status"] == "VERIFY_RESIZE"
    assert api.post(action, {"confirmResize": None}).status_code == 204
    assert api.server(sid)["status"] == "ACTIVE"


@pytest.mark.sqlite_only
def test_without_a_budget_nothing_is_refused_for_memory(api):
    assert api.client.app.state.services.driver.memory_budget() is None
    assert len(api.create_servers(count=4, flavor="s3.large.2", name="big")) == 4


@pytest.mark.slow
def test_the_sdk_sees_ecs_0319_when_the_host_is_full():
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkecs.v2 import (
        CreatePostPaidServersRequest,
        CreatePostPaidServersRequestBody,
        PostPaidServer,
        PostPaidServerNic,
        PostPaidServerRootVolume,
    )

    from tests.sdk_server import _stop, start_ecsd
    from tests.test_sdk_huawei import create_servers, ecs_client

    with tempfile.TemporaryDirectory(prefix="ecsd-capacity-") as tmp:
        server = start_ecsd(os.path.join(tmp, "data"), env={"ECSD_SIM_MEMORY_BUDGET_MB": str(2 * SMALL_MB)})
        try:
            creds = server.creds
            ecs = ecs_client(server.base_url, creds["ak"], creds["sk"], creds["project_id"])
            assert len(create_servers(ecs, "sdk-fit", count=2)) == 2
            body = CreatePostPaidServersRequestBody(server=PostPaidServer(
                name="sdk-over", image_ref=s.UBUNTU, flavor_ref="s3.small.1", vpcid=s.VPC,
                nics=[PostPaidServerNic(subnet_id=s.SUBNET)], root_volume=PostPaidServerRootVolume(volumetype="SSD")))
            with pytest.raises(ClientRequestException) as err:
                ecs.create_post_paid_servers(CreatePostPaidServersRequest(body=body))
            assert err.value.status_code == 400 and err.value.error_code == "Ecs.0319"
        finally:
            _stop(server.proc)
