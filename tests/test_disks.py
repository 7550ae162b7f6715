"""Attaching and detaching disks through the public API: success, every refusal, gates, concurrency,
failures, shared disks on several servers, the system disk, and the Huawei SDK's own calls."""

from __future__ import annotations

import functools
import time
import uuid

import pytest

from ecsd.app import operator_credentials
from ecsd.domain import attachments, invariants
from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401
from tests.support import Api, assert_error

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (skipped where it is absent)

ATTACH = "/v1/{pid}/cloudservers/%s/attachvolume"
DETACH = "/v1/{pid}/cloudservers/%s/detachvolume/%s"
BATCH = "/v1/{pid}/batchaction/attachvolumes/%s"
NOVA = "/v2.1/{pid}/servers/%s/os-volume_attachments"
BLOCK = "/v1/{pid}/cloudservers/%s/block_device"


# --- helpers -----------------------------------------------------------------------------------------------

def new_disk(api: Api, *, shared: bool = False, az: str | None = None, project: str | None = None,
             status: str = "available", size: int = 10) -> str:
    """A data disk as EVS would hold it (written directly: the EVS API is another module's)."""
    vid = str(uuid.uuid4())
    s.sql(api.client, "INSERT INTO volumes (id, project_id, server_id, image_id, size, volume_type, boot_index, "
                      "device, status, created_at, name, description, multiattach, metadata, availability_zone) "
                      "VALUES (:id, :pid, NULL, NULL, :size, 'SSD', NULL, NULL, :status, :now, 'd', '', :shared, "
                      "'{}', :az)", id=vid, pid=project or api.pid, size=size, status=status, now=time.time(),
          shared=shared, az=az)
    return vid


def volume(api: Api, vid: str) -> dict:
    row = s.sql(api.client, "SELECT status, server_id, device, boot_index, job_id FROM volumes WHERE id = :id",
                id=vid).first()
    return dict(row._mapping) if row is not None else None


def attach(api: Api, sid: str, vid: str, device: str | None = None, **extra):
    body: dict = {"volumeAttachment": {"volumeId": vid, **({"device": device} if device else {})}, **extra}
    return api.post(ATTACH % sid, body)


def attached(api: Api, sid: str, vid: str, device: str | None = None) -> dict:
    r = attach(api, sid, vid, device)
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    return job


def detached(api: Api, sid: str, vid: str, query: str = "") -> dict:
    r = api.delete(DETACH % (sid, vid) + query)
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    return job


def devices(api: Api, sid: str) -> dict[str, str]:
    """volume id -> device, from block_device."""
    r = api.get(BLOCK % sid)
    assert r.status_code == 200, r.text
    return {d["volumeId"]: d["device"] for d in r.json()["volumeAttachments"]}


def shown(api: Api, sid: str) -> list[str]:
    return [v["id"] for v in api.server(sid)["os-extended-volumes:volumes_attached"]]


def server_with_data(api: Api, sizes: tuple[int, ...] = (10,)) -> tuple[str, list[str]]:
    body = {"server": {"name": "d", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
                       "data_volumes": [{"volumetype": "SSD", "size": n} for n in sizes]}}
    job = api.wait_job(api.post("/v1/{pid}/cloudservers", body).json()["job_id"])
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    data = [d["volumeId"] for d in api.get(BLOCK % sid).json()["volumeAttachments"] if d["bootIndex"] != 0]
    return sid, data


def check_invariants(api: Api) -> None:
    found = api.client.app.state.services.store.run_sync(
        lambda conn: invariants.attachments_consistent(conn) + invariants.one_system_disk(conn)
        + invariants.servers_released(conn))
    assert found == []


def fault(api: Api, settings, operation: str, code: str) -> None:
    token = operator_credentials(settings)["operator_token"]
    r = api.client.post("/_ecsd/faults", json={"operation": operation, "code": code},
                        headers={"X-Ecsd-Operator-Token": token})
    assert r.status_code == 201, r.text


# --- success -----------------------------------------------------------------------------------------------

def test_attach_and_detach_end_to_end(api):
    sid = api.create_servers()[0]
    vid = new_disk(api)
    job = attached(api, sid, vid)
    assert job["job_type"] == "attachVolume" and job["entities"] == {"server_id": sid}
    assert volume(api, vid) == {"status": "in-use", "server_id": sid, "device": "/dev/vdb", "boot_index": None,
                                "job_id": None}
    assert devices(api, sid)[vid] == "/dev/vdb"
    assert vid in shown(api, sid)
    one = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device/{vid}").json()["volumeAttachment"]
    assert one["bootIndex"] == -1 and one["device"] == "/dev/vdb" and one["size"] == 10
    nova = api.get(NOVA % sid).json()["volumeAttachments"]
    assert {"serverId": sid, "volumeId": vid, "id": vid, "device": "/dev/vdb"} in nova
    server = api.server(sid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None

    job = detached(api, sid, vid)
    assert job["job_type"] == "detachVolume"
    assert volume(api, vid) == {"status": "available", "server_id": None, "device": None, "boot_index": None,
                                "job_id": None}
    assert vid not in shown(api, sid) and vid not in devices(api, sid)
    actions = [a["action"] for a in api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions").json()
               ["instanceActions"]]
    assert "attach_volume" in actions and "detach_volume" in actions
    check_invariants(api)


def test_attach_to_a_stopped_server(api):
    sid = api.create_servers()[0]
    api.stop(sid)
    vid = new_disk(api)
    attached(api, sid, vid)
    assert api.server(sid)["status"] == "SHUTOFF" and vid in shown(api, sid)


def test_device_allocation(api):
    sid, (vdb, vdc) = server_with_data(api, (10, 20))
    assert devices(api, sid)[vdb] == "/dev/vdb" and devices(api, sid)[vdc] == "/dev/vdc"
    detached(api, sid, vdb)
    first = new_disk(api)
    attached(api, sid, first)                           # the first free data device
    assert devices(api, sid)[first] == "/dev/vdb"
    named = new_disk(api)
    attached(api, sid, named, "/dev/sdf")               # /dev/sdX is /dev/vdX on KVM, out of order allowed
    assert devices(api, sid)[named] == "/dev/vdf"
    other = new_disk(api)
    for device in ("/dev/vdc", "/dev/vda", "/dev/vdz", "/dev/hda", "vdg", "/dev/vdgg"):
        assert_error(attach(api, sid, other, device), 400, "Ecs.0005")
    attached(api, sid, other)
    assert devices(api, sid)[other] == "/dev/vdd"
    check_invariants(api)


def test_dry_run_checks_and_changes_nothing(api):
    sid = api.create_servers()[0]
    vid = new_disk(api)
    r = attach(api, sid, vid, dry_run=True)
    assert r.status_code == 202, r.text
    assert volume(api, vid)["status"] == "available" and vid not in shown(api, sid)
    assert_error(attach(api, sid, str(uuid.uuid4()), dry_run=True), 400, "Ecs.0103")


def test_the_models_optional_fields_are_accepted(api):
    sid = api.create_servers()[0]
    vid = new_disk(api)
    r = api.post(ATTACH % sid, {"volumeAttachment": {"volumeId": vid, "volume_type": "SSD", "count": 1,
                                                     "hw:passthrough": "false"}, "dry_run": False})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


def test_nova_attach_and_detach(api):
    sid = api.create_servers()[0]
    vid = new_disk(api)
    r = api.post(NOVA % sid, {"volumeAttachment": {"volumeId": vid, "device": "/dev/sdb"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"volumeAttachment": {"device": "/dev/vdb", "serverId": sid, "id": vid, "volumeId": vid}}
    deadline = time.monotonic() + 10
    while volume(api, vid)["status"] != "in-use":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert api.get(f"{NOVA % sid}/{vid}").json()["volumeAttachment"]["device"] == "/dev/vdb"
    r = api.delete(f"{NOVA % sid}/{vid}")
    assert r.status_code == 202 and r.content == b""
    while volume(api, vid)["status"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert_error(api.get(f"{NOVA % sid}/{vid}"), 400, "Ecs.0111")


def test_discarded_block_device_paths(api):
    sid = api.create_servers()[0]
    system = shown(api, sid)[0]
    whole = api.get(f"/v2.1/servers/{sid}/block_device").json()
    assert whole == api.get(BLOCK % sid).json()
    assert whole["attachableQuantity"]["free_blk"] == 23
    one = api.get(f"/v2.1/servers/{sid}/block_device/{system}").json()["volumeAttachment"]
    assert one["bootIndex"] == 0 and one["device"] == "/dev/vda"


# --- the system disk ----------------------------------------------------------------------------------------

def test_system_disk_detached_only_when_stopped_and_reattached(api):
    sid = api.create_servers()[0]
    system = shown(api, sid)[0]
    assert_error(api.delete(DETACH % (sid, system)), 400, "Ecs.0100")           # running
    assert_error(api.delete(f"{NOVA % sid}/{system}"), 400, "Ecs.0100")
    api.stop(sid)
    detached(api, sid, system)
    assert shown(api, sid) == [] and volume(api, system)["status"] == "available"
    r = api.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": sid}]}})
    assert_error(r, 400, "Ecs.0105")                                             # no system disk: no start
    assert_error(api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {"imageid": s.DEBIAN}}),
                 400, "Ecs.0105")
    check_invariants(api)
    attached(api, sid, system, "/dev/vda")                                      # it is the system disk again
    assert volume(api, system)["boot_index"] == 0
    r = api.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": sid}]}})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sid)["status"] == "ACTIVE"


def test_without_device_a_disk_never_becomes_the_system_disk(api):
    sid = api.create_servers()[0]
    api.stop(sid)
    detached(api, sid, shown(api, sid)[0])
    vid = new_disk(api)
    attached(api, sid, vid)
    assert volume(api, vid)["device"] == "/dev/vdb" and volume(api, vid)["boot_index"] is None


# --- refusals -----------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [
    {}, {"volumeAttachment": {}}, {"volumeAttachment": {"volumeId": "not-a-uuid"}},
    {"volumeAttachment": {"volumeId": str(uuid.uuid4()), "extra": 1}},
    {"volumeAttachment": {"volumeId": str(uuid.uuid4()), "hw:passthrough": "yes"}},
    {"volumeAttachment": {"volumeId": str(uuid.uuid4()), "count": 0}},
    {"volumeAttachment": {"volumeId": 5}}, {"volumeAttachment": {"volumeId": str(uuid.uuid4())}, "dry_run": "x"},
])
def test_malformed_attach_bodies(api, body):
    assert_error(api.post(ATTACH % str(uuid.uuid4()), body), 400, "Ecs.0005")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [{}, {"serverinfo": []}, {"serverinfo": [{"device": "/dev/vdb"}]},
                                  {"serverinfo": [{"server_id": 1}]}])
def test_malformed_batch_bodies(api, body):
    assert_error(api.post(BATCH % str(uuid.uuid4()), body), 400, "Ecs.0005")


def test_unknown_server_and_foreign_server(api, other_api):
    vid = new_disk(api)
    for sid in (str(uuid.uuid4()), "nope"):
        assert_error(attach(api, sid, vid), 404, "Ecs.0114")
        assert_error(api.delete(DETACH % (sid, vid)), 404, "Ecs.0114")
    theirs = other_api.create_servers()[0]
    assert_error(attach(api, theirs, vid), 404, "Ecs.0114")
    assert_error(api.delete(DETACH % (theirs, vid)), 404, "Ecs.0114")


def test_disk_refusals(api, other_api):
    sid, (own,) = server_with_data(api)
    other = api.create_servers()[0]
    assert_error(attach(api, sid, str(uuid.uuid4())), 400, "Ecs.0103")                      # no such disk
    assert_error(attach(api, sid, new_disk(api, project=other_api.pid)), 400, "Ecs.0103")   # not ours
    assert_error(attach(api, sid, own), 400, "Ecs.0057")                                    # already here
    assert_error(attach(api, other, own), 400, "Ecs.0103")                                  # in use elsewhere
    assert_error(attach(api, sid, new_disk(api, az="eu-de-02")), 400, "Ecs.0121")           # another AZ
    assert_error(attach(api, sid, new_disk(api, status="error")), 400, "Ecs.0103")
    busy = new_disk(api)
    s.sql(api.client, "UPDATE volumes SET job_id = :j WHERE id = :id", j="f" * 32, id=busy)
    assert_error(attach(api, sid, busy), 400, "Ecs.0103")                                   # in an operation
    assert_error(api.delete(DETACH % (other, own)), 400, "Ecs.0111")                        # not attached there
    assert_error(api.delete(DETACH % (sid, str(uuid.uuid4()))), 400, "Ecs.0111")
    assert_error(api.delete(DETACH % (sid, "x")), 400, "Ecs.0111")
    assert_error(api.delete(DETACH % (sid, own) + "?delete_flag=2"), 400, "Ecs.0005")


def test_at_most_23_data_disks(api):
    sid = api.create_servers()[0]
    for device in attachments.DATA_DEVICES:
        vid = new_disk(api)
        s.sql(api.client, "UPDATE volumes SET server_id = :sid, device = :dev, status = 'in-use' WHERE id = :id",
              sid=sid, dev=device, id=vid)
    assert_error(attach(api, sid, new_disk(api)), 400, "Ecs.0104")
    assert api.get(BLOCK % sid).json()["attachableQuantity"]["free_blk"] == 0


def test_locked_and_error_servers(api):
    sid, (own,) = server_with_data(api)
    vid = new_disk(api)
    s.sql(api.client, "UPDATE servers SET locked = :yes WHERE id = :id", yes=True, id=sid)
    assert_error(attach(api, sid, vid), 400, "Ecs.0605")
    assert_error(api.delete(DETACH % (sid, own)), 400, "Ecs.0605")
    s.sql(api.client, "UPDATE servers SET locked = :no, vm_state = 'error' WHERE id = :id", no=False, id=sid)
    assert_error(attach(api, sid, vid), 400, "Ecs.0100")
    assert_error(api.delete(DETACH % (sid, own)), 400, "Ecs.0100")
    assert volume(api, vid)["status"] == "available"


# --- in flight: gates and concurrency ---------------------------------------------------------------------

def test_everything_refused_while_an_attach_runs(slow_api):
    api = slow_api
    sid = api.create_servers()[0]
    other = api.create_servers()[0]
    vid, second = new_disk(api), new_disk(api)
    with s.held(api):
        job_id = attach(api, sid, vid).json()["job_id"]
        server = api.server(sid)
        assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
        assert volume(api, vid)["status"] == "attaching" and volume(api, vid)["job_id"] == job_id
        assert_error(attach(api, sid, second), 400, "Ecs.0100")
        assert_error(attach(api, other, vid), 400, "Ecs.0103")
        assert_error(api.delete(DETACH % (sid, shown(api, sid)[0])), 400, "Ecs.0100")
        assert_error(api.post("/v1/{pid}/cloudservers/action", {"os-stop": {"servers": [{"id": sid}]}}),
                     400, "Ecs.0100")
        assert_error(api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]}), 400, "Ecs.0100")
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    assert volume(api, vid)["status"] == "in-use"
    with s.held(api):
        job_id = api.delete(DETACH % (sid, vid)).json()["job_id"]
        assert volume(api, vid)["status"] == "detaching"
        assert_error(api.delete(DETACH % (sid, vid)), 400, "Ecs.0100")
    assert api.wait_job(job_id)["status"] == "SUCCESS"


def test_two_attaches_of_one_disk_exactly_one_accepted(slow_api):
    api = slow_api
    ids = api.create_servers(count=2)
    vid = new_disk(api)
    results = s.at_once(*(functools.partial(attach, api, ids[i % 2], vid) for i in range(8)))
    accepted = [r for r in results if r.status_code == 200]
    assert len(accepted) == 1, [r.text for r in results]
    assert all(r.status_code == 400 and r.json()["error"]["code"] in ("Ecs.0100", "Ecs.0103")
               for r in results if r.status_code != 200)
    assert api.wait_job(accepted[0].json()["job_id"])["status"] == "SUCCESS"
    assert [sid for sid in ids if vid in shown(api, sid)] == [volume(api, vid)["server_id"]]
    check_invariants(api)


# --- failures -----------------------------------------------------------------------------------------------

def test_failed_attach_leaves_the_disk_available_and_the_server_as_it_was(api, settings):
    sid = api.create_servers()[0]
    vid = new_disk(api)
    fault(api, settings, "attachVolume", "Ecs.0205")
    job = api.wait_job(attach(api, sid, vid).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0205" and job["fail_reason"]
    assert volume(api, vid)["status"] == "available" and volume(api, vid)["job_id"] is None
    server = api.server(sid)
    assert server["status"] == "ACTIVE" and server["fault"] is None and vid not in shown(api, sid)
    attached(api, sid, vid)                                                   # and it can be tried again
    fault(api, settings, "detachVolume", "Ecs.0102")
    job = api.wait_job(api.delete(DETACH % (sid, vid)).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0102"
    assert volume(api, vid)["status"] == "in-use" and vid in shown(api, sid)
    assert api.server(sid)["status"] == "ACTIVE"
    check_invariants(api)


def test_disks_left_by_a_vanished_job_are_settled(api):
    sid = api.create_servers()[0]
    vid, gone = new_disk(api), new_disk(api)
    attached(api, sid, vid)
    s.sql(api.client, "UPDATE volumes SET status = 'detaching', job_id = :j WHERE id = :id", j="e" * 32, id=vid)
    s.sql(api.client, "UPDATE volumes SET status = 'attaching', job_id = :j WHERE id = :id", j="d" * 32, id=gone)
    creating = new_disk(api, status="creating")        # a server create's disk: its job is the server's
    settled = api.client.app.state.services.store.run_sync(attachments.settle_orphan_volumes)
    assert settled == 2
    assert volume(api, vid)["status"] == "in-use" and volume(api, gone)["status"] == "available"
    assert volume(api, vid)["job_id"] is None and volume(api, creating)["status"] == "creating"


# --- shared disks -------------------------------------------------------------------------------------------

def test_shared_disk_on_two_servers(api):
    a, b = api.create_servers(count=2)
    vid = new_disk(api, shared=True)
    r = api.post(BATCH % vid, {"serverinfo": [{"server_id": a}, {"server_id": b, "device": "/dev/sdc"}]})
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS" and job["job_type"] == "batchAttachVolume", job
    subs = job["entities"]["sub_jobs"]
    assert sorted(x["entities"]["server_id"] for x in subs) == sorted([a, b])
    assert {x["job_type"] for x in subs} == {"attachVolume"}
    assert devices(api, a)[vid] == "/dev/vdb" and devices(api, b)[vid] == "/dev/vdc"
    assert vid in shown(api, a) and vid in shown(api, b)
    assert volume(api, vid) == {"status": "in-use", "server_id": None, "device": None, "boot_index": None,
                                "job_id": None}
    assert_error(attach(api, a, vid), 400, "Ecs.0057")
    assert_error(api.post(BATCH % vid, {"serverinfo": [{"server_id": a}]}), 400, "Ecs.0057")
    check_invariants(api)

    c = api.create_servers()[0]
    attached(api, c, vid)                              # a shared disk in use takes one more server
    detached(api, a, vid)
    assert vid not in shown(api, a) and vid in shown(api, b) and volume(api, vid)["status"] == "in-use"
    # deleting a server never deletes a shared disk, even with delete_volume: it only leaves it
    for sid in (b, c):
        r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
        assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert volume(api, vid)["status"] == "available"
    check_invariants(api)


def test_a_shared_disk_in_a_batch_is_busy_until_its_last_sub_job_ends(slow_api):
    api = slow_api
    a, b, c = api.create_servers(count=3)
    vid = new_disk(api, shared=True)
    attached(api, a, vid)
    with s.held(api):
        parent = api.post(BATCH % vid, {"serverinfo": [{"server_id": b}, {"server_id": c}]}).json()["job_id"]
        assert volume(api, vid)["status"] == "attaching" and volume(api, vid)["job_id"] == parent
        assert_error(api.delete(DETACH % (a, vid)), 400, "Ecs.0102")          # the disk is in an operation
        assert vid in shown(api, a) and vid not in shown(api, b)
    assert api.wait_job(parent)["status"] == "SUCCESS"
    assert volume(api, vid)["status"] == "in-use" and volume(api, vid)["job_id"] is None
    assert all(vid in shown(api, sid) for sid in (a, b, c))
    detached(api, a, vid)


def test_batch_attach_is_all_or_nothing(api):
    a = api.create_servers()[0]
    vid = new_disk(api, shared=True)
    plain = new_disk(api)
    assert_error(api.post(BATCH % plain, {"serverinfo": [{"server_id": a}]}), 400, "Ecs.0103")  # not shared
    assert_error(api.post(BATCH % str(uuid.uuid4()), {"serverinfo": [{"server_id": a}]}), 400, "Ecs.0103")
    assert_error(api.post(BATCH % vid, {"serverinfo": [{"server_id": a}, {"server_id": str(uuid.uuid4())}]}),
                 404, "Ecs.0114")
    assert_error(api.post(BATCH % vid, {"serverinfo": [{"server_id": a}, {"server_id": a}]}), 400, "Ecs.0005")
    s.sql(api.client, "UPDATE servers SET locked = :yes WHERE id = :id", yes=True, id=a)
    b = api.create_servers()[0]
    assert_error(api.post(BATCH % vid, {"serverinfo": [{"server_id": b}, {"server_id": a}]}), 400, "Ecs.0605")
    assert volume(api, vid)["status"] == "available" and vid not in shown(api, b)
    assert api.server(b)["OS-EXT-STS:task_state"] is None


def test_a_failing_sub_job_fails_the_batch_and_keeps_the_others(api, settings):
    a, b = api.create_servers(count=2)
    vid = new_disk(api, shared=True)
    token = operator_credentials(settings)["operator_token"]
    r = api.client.post("/_ecsd/faults", json={"operation": "attachVolume", "code": "Ecs.0205", "server_id": b},
                        headers={"X-Ecsd-Operator-Token": token})
    assert r.status_code == 201, r.text
    job = api.wait_job(api.post(BATCH % vid, {"serverinfo": [{"server_id": a}, {"server_id": b}]}).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Common.0021"
    assert vid in shown(api, a) and vid not in shown(api, b)
    assert volume(api, vid)["status"] == "in-use" and volume(api, vid)["job_id"] is None
    check_invariants(api)


# --- deleting servers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("delete_volume", [False, True])
def test_deleting_a_server_keeps_or_deletes_its_data_disks(api, delete_volume):
    sid, (created,) = server_with_data(api)
    extra = new_disk(api)
    attached(api, sid, extra)
    system = shown(api, sid)[0]
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": delete_volume})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert volume(api, system) is None
    for vid in (created, extra):
        if delete_volume:
            assert volume(api, vid) is None
        else:
            assert volume(api, vid)["status"] == "available" and volume(api, vid)["server_id"] is None
    check_invariants(api)


# --- the Huawei SDK, unchanged, against a real ecsd process ---------------------------------------------------

@pytest.mark.slow
@pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning")
def test_sdk_detach_and_attach(ecsd_server):  # noqa: F811
    pytest.importorskip("huaweicloudsdkecs", reason="huaweicloudsdkecs is not installed: pip install -e '.[test]'")
    from huaweicloudsdkecs.v2 import (
        AttachServerVolumeOption,
        AttachServerVolumeRequest,
        AttachServerVolumeRequestBody,
        CreatePostPaidServersRequest,
        CreatePostPaidServersRequestBody,
        DetachServerVolumeRequest,
        ListServerBlockDevicesRequest,
        PostPaidServer,
        PostPaidServerDataVolume,
        PostPaidServerNic,
        PostPaidServerRootVolume,
    )

    from tests.test_sdk_huawei import ecs_client, wait_job

    base, creds = ecsd_server
    ecs = ecs_client(base, creds["ak"], creds["sk"], creds["project_id"])
    server = PostPaidServer(name="sdk-disks", image_ref=s.UBUNTU, flavor_ref="s3.small.1", vpcid=s.VPC,
                            nics=[PostPaidServerNic(subnet_id=s.SUBNET)],
                            root_volume=PostPaidServerRootVolume(volumetype="SSD"),
                            data_volumes=[PostPaidServerDataVolume(volumetype="SSD", size=10)])
    created = ecs.create_post_paid_servers(CreatePostPaidServersRequest(
        body=CreatePostPaidServersRequestBody(server=server)))
    assert wait_job(ecs, created.job_id).status == "SUCCESS"
    sid = created.server_ids[0]

    def data_disks():
        found = ecs.list_server_block_devices(ListServerBlockDevicesRequest(server_id=sid)).volume_attachments
        return {d.volume_id: d.device for d in found if d.boot_index != 0}

    (vid,) = data_disks()
    job = ecs.detach_server_volume(DetachServerVolumeRequest(server_id=sid, volume_id=vid, delete_flag="0"))
    done = wait_job(ecs, job.job_id)
    assert done.status == "SUCCESS" and done.job_type == "detachVolume", done
    assert data_disks() == {}
    job = ecs.attach_server_volume(AttachServerVolumeRequest(server_id=sid, body=AttachServerVolumeRequestBody(
        volume_attachment=AttachServerVolumeOption(volume_id=vid, device="/dev/vdc"))))
    done = wait_job(ecs, job.job_id)
    assert done.status == "SUCCESS" and done.job_type == "attachVolume", done
    assert data_disks() == {vid: "/dev/vdc"}


@pytest.mark.slow
def test_openstacksdk_attach_and_detach(ecsd_server):  # noqa: F811
    pytest.importorskip("openstack", reason="openstacksdk is not installed: pip install -e '.[test]'")
    from tests.test_sdk_openstack import connect
    from tests.test_sdk_openstack import wait_job as wait_job_os

    base, creds = ecsd_server
    conn = connect(base, creds)
    pid = creds["project_id"]
    body = {"server": {"name": "os-disks", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
                       "data_volumes": [{"volumetype": "SSD", "size": 10}]}}
    job = wait_job_os(conn, base, pid, conn.session.post(f"{base}/v1/{pid}/cloudservers", json=body).json()["job_id"])
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    (vid,) = [a.volume_id for a in conn.compute.volume_attachments(sid) if a.device != "/dev/vda"]

    def devices_now() -> dict[str, str]:
        return {a.volume_id: a.device for a in conn.compute.volume_attachments(sid)}

    def until(check) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline
            time.sleep(0.05)

    conn.compute.delete_volume_attachment(sid, vid)
    until(lambda: vid not in devices_now())
    made = conn.compute.create_volume_attachment(sid, vid, device="/dev/vdd")
    assert made.volume_id == vid and made.device == "/dev/vdd" and made.server_id == sid
    until(lambda: devices_now().get(vid) == "/dev/vdd")
    conn.close()


def test_the_attachment_invariants_find_violations(api):
    sid, _data = server_with_data(api)                 # its data disk is at /dev/vdb
    plain, shared = new_disk(api), new_disk(api, shared=True)

    def found():
        return api.client.app.state.services.store.run_sync(invariants.attachments_consistent)

    assert found() == []
    for vid, server, device in ((plain, sid, "/dev/vdk"), (shared, str(uuid.uuid4()), "/dev/vdb"),
                                (shared, sid, "/dev/vdb")):
        s.sql(api.client, "INSERT INTO volume_attachments (volume_id, server_id, device, status, created_at) "
                          "VALUES (:v, :s, :d, 'in-use', 0)", v=vid, s=server, d=device)
    problems = found()
    assert any(f"volume {plain} is not shared" in p for p in problems), problems
    assert any(f"volume {shared} is attached to server" in p and "does not exist" in p for p in problems)
    assert any(f"server {sid} has several disks at /dev/vdb" in p for p in problems), problems
