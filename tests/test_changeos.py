"""Change OS and reinstall OS through the public API: success, every refusal, failures and retries."""

from __future__ import annotations

import base64
import functools
import time

import pytest
from sqlalchemy import text

from ecsd.domain.states import status_of
from tests import support as s
from tests.conftest import add_tenant
from tests.support import Api, assert_error

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (skipped where it is absent)

V1 = "/v1/{pid}/cloudservers/%s/changeos"
V2 = "/v2/{pid}/cloudservers/%s/changeos"
RE1 = "/v1/{pid}/cloudservers/%s/reinstallos"
RE2 = "/v2/{pid}/cloudservers/%s/reinstallos"


def stopped_server(api: Api, image: str = s.UBUNTU, **kw) -> str:
    sid = api.create_servers(image, **kw)[0]
    api.stop(sid)
    return sid


def system_disks(server: dict) -> list[dict]:
    return [v for v in server["os-extended-volumes:volumes_attached"] if v["bootIndex"] == "0"]


def change(api: Api, sid: str, body: dict, path: str = V1):
    return api.post(path % sid, {"os-change": body})




# --- success ------------------------------------------------------------------------------------------

def test_change_os_of_stopped_server_end_to_end(api):
    kp = api.keypair("kp-new")
    sid = stopped_server(api, s.UBUNTU, size=20, name="web", flavor="s3.medium.2")
    before = api.server(sid)
    old_disk = system_disks(before)[0]["id"]

    r = change(api, sid, {"keyname": "kp-new", "imageid": s.EULER})
    assert r.status_code == 200
    job_id = r.json()["job_id"]
    assert len(job_id) == 32 and int(job_id, 16) >= 0

    job = api.wait_job(job_id)
    assert job["status"] == "SUCCESS"
    assert job["job_type"] == "changeOS"
    assert job["entities"] == {"server_id": sid}
    assert job["error_code"] is None and job["fail_reason"] is None
    assert job["begin_time"].endswith("Z") and job["end_time"].endswith("Z")

    after = api.server(sid)
    assert after["status"] == "ACTIVE" and after["OS-EXT-STS:power_state"] == 1
    assert after["OS-EXT-STS:task_state"] is None
    assert after["image"]["id"] == s.EULER
    assert after["metadata"]["image_name"] == "Standard_EulerOS_2.9_latest"
    assert after["metadata"]["os_type"] == "Linux" and after["metadata"]["os_bit"] == "64"
    assert after["metadata"]["metering.image_id"] == s.EULER
    assert after["key_name"] == "kp-new" and kp["name"] == "kp-new"
    disks = system_disks(after)
    assert len(disks) == 1 and disks[0]["id"] != old_disk
    assert after["addresses"] == before["addresses"]

    bd = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
    system = [d for d in bd if d["bootIndex"] == 0]
    assert [d["volumeId"] for d in system] == [disks[0]["id"]]
    assert system[0]["size"] == 40  # max(old 20 GB, EulerOS min_disk 40 GB)


def test_new_disk_never_shrinks(api):
    sid = stopped_server(api, s.EULER, flavor="s3.medium.2")  # 40 GB system disk
    job = api.wait_job(change(api, sid, {"imageid": s.UBUNTU}).json()["job_id"])
    assert job["status"] == "SUCCESS"
    bd = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
    assert [d["size"] for d in bd if d["bootIndex"] == 0] == [40]


def test_data_disks_unchanged(api):
    body = {"server": {"name": "db", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
                       "data_volumes": [{"volumetype": "SAS", "size": 100}]}}
    job = api.wait_job(api.post("/v1/{pid}/cloudservers", body).json()["job_id"])
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    api.stop(sid)
    data_before = [v for v in api.server(sid)["os-extended-volumes:volumes_attached"] if v["bootIndex"] != "0"]
    assert len(data_before) == 1
    assert api.wait_job(change(api, sid, {"imageid": s.DEBIAN}).json()["job_id"])["status"] == "SUCCESS"
    data_after = [v for v in api.server(sid)["os-extended-volumes:volumes_attached"] if v["bootIndex"] != "0"]
    assert data_after == data_before


def test_password_login_without_keyname(api):
    sid = stopped_server(api)
    api.keypair("kp-old")
    r = change(api, sid, {"imageid": s.DEBIAN, "adminpass": "Secur3-Pass!"})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sid)["key_name"] is None


def test_running_server_with_stop_mode_passes_through_states(slow_api):
    api = slow_api
    sid = api.create_servers()[0]
    r = change(api, sid, {"imageid": s.DEBIAN, "mode": "withStopServer"})
    assert r.status_code == 200
    job_id = r.json()["job_id"]
    seen: list[tuple[str, str | None]] = []
    job_statuses = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        srv = api.server(sid)
        state = (srv["status"], srv["OS-EXT-STS:task_state"])
        assert srv["status"] == status_of(srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:task_state"])
        if not seen or seen[-1] != state:
            seen.append(state)
        job = api.job(job_id)
        job_statuses.add(job["status"])
        if job["status"] in ("SUCCESS", "FAIL"):
            break
        time.sleep(0.005)
    assert job["status"] == "SUCCESS"
    final = api.server(sid)
    if seen[-1] != (final["status"], final["OS-EXT-STS:task_state"]):  # job and server commit together
        seen.append((final["status"], final["OS-EXT-STS:task_state"]))
    assert "RUNNING" in job_statuses
    order = [("ACTIVE", "powering-off"), ("REBUILD", "rebuilding"), ("REBUILD", "rebuild_block_device_mapping"),
             ("REBUILD", "rebuild_spawning"), ("ACTIVE", None)]
    assert seen[0] == order[0]
    assert seen[-1] == order[-1]
    assert [x for x in seen if x in order] == [x for x in order if x in seen]  # never out of order
    assert ("REBUILD", "rebuilding") in seen and ("REBUILD", "rebuild_spawning") in seen


def test_userid_resolves_key_pair_of_that_user(api, client, creds):
    # A second user of the same account with a key pair of their own.
    from ecsd.domain import identity

    def add_colleague(conn):
        domain_id = conn.execute(text("SELECT domain_id FROM users WHERE id = :id"), {"id": creds["user_id"]}).scalar()
        uid = identity.create_user(conn, domain_id, "colleague", "Colleague-Pass1")
        identity.add_member(conn, uid, creds["project_id"])
        return uid

    colleague_id = client.app.state.services.store.run_sync(add_colleague)
    colleague = Api(client, {**creds, "user_name": "colleague", "password": "Colleague-Pass1"})
    colleague.keypair("kp-colleague")
    sid = stopped_server(api)
    # The caller has no such key pair ...
    assert_error(change(api, sid, {"imageid": s.DEBIAN, "keyname": "kp-colleague"}), 400, "Ecs.0314")
    # ... but with userid the colleague's key pair is used.
    r = change(api, sid, {"imageid": s.DEBIAN, "keyname": "kp-colleague", "userid": colleague_id})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sid)["key_name"] == "kp-colleague"


def test_v2_with_user_data(api):
    sid = stopped_server(api)
    user_data = base64.b64encode(b"#!/bin/sh\necho hello\n").decode()
    r = change(api, sid, {"imageid": s.UBUNTU, "metadata": {"user_data": user_data,
                                                             "__system__encrypted": "0"}}, V2)
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sid)["OS-EXT-SRV-ATTR:user_data"] == user_data


def test_v2_encrypted_system_disk_accepted_with_key(api):
    sid = stopped_server(api)
    r = change(api, sid, {"imageid": s.UBUNTU, "metadata": {"__system__encrypted": "1",
                                                             "__system__cmkid": "83cdb52d-9ebf-4469-9cfa-e7b5b80da846"}}, V2)
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


def test_reinstall_keeps_image_and_replaces_disk(api):
    api.keypair("kp-r")
    sid = stopped_server(api, s.DEBIAN)
    old_disk = system_disks(api.server(sid))[0]["id"]
    r = api.post(RE1 % sid, {"os-reinstall": {"keyname": "kp-r", "userid": api.creds["user_id"]}})
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS" and job["job_type"] == "reinstallOS"
    srv = api.server(sid)
    assert srv["image"]["id"] == s.DEBIAN and srv["key_name"] == "kp-r"
    assert system_disks(srv)[0]["id"] != old_disk


def test_reinstall_v2_with_user_data(api):
    sid = stopped_server(api)
    ud = base64.b64encode(b"#cloud-config\n").decode()
    r = api.post(RE2 % sid, {"os-reinstall": {"userid": api.creds["user_id"], "metadata": {"user_data": ud}}})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


def test_reinstall_refused_when_current_image_is_gone(api, client):
    sid = stopped_server(api)
    s.sql(client, "UPDATE images SET status = 'deleted' WHERE id = :id", id=s.UBUNTU)
    assert_error(api.post(RE1 % sid, {"os-reinstall": {}}), 400, "Ecs.0031")
    s.sql(client, "UPDATE images SET status = 'saving' WHERE id = :id", id=s.UBUNTU)
    assert_error(api.post(RE1 % sid, {"os-reinstall": {}}), 400, "Ecs.0032")


# --- refusals: request ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, code", [
    (b"", "Common.0002"),
    (b"   ", "Common.0002"),
    (b"{not json", "Ecs.0005"),
    (b"[]", "Ecs.0005"),
    (b"null", "Ecs.0005"),
    (b'{"os-change": null}', "Ecs.0005"),
    (b'{"os-change": {}}', "Ecs.0005"),
    (b'{"os_change": {"imageid": "%s"}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'{"os-change": {"imageid": 123}}', "Ecs.0005"),
    (b'{"os-change": {"imageid": "not-a-uuid"}}', "Ecs.0005"),
    (b'{"os-change": {"imageid": "%s", "keyname": 7}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'{"os-change": {"imageid": "%s", "mode": "withoutStop"}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'{"os-change": {"imageid": "%s", "surprise": 1}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'{"os-change": {"imageid": "%s", "metadata": {"BYOL": true}}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'{"os-change": {"imageid": "%s", "metadata": {"user_data": "aGk="}}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'{"os-change": {"imageid": "%s", "metadata": "x"}}' % s.DEBIAN.encode(), "Ecs.0005"),
    (b'\xff\xfe\x00', "Ecs.0005"),
])
def test_malformed_bodies(api, raw, code):
    sid = stopped_server(api)
    r = api.post(V1 % sid, content=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, code)


def test_oversized_body(api):
    sid = stopped_server(api)
    big = b'{"os-change": {"imageid": "%s", "keyname": "%s"}}' % (s.DEBIAN.encode(), b"k" * 300_000)
    assert_error(api.post(V1 % sid, content=big), 400, "Ecs.0005")


@pytest.mark.parametrize("metadata", [
    {"user_data": "***not base64***"},
    {"user_data": base64.b64encode(b"x" * (32 * 1024 + 1)).decode()},
    {"__system__encrypted": "1"},
    {"__system__encrypted": "2", "__system__cmkid": "k"},
    {"user_data": 5},
])
def test_v2_metadata_refused(api, metadata):
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": s.UBUNTU, "metadata": metadata}, V2), 400, "Ecs.0005")


def test_v2_user_data_at_limit_accepted(api):
    sid = stopped_server(api)
    ud = base64.b64encode(b"x" * (32 * 1024)).decode()
    r = change(api, sid, {"imageid": s.UBUNTU, "metadata": {"user_data": ud}}, V2)
    assert r.status_code == 200, r.text


def test_keyname_and_adminpass_together_refused(api):
    api.keypair("kp-both")
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": s.DEBIAN, "keyname": "kp-both", "adminpass": "Secur3-Pass!"}),
                 400, "Ecs.0005")


@pytest.mark.parametrize("password", ["short1A!", "alllowercase123", "root-Passw0rd", "Tooo-long-password-12345678"])
def test_weak_admin_password(api, password):
    sid = stopped_server(api)
    expected = 200 if password == "short1A!" else 400
    r = change(api, sid, {"imageid": s.DEBIAN, "adminpass": password})
    if expected == 400:
        assert_error(r, 400, "Ecs.0011")
    else:
        assert r.status_code == 200


def test_unknown_key_pair(api):
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": s.DEBIAN, "keyname": "nope"}), 400, "Ecs.0314")


def test_userid_of_another_account_refused(api, client):
    other = add_tenant(client, "d2", "u2", "Passw0rd-2x", "p2")
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": s.DEBIAN, "keyname": "k", "userid": other["user_id"]}),
                 400, "Ecs.0005")


def test_byol_only_for_licensed_platforms(api):
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": s.DEBIAN, "metadata": {"BYOL": "true"}}), 400, "Ecs.0090")
    r = change(api, sid, {"imageid": s.DEBIAN, "metadata": {"BYOL": "false"}})
    assert r.status_code == 200


# --- refusals: resources and state ---------------------------------------------------------------------------

@pytest.mark.parametrize("image, code", [
    ("3f0c7bde-4e4b-4a47-9a41-3c3e3f3e3f3e", "Ecs.0031"),
    (s.EULER, "Ecs.0007"),          # needs 2 GB of memory, the flavor has 1 GB
    (s.FEDORA_QUEUED, "Ecs.0032"),
    (s.DATA_IMAGE, "Ecs.0007"),
    (s.UBUNTU_UEFI, "Ecs.0007"),
])
def test_image_refusals(api, image, code):
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": image}), 400, code)
    assert api.server(sid)["status"] == "SHUTOFF"  # nothing happened


def test_private_image_of_another_project_is_invisible(api, client):
    other = add_tenant(client, "d3", "u3", "Passw0rd-3x", "p3")
    s.sql(client, "UPDATE images SET visibility = 'private', owner = :o WHERE id = :id", o=other["project_id"],
          id=s.CENTOS)
    sid = stopped_server(api)
    assert_error(change(api, sid, {"imageid": s.CENTOS}), 400, "Ecs.0031")


@pytest.mark.parametrize("server_id", ["0c7a4b8e-5d3f-4e2a-9b1c-7d6e5f4a3b2c", "not-a-uuid", "x" * 300])
def test_unknown_server(api, server_id):
    assert_error(change(api, server_id, {"imageid": s.DEBIAN}), 404, "Ecs.0114")


def test_server_of_another_project(api, other_api):
    sid = stopped_server(other_api)
    assert_error(change(api, sid, {"imageid": s.DEBIAN}), 404, "Ecs.0114")
    # and with the other project's id in the path, the token does not match
    assert_error(api.post(f"/v1/{other_api.pid}/cloudservers/{sid}/changeos", {"os-change": {"imageid": s.DEBIAN}}),
                 400, "Ecs.0023")


def test_authentication_required(api):
    sid = stopped_server(api)
    assert_error(api.post(V1 % sid, {"os-change": {"imageid": s.DEBIAN}}, token=False), 401, "Common.0013")
    assert_error(api.post(V1 % sid, {"os-change": {"imageid": s.DEBIAN}}, token=False,
                          headers={"X-Auth-Token": "forged"}), 401, "Common.0013")


def test_running_server_without_stop_mode(api):
    sid = api.create_servers()[0]
    assert_error(change(api, sid, {"imageid": s.DEBIAN}), 400, "Ecs.0100")
    assert api.server(sid)["status"] == "ACTIVE"


def test_locked_server(api, client):
    sid = stopped_server(api)
    s.sql(client, "UPDATE servers SET locked = :yes WHERE id = :id", yes=True, id=sid)
    assert_error(change(api, sid, {"imageid": s.DEBIAN}), 400, "Ecs.0605")
    assert_error(api.post(RE1 % sid, {"os-reinstall": {}}), 400, "Ecs.0605")


def test_no_system_disk(api, client):
    # Reachable on the cloud by detaching the system disk of a stopped ECS (rule 33).
    sid = stopped_server(api)
    s.sql(client, "UPDATE volumes SET server_id = NULL, boot_index = NULL, status = 'available' "
                  "WHERE server_id = :id", id=sid)
    assert_error(change(api, sid, {"imageid": s.DEBIAN}), 400, "Ecs.0105")


def test_everything_refused_while_the_change_runs(slow_api):
    api = slow_api
    sid = stopped_server(api)
    with s.held(api):
        job_id = change(api, sid, {"imageid": s.DEBIAN}).json()["job_id"]
        assert api.server(sid)["status"] == "REBUILD"
        assert_error(change(api, sid, {"imageid": s.CENTOS}), 400, "Ecs.0100")
        assert_error(api.post(RE1 % sid, {"os-reinstall": {}}), 400, "Ecs.0100")
        for action in ({"os-start": {"servers": [{"id": sid}]}}, {"os-stop": {"servers": [{"id": sid}]}},
                       {"reboot": {"type": "SOFT", "servers": [{"id": sid}]}}):
            assert_error(api.post("/v1/{pid}/cloudservers/action", action), 400, "Ecs.0100")
        assert_error(api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]}), 400, "Ecs.0100")
        assert_error(api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"name": "x"}}), 400, "Ecs.0100")
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    assert api.server(sid)["image"]["id"] == s.DEBIAN


def test_concurrent_requests_exactly_one_accepted(slow_api):
    api = slow_api
    sid = stopped_server(api)
    results = s.at_once(*(functools.partial(change, api, sid, {"imageid": image})
                          for image in [s.DEBIAN, s.CENTOS, s.UBUNTU] * 4))
    accepted = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert len(accepted) == 1
    assert all(r.status_code == 400 and r.json()["error"]["code"] == "Ecs.0100" for r in refused)
    assert api.wait_job(accepted[0].json()["job_id"])["status"] == "SUCCESS"
    assert len(system_disks(api.server(sid))) == 1


# --- failures and retries ----------------------------------------------------------------------------------

def test_disk_creation_failure_then_retry(api):
    sid = stopped_server(api)
    old_disk = system_disks(api.server(sid))[0]["id"]
    job = api.wait_job(change(api, sid, {"imageid": s.FAULTY_DISK}).json()["job_id"])
    assert job["status"] == "FAIL"
    assert job["error_code"] == "Ecs.0202" and job["fail_reason"]
    assert job["end_time"]
    srv = api.server(sid)
    assert srv["status"] == "ERROR"
    assert srv["fault"]["code"] == "Ecs.0202"
    assert [d["id"] for d in system_disks(srv)] == [old_disk]  # the old disk stayed, alone
    assert srv["image"]["id"] == s.UBUNTU

    retry = api.wait_job(change(api, sid, {"imageid": s.DEBIAN}).json()["job_id"])
    assert retry["status"] == "SUCCESS"
    srv = api.server(sid)
    assert srv["status"] == "ACTIVE" and srv["fault"] is None and srv["image"]["id"] == s.DEBIAN
    assert len(system_disks(srv)) == 1


def test_boot_failure_leaves_new_disk_and_allows_reinstall(api):
    sid = stopped_server(api)
    job = api.wait_job(change(api, sid, {"imageid": s.FAULTY_BOOT}).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0226"
    srv = api.server(sid)
    assert srv["status"] == "ERROR" and srv["image"]["id"] == s.FAULTY_BOOT
    assert len(system_disks(srv)) == 1
    # A failed change may be retried as a change or a reinstall; here: change to a good image.
    assert api.wait_job(change(api, sid, {"imageid": s.CENTOS}).json()["job_id"])["status"] == "SUCCESS"


def test_error_from_other_causes_is_not_a_retry_state(api):
    body = {"server": {"name": "broken", "imageRef": s.FAULTY_DISK, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
    job = api.wait_job(api.post("/v1/{pid}/cloudservers", body).json()["job_id"])
    assert job["status"] == "FAIL"
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    assert api.server(sid)["status"] == "ERROR"
    assert_error(change(api, sid, {"imageid": s.DEBIAN}), 400, "Ecs.0100")


# --- jobs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("job_id", ["0" * 32, "not-a-job", "ABCDEF" * 6, "x" * 1000])
def test_unknown_job(api, job_id):
    assert_error(api.get(f"/v1/{{pid}}/jobs/{job_id}"), 400, "Common.0011")


def test_job_of_another_project_is_unknown(api, other_api):
    sid = stopped_server(other_api)
    job_id = change(other_api, sid, {"imageid": s.DEBIAN}).json()["job_id"]
    assert_error(api.get(f"/v1/{{pid}}/jobs/{job_id}"), 400, "Common.0011")
    assert other_api.wait_job(job_id)["status"] == "SUCCESS"


def test_server_left_behind_by_a_vanished_job_is_settled_at_start(settings, creds):
    from starlette.testclient import TestClient

    from ecsd.app import create_app

    with TestClient(create_app(settings)) as c:
        api = Api(c, creds)
        sid = stopped_server(api)
        # Simulate a server whose job row was lost mid-change (e.g. a database restored from backup).
        s.sql(c, "UPDATE servers SET task_state = 'rebuild_spawning', job_id = :j WHERE id = :id", j="f" * 32, id=sid)
        assert api.server(sid)["status"] == "REBUILD"
    with TestClient(create_app(settings)) as c:
        srv = Api(c, creds).server(sid)
        assert srv["status"] == "ERROR" and srv["OS-EXT-STS:task_state"] is None
        r = Api(c, creds).post(V1 % sid, {"os-change": {"imageid": s.DEBIAN}})  # and may be retried
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("image, code, shown", [(s.FAULTY_DISK, "Ecs.0202", s.UBUNTU),
                                                 (s.FAULTY_BOOT, "Ecs.0226", s.FAULTY_BOOT)])
def test_a_failed_change_shows_the_image_of_the_system_disk_in_every_view(api, image, code, shown):
    """Before the new disk became the system disk (create disk, inject) the server keeps its image;
    after (delete old disk, start) it has the new one, since that disk is in place. The v1 view, the
    Nova view and the metadata agree; Nova's fault has an Integer code with the ECS code in its message."""
    sid = stopped_server(api)
    job = api.wait_job(change(api, sid, {"imageid": image}).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == code
    v1 = api.server(sid)
    nova = api.get(f"/v2.1/{{pid}}/servers/{sid}").json()["server"]
    names = {i["id"]: i["name"] for i in api.get("/v2/cloudimages?limit=1000").json()["images"]}
    assert v1["image"]["id"] == nova["image"]["id"] == v1["metadata"]["metering.image_id"] == shown
    assert v1["metadata"]["image_name"] == names[shown]
    assert v1["fault"]["code"] == code
    assert nova["fault"]["code"] == 500 and nova["fault"]["message"].startswith(code)
