"""Operation history (Nova os-instance-actions): every operation on a server, with its request id, user,
steps as events, kept after the server is gone; on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from tests import support as s
from tests.support import Api, assert_error

BOTH_DATABASES = True
CREATE_BODY = {"server": {"name": "hist", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                          "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}


def actions(api: Api, sid: str) -> list[dict]:
    r = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions")
    assert r.status_code == 200, r.text
    return r.json()["instanceActions"]


def action(api: Api, sid: str, request_id: str) -> dict:
    r = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions/{request_id}")
    assert r.status_code == 200, r.text
    return r.json()["instanceAction"]


def test_a_create_is_recorded_with_its_request_id_user_and_steps(api):
    r = api.post("/v1/{pid}/cloudservers", CREATE_BODY)
    request_id = r.headers["X-Openstack-Request-Id"]
    job = api.wait_job(r.json()["job_id"])
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    (listed,) = actions(api, sid)
    assert listed == {"action": "create", "instance_uuid": sid, "message": None, "project_id": api.pid,
                      "request_id": request_id, "start_time": listed["start_time"], "user_id": api.creds["user_id"]}
    shown = action(api, sid, request_id)
    assert [e["event"] for e in shown["events"]] == ["compute_create_disks", "compute_inject", "compute_attach",
                                                      "compute_boot"]
    assert all(e["result"] == "Success" and e["traceback"] is None and e["finish_time"] >= e["start_time"]
               for e in shown["events"])
    assert shown["start_time"] <= shown["events"][0]["start_time"]


def test_change_os_is_a_rebuild_and_a_failed_one_says_error(api):
    (sid,) = api.create_servers()
    body = {"os-change": {"adminpass": "Test-Passw0rd!", "imageid": s.DEBIAN, "mode": "withStopServer"}}
    ok = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos", body)
    api.wait_job(ok.json()["job_id"])
    bad = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {**body["os-change"],
                                                                             "imageid": s.FAULTY_BOOT}})
    assert api.wait_job(bad.json()["job_id"])["status"] == "FAIL"
    listed = actions(api, sid)
    assert [a["action"] for a in listed] == ["rebuild", "rebuild", "create"]       # newest first
    assert [a["message"] for a in listed] == ["Error", None, None]
    good = action(api, sid, ok.headers["X-Openstack-Request-Id"])
    assert [e["event"] for e in good["events"]] == ["compute_stop", "compute_create_disk", "compute_inject",
                                                     "compute_swap_disk", "compute_delete_old_disk", "compute_start"]
    failed = action(api, sid, bad.headers["X-Openstack-Request-Id"])["events"]
    assert failed[-1]["event"] == "compute_start" and failed[-1]["result"] == "Error"
    assert failed[-1]["traceback"].startswith("Ecs.0226")
    assert all(e["result"] == "Success" for e in failed[:-1])


def test_a_batch_stop_records_one_action_per_server_under_one_request(api):
    sids = api.create_servers(count=2)
    r = api.post("/v1/{pid}/cloudservers/action", {"os-stop": {"servers": [{"id": x} for x in sids]}})
    api.wait_job(r.json()["job_id"])
    for sid in sids:
        newest = actions(api, sid)[0]
        assert newest["action"] == "stop" and newest["request_id"] == r.headers["X-Openstack-Request-Id"]


def test_lock_and_unlock_are_recorded_and_history_outlives_the_server(api):
    (sid,) = api.create_servers()
    for act in ("lock", "unlock"):
        r = api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {act: None})
        assert r.status_code == 202, r.text
    r = api.delete(f"/v2.1/{{pid}}/servers/{sid}")
    assert r.status_code == 204
    deadline = time.monotonic() + 15
    while api.get(f"/v1/{{pid}}/cloudservers/{sid}").status_code != 404:
        assert time.monotonic() < deadline, "the server was not deleted"
        time.sleep(0.02)
    listed = actions(api, sid)
    assert [a["action"] for a in listed] == ["delete", "unlock", "lock", "create"]
    assert all(a["message"] is None for a in listed)
    lock = action(api, sid, listed[2]["request_id"])
    assert [e["event"] for e in lock["events"]] == ["compute_lock_instance"]


def test_unknown_and_foreign_servers_and_requests(api, other_api):
    (sid,) = api.create_servers()
    assert_error(other_api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions"), 404, "Ecs.0114")
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{s.VPC}/os-instance-actions"), 404, "Ecs.0114")
    assert_error(api.get("/v2.1/{pid}/servers/not-a-uuid/os-instance-actions"), 404, "Ecs.0114")
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions/req-nope"), 404, "Common.0404")
