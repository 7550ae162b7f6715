"""Resize through the public API: the v1 resize, Nova's resize / confirmResize / revertResize, the
target-flavor list; every refusal, state gates, quotas, failures; the official SDKs."""

from __future__ import annotations

import functools
import time

import pytest

from ecsd.app import operator_credentials
from ecsd.domain import invariants, quotas
from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401
from tests.support import Api, assert_error

BOTH_DATABASES = True

RESIZE = "/v1/{pid}/cloudservers/%s/resize"
ACTION = "/v2.1/{pid}/servers/%s/action"
FLAVORS_V1 = "/v1/{pid}/cloudservers/resize_flavors"
FLAVORS_V21 = "/v2.1/{pid}/resize_flavors"


def resize(api: Api, sid: str, flavor: str, **extra):
    body: dict = {"resize": {"flavorRef": flavor}}
    if "dry_run" in extra:
        body["dry_run"] = extra.pop("dry_run")
    body["resize"].update(extra)
    return api.post(RESIZE % sid, body)


def resized(api: Api, sid: str, flavor: str, **extra) -> dict:
    r = resize(api, sid, flavor, **extra)
    assert r.status_code == 200, r.text
    return api.wait_job(r.json()["job_id"])


def nova(api: Api, sid: str, action: str, args=None):
    return api.post(ACTION % sid, {action: args})


def nova_server(api: Api, sid: str) -> dict:
    r = api.get(f"/v2.1/{{pid}}/servers/{sid}")
    assert r.status_code == 200, r.text
    return r.json()["server"]


def stopped_server(api: Api, **kw) -> str:
    sid = api.create_servers(**kw)[0]
    api.stop(sid)
    return sid


def usage(api: Api) -> tuple[int, int]:
    absolute = api.get("/v1/{pid}/cloudservers/limits").json()["absolute"]
    return absolute["totalCoresUsed"], absolute["totalRAMUsed"]


def consistent(api: Api) -> None:
    assert api.client.app.state.services.store.run_sync(invariants.server_counts_match) == []


def history(api: Api, sid: str) -> list[str]:
    r = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions")
    assert r.status_code == 200, r.text
    return sorted(a["action"] for a in r.json()["instanceActions"])


def fault(api: Api, **body) -> None:
    token = operator_credentials(api.client.app.state.services.settings)["operator_token"]
    r = api.client.post("/_ecsd/faults", json=body, headers={"X-Ecsd-Operator-Token": token})
    assert r.status_code == 201, r.text


# --- the v1 resize -----------------------------------------------------------------------------------------

def test_v1_resize_of_a_stopped_server(api):
    sid = stopped_server(api)
    assert usage(api) == (1, 1024)
    job = resized(api, sid, "s3.large.2")
    assert job["status"] == "SUCCESS" and job["job_type"] == "resizeServer"
    assert job["entities"] == {"server_id": sid}
    srv = api.server(sid)
    assert srv["status"] == "SHUTOFF" and srv["OS-EXT-STS:task_state"] is None
    assert srv["flavor"]["id"] == "s3.large.2"
    assert (srv["flavor"]["vcpus"], srv["flavor"]["ram"]) == ("2", "4096")
    assert nova_server(api, sid)["flavor"]["id"] == "s3.large.2"
    listed = api.get("/v2.1/{pid}/servers/detail").json()["servers"]
    assert [x["flavor"]["id"] for x in listed if x["id"] == sid] == ["s3.large.2"]
    assert usage(api) == (2, 4096)
    assert history(api, sid) == ["create", "resize", "stop"]
    consistent(api)
    # the server still starts, and a delete releases the new flavor
    r = api.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": sid}]}})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert usage(api) == (0, 0)
    consistent(api)


def test_v1_resize_of_a_running_server_needs_with_stop_server(api):
    sid = api.create_servers()[0]
    assert_error(resize(api, sid, "s3.medium.2"), 400, "Ecs.0100")
    job = resized(api, sid, "s3.medium.2", mode="withStopServer")
    assert job["status"] == "SUCCESS"
    srv = api.server(sid)
    assert srv["status"] == "ACTIVE" and srv["OS-EXT-STS:power_state"] == 1
    assert srv["flavor"]["id"] == "s3.medium.2"
    assert usage(api) == (1, 2048)


def test_v1_resize_down_and_dry_run(api):
    sid = stopped_server(api, flavor="s3.xlarge.2")
    r = resize(api, sid, "s3.small.1", dry_run=True)
    assert r.status_code == 202 and r.json() == {}
    assert api.server(sid)["flavor"]["id"] == "s3.xlarge.2" and usage(api) == (4, 8192)
    assert_error(resize(api, sid, "s3.xlarge.2", dry_run=True), 400, "Ecs.0009")
    assert resized(api, sid, "s3.small.1")["status"] == "SUCCESS"
    assert usage(api) == (1, 1024)
    consistent(api)
    # what the SDK's pre-paid option sends besides is accepted (nothing to pay, no CPU threads to pin)
    job = resized(api, sid, "s3.medium.2", extendparam={"isAutoPay": "true"}, cpu_options={"hw:cpu_threads": 2})
    assert job["status"] == "SUCCESS"


def test_the_status_is_resize_and_everything_else_waits(api):
    sid = stopped_server(api)
    with s.held(api):
        job_id = resize(api, sid, "s3.large.2").json()["job_id"]
        srv = api.server(sid)
        assert srv["status"] == "RESIZE"      # resize_prep, then resize_migrating: the stop has nothing to do
        assert srv["OS-EXT-STS:task_state"] in ("resize_prep", "resize_migrating")
        assert_error(resize(api, sid, "s3.medium.2"), 400, "Ecs.0100")
        assert_error(nova(api, sid, "resize", {"flavorRef": "s3.medium.2"}), 400, "Ecs.0100")
        assert_error(nova(api, sid, "confirmResize"), 400, "Ecs.0100")
        assert_error(api.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": sid}]}}),
                     400, "Ecs.0100")
        assert_error(api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]}), 400, "Ecs.0100")
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    assert api.server(sid)["flavor"]["id"] == "s3.large.2"


def test_concurrent_resizes_exactly_one_accepted(slow_api):
    api = slow_api
    sid = stopped_server(api)
    results = s.at_once(*(functools.partial(resize, api, sid, f) for f in ["s3.medium.2", "s3.large.2"] * 4))
    accepted = [r for r in results if r.status_code == 200]
    assert len(accepted) == 1
    assert all(r.json()["error"]["code"] == "Ecs.0100" for r in results if r.status_code != 200)
    assert api.wait_job(accepted[0].json()["job_id"])["status"] == "SUCCESS"
    consistent(api)


# --- refusals ----------------------------------------------------------------------------------------------

def test_every_refusal_with_its_code(api, client):
    sid = stopped_server(api)
    assert_error(resize(api, sid, "s3.small.1"), 400, "Ecs.0009")
    assert_error(resize(api, sid, "x9.huge.8"), 400, "Ecs.0029")
    s.sql(client, "UPDATE flavors SET disabled = :yes WHERE id = 'c6.large.2'", yes=True)
    assert_error(resize(api, sid, "c6.large.2"), 400, "Ecs.0029")
    s.sql(client, "UPDATE flavors SET extra_specs = :spec WHERE id = 'c6.xlarge.4'",
          spec='{"cond:operation:az": "eu-de-01(sellout), eu-de-02(normal)"}')
    assert_error(resize(api, sid, "c6.xlarge.4"), 400, "Ecs.0319")
    s.sql(client, "UPDATE flavors SET extra_specs = :spec WHERE id = 'm6.large.8'",
          spec='{"cond:operation:status": "abandon"}')
    assert_error(resize(api, sid, "m6.large.8"), 400, "Ecs.0029")
    s.sql(client, "UPDATE flavors SET extra_specs = :spec WHERE id = 's3.xlarge.2'",
          spec='{"ecs:virtualization_env_types": "BareMetal"}')
    assert_error(resize(api, sid, "s3.xlarge.2"), 400, "Ecs.0804")
    assert_error(resize(api, "7f3c9a52-3c55-4a4b-9a34-3c1a3f0f3b11", "s3.large.2"), 404, "Ecs.0114")
    assert_error(resize(api, sid, "s3.large.2", dedicated_host_id="9a3c1a3f-3c55-4a4b-9a34-3c1a3f0f3b11"),
                 400, "Ecs.0005")
    s.sql(client, "UPDATE servers SET locked = :yes WHERE id = :id", yes=True, id=sid)
    assert_error(resize(api, sid, "s3.large.2"), 400, "Ecs.0605")
    assert_error(nova(api, sid, "resize", {"flavorRef": "s3.large.2"}), 400, "Ecs.0605")
    srv = api.server(sid)
    assert srv["status"] == "SHUTOFF" and srv["flavor"]["id"] == "s3.small.1"
    assert history(api, sid) == ["create", "stop"] and usage(api) == (1, 1024)


def test_the_image_needs_more_memory(api):
    sid = stopped_server(api, image=s.WINDOWS, flavor="s3.xlarge.2")       # Windows: min_ram 4096
    err = assert_error(resize(api, sid, "s3.medium.2"), 400, "Ecs.0804")
    assert "4096" in err["message"]
    assert resized(api, sid, "s3.large.2")["status"] == "SUCCESS"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [
    {}, {"resize": {}}, {"resize": {"flavorRef": 5}}, {"resize": {"flavorRef": ""}},
    {"resize": {"flavorRef": "s3.large.2", "mode": "hot"}},
    {"resize": {"flavorRef": "s3.large.2", "colour": "red"}},
    {"resize": {"flavorRef": "s3.large.2"}, "dry_run": "yes"},
    {"resize": {"flavorRef": "s3.large.2", "extendparam": {"isAutoPay": 1}}},
    {"resize": {"flavorRef": "s3.large.2", "cpu_options": {"hw:cpu_threads": 3}}},
    {"resize": "s3.large.2"}, [],
])
def test_malformed_v1_bodies(api, body):
    sid = "7f3c9a52-3c55-4a4b-9a34-3c1a3f0f3b11"
    assert_error(api.post(RESIZE % sid, body), 400, "Ecs.0005")


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("action", "args"), [
    ("resize", None), ("resize", {}), ("resize", "s3.large.2"), ("resize", {"flavorRef": 1}),
    ("resize", {"flavorRef": "s3.large.2", "x": 1}), ("resize", {"flavorRef": "a", "OS-DCF:diskConfig": "NO"}),
    ("confirmResize", {"x": 1}), ("revertResize", "now"),
])
def test_malformed_nova_actions(api, action, args):
    assert_error(nova(api, "7f3c9a52-3c55-4a4b-9a34-3c1a3f0f3b11", action, args), 400, "Ecs.0005")



# --- quotas ------------------------------------------------------------------------------------------------

def test_a_bigger_flavor_past_the_quota_is_refused_a_smaller_one_accepted(api):
    sid = stopped_server(api, flavor="s3.large.2")
    api.client.app.state.services.store.run_sync(quotas.set_quotas, api.pid, {"cores": 2})
    err = assert_error(resize(api, sid, "s3.xlarge.2"), 400, "Ecs.0001")
    assert "cores" in err["message"]
    assert_error(nova(api, sid, "resize", {"flavorRef": "s3.xlarge.2"}), 400, "Ecs.0001")
    assert usage(api) == (2, 4096)
    api.client.app.state.services.store.run_sync(quotas.set_quotas, api.pid, {"cores": 0})   # now over quota
    assert resized(api, sid, "s3.medium.2")["status"] == "SUCCESS"                          # shrinking is fine
    assert usage(api) == (1, 2048)
    consistent(api)


# --- failures ----------------------------------------------------------------------------------------------

def test_a_failed_set_flavor_leaves_the_old_flavor_and_quota(api):
    sid = api.create_servers()[0]
    fault(api, operation="resizeServer", code="Ecs.0207")
    job = resized(api, sid, "s3.large.2", mode="withStopServer")
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0207" and job["fail_reason"]
    srv = api.server(sid)
    assert srv["status"] == "SHUTOFF" and srv["OS-EXT-STS:task_state"] is None     # it had been stopped
    assert srv["flavor"]["id"] == "s3.small.1" and usage(api) == (1, 1024)
    consistent(api)
    assert resized(api, sid, "s3.large.2")["status"] == "SUCCESS"                   # and may be resized again


def test_a_failed_stop_or_start(api):
    sid, other = api.create_servers(count=2)
    fault(api, operation="resizeServer", code="Ecs.1002", step="stop")
    job = resized(api, sid, "s3.large.2", mode="withStopServer")
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.1002"
    srv = api.server(sid)
    assert srv["status"] == "ACTIVE" and srv["flavor"]["id"] == "s3.small.1" and usage(api) == (2, 2048)
    # a failed start: the new flavor stays, the server is stopped
    fault(api, operation="resizeServer", code="Ecs.0226", step="start")
    job = resized(api, sid, "s3.large.2", mode="withStopServer")
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0226"
    srv = api.server(sid)
    assert srv["status"] == "SHUTOFF" and srv["flavor"]["id"] == "s3.large.2"
    assert usage(api) == (3, 5120)
    # Nova's: VERIFY_RESIZE, stopped, to be confirmed or reverted
    fault(api, operation="resizeServer", code="Ecs.0226", step="start")
    assert nova(api, other, "resize", {"flavorRef": "s3.medium.2"}).status_code == 202
    srv = wait_status(api, other, "VERIFY_RESIZE")
    assert srv["OS-EXT-STS:power_state"] == 4 and srv["flavor"]["id"] == "s3.medium.2"
    assert nova(api, other, "confirmResize").status_code == 204
    assert api.server(other)["status"] == "SHUTOFF"
    consistent(api)


# --- Nova: resize, confirm, revert -------------------------------------------------------------------------

def wait_status(api: Api, sid: str, status: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        srv = nova_server(api, sid)
        if srv["status"] == status:
            return srv
        assert time.monotonic() < deadline, srv
        time.sleep(0.01)


def test_nova_resize_then_confirm(api):
    sid = api.create_servers()[0]
    r = nova(api, sid, "resize", {"flavorRef": "https://ecs.example/v2.1/p/flavors/s3.large.2"})
    assert r.status_code == 202 and r.content == b""
    srv = wait_status(api, sid, "VERIFY_RESIZE")
    assert srv["OS-EXT-STS:vm_state"] == "resized" and srv["OS-EXT-STS:power_state"] == 1
    assert srv["flavor"]["id"] == "s3.large.2" and usage(api) == (2, 4096)
    assert_error(nova(api, sid, "os-stop"), 400, "Ecs.0100")
    assert_error(nova(api, sid, "resize", {"flavorRef": "s3.medium.2"}), 400, "Ecs.0100")
    r = nova(api, sid, "confirmResize")
    assert r.status_code == 204, r.text
    srv = nova_server(api, sid)
    assert srv["status"] == "ACTIVE" and srv["flavor"]["id"] == "s3.large.2"
    assert_error(nova(api, sid, "confirmResize"), 400, "Ecs.0100")
    assert_error(nova(api, sid, "revertResize"), 400, "Ecs.0100")
    assert history(api, sid) == ["confirmResize", "create", "resize"]
    consistent(api)


def test_nova_resize_of_a_stopped_server_confirms_to_shutoff_or_is_deleted(api):
    sid = stopped_server(api)
    assert nova(api, sid, "resize", {"flavorRef": "s3.medium.2"}).status_code == 202
    assert wait_status(api, sid, "VERIFY_RESIZE")["OS-EXT-STS:power_state"] == 4
    assert nova(api, sid, "confirmResize", {}).status_code == 204
    assert api.server(sid)["status"] == "SHUTOFF"
    # deleted in VERIFY_RESIZE: the new flavor is what it counted, and what is released
    assert nova(api, sid, "resize", {"flavorRef": "s3.large.2"}).status_code == 202
    wait_status(api, sid, "VERIFY_RESIZE")
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert usage(api) == (0, 0)
    consistent(api)


def test_nova_resize_then_revert_restores_the_old_flavor(api):
    sid = api.create_servers()[0]
    assert nova(api, sid, "resize", {"flavorRef": "s3.xlarge.2"}).status_code == 202
    wait_status(api, sid, "VERIFY_RESIZE")
    assert usage(api) == (4, 8192)
    with s.held(api):
        r = nova(api, sid, "revertResize")
        assert r.status_code == 202
        srv = nova_server(api, sid)
        assert (srv["status"], srv["OS-EXT-STS:task_state"]) == ("REVERT_RESIZE", "resize_reverting")
        assert_error(nova(api, sid, "confirmResize"), 400, "Ecs.0100")
    srv = wait_status(api, sid, "ACTIVE")
    assert srv["flavor"]["id"] == "s3.small.1" and srv["OS-EXT-STS:power_state"] == 1
    assert usage(api) == (1, 1024)
    assert history(api, sid) == ["create", "resize", "revertResize"]
    consistent(api)


def test_a_failed_revert_stays_in_verify_resize(api):
    sid = stopped_server(api)
    assert nova(api, sid, "resize", {"flavorRef": "s3.large.2"}).status_code == 202
    wait_status(api, sid, "VERIFY_RESIZE")
    fault(api, operation="revertResize", code="Ecs.0207")
    assert nova(api, sid, "revertResize").status_code == 202
    srv = wait_status(api, sid, "VERIFY_RESIZE")
    assert srv["flavor"]["id"] == "s3.large.2" and usage(api) == (2, 4096)
    consistent(api)
    assert nova(api, sid, "revertResize").status_code == 202
    assert wait_status(api, sid, "SHUTOFF")["flavor"]["id"] == "s3.small.1"
    consistent(api)



# --- resize_flavors ----------------------------------------------------------------------------------------

def ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["flavors"]]


def test_resize_flavors(api):
    sid = stopped_server(api, image=s.WINDOWS, flavor="s3.xlarge.2")
    everything = ["c6.large.2", "c6.xlarge.4", "m6.large.8", "s3.large.2", "s3.medium.2", "s3.small.1"]
    assert ids(api.get(FLAVORS_V1 + "?source_flavor_id=s3.xlarge.2")) == everything
    assert ids(api.get(FLAVORS_V21 + "?source_flavor_name=s3.xlarge.2")) == everything
    # a server: its image needs 4096 MB, so the two small flavors go
    assert ids(api.get(FLAVORS_V21 + f"?instance_uuid={sid}&source_flavor_id=s3.small.1")) == [
        "c6.large.2", "c6.xlarge.4", "m6.large.8", "s3.large.2"]
    assert ids(api.get(FLAVORS_V1 + f"?instance_uuid={sid}&sort_key=vcpus&sort_dir=desc&limit=2")) == [
        "c6.xlarge.4", "s3.large.2"]                                      # ties: by id, the same way
    assert ids(api.get(FLAVORS_V1 + f"?instance_uuid={sid}&sort_key=vcpus&sort_dir=desc&marker=s3.large.2")) == [
        "m6.large.8", "c6.large.2"]
    (shown,) = api.get(FLAVORS_V1 + "?source_flavor_id=s3.small.1&limit=1").json()["flavors"]
    assert shown["id"] == "c6.large.2" and shown["vcpus"] == "2" and shown["ram"] == 4096
    assert shown["disk"] == "0" and shown["extra_specs"]["ecs:performancetype"] == "computingv3"
    assert shown["OS-FLV-DISABLED:disabled"] is False and shown["links"][0]["rel"] == "self"
    assert "os_extra_specs" not in shown and "attachableQuantity" not in shown
    assert_error(api.get(FLAVORS_V1), 400, "Ecs.0005")
    assert_error(api.get(FLAVORS_V1 + "?source_flavor_id=x9.huge.8"), 400, "Ecs.0029")
    assert_error(api.get(FLAVORS_V1 + "?source_flavor_id=s3.small.1&sort_key=colour"), 400, "Ecs.0005")
    assert_error(api.get(FLAVORS_V1 + "?instance_uuid=7f3c9a52-3c55-4a4b-9a34-3c1a3f0f3b11"), 404, "Ecs.0114")


# --- the official SDKs against a real process ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning")
def test_the_sdks(ecsd_server):  # noqa: F811
    pytest.importorskip("huaweicloudsdkecs")
    openstack = pytest.importorskip("openstack")
    from huaweicloudsdkecs.v2 import (
        ListResizeFlavorsRequest,
        ResizePostPaidServerOption,
        ResizePostPaidServerRequest,
        ResizePostPaidServerRequestBody,
        ResizePrePaidServerOption,
        ResizeServerExtendParam,
        ResizeServerRequest,
        ResizeServerRequestBody,
    )

    from tests.sdk_models import check_response
    from tests.test_sdk_huawei import create_servers, ecs_client, wait_job
    from tests.test_sdk_models_images import FLAVOR_OPTIONAL
    from tests.test_sdk_openstack import connect

    base, creds = ecsd_server
    ecs = ecs_client(base, creds["ak"], creds["sk"], creds["project_id"])
    (sid,) = create_servers(ecs, "sdk-resize")
    flavors = ecs.list_resize_flavors(ListResizeFlavorsRequest(instance_uuid=sid, sort_key="vcpus", limit=3))
    # Null in the reference's own example: the unused rxtx values and the links' type; the extra specs
    # as the v1 flavor list shows them (tests/test_sdk_models_images.py).
    problems = check_response(flavors, optional={**FLAVOR_OPTIONAL, "ListResizeFlavorsResult": {
        "rxtx_quota", "rxtx_cap", "instance_quota"}})
    assert problems == [], "\n".join(problems)
    assert [f.id for f in flavors.flavors] == ["s3.medium.2", "c6.large.2", "m6.large.8"]
    # ResizePostPaidServer: the reference's /v1 path
    resp = ecs.resize_post_paid_server(ResizePostPaidServerRequest(server_id=sid, body=ResizePostPaidServerRequestBody(
        resize=ResizePostPaidServerOption(flavor_ref="s3.medium.2", mode="withStopServer"))))
    assert check_response(resp) == []
    job = wait_job(ecs, resp.job_id)
    assert job.status == "SUCCESS" and job.job_type == "resizeServer"
    # ResizeServer: /v1.1, with the pre-paid option's extras (nothing to pay here: no order_id)
    resp = ecs.resize_server(ResizeServerRequest(server_id=sid, body=ResizeServerRequestBody(
        resize=ResizePrePaidServerOption(flavor_ref="s3.large.2", mode="withStopServer",
                                         extendparam=ResizeServerExtendParam(is_auto_pay="true")))))
    assert check_response(resp, optional={"ResizeServerResponse": {"order_id"}}) == []
    job = wait_job(ecs, resp.job_id)
    assert job.status == "SUCCESS" and job.job_type == "resizeServer"

    conn = connect(base, creds)
    try:
        assert isinstance(conn, openstack.connection.Connection)
        conn.compute.resize_server(sid, "s3.xlarge.2")
        server = conn.compute.wait_for_server(conn.compute.get_server(sid), status="VERIFY_RESIZE", wait=20,
                                              interval=0.05)
        assert server.flavor.id == "s3.xlarge.2"
        conn.compute.revert_server_resize(sid)
        server = conn.compute.wait_for_server(server, status="ACTIVE", wait=20, interval=0.05)
        assert server.flavor.id == "s3.large.2"
        conn.compute.resize_server(sid, "s3.medium.2")
        server = conn.compute.wait_for_server(server, status="VERIFY_RESIZE", wait=20, interval=0.05)
        conn.compute.confirm_server_resize(sid)
        server = conn.compute.wait_for_server(server, status="ACTIVE", wait=20, interval=0.05)
        assert server.flavor.id == "s3.medium.2"
    finally:
        conn.close()

