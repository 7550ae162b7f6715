"""EVS disks and the discarded Nova os-volumes: create, list, show, update, delete, every refusal,
failures through the emulator's faults, and the real huaweicloudsdkevs client against a live ecsd."""

from __future__ import annotations

import functools
import time
import uuid

import pytest

from ecsd.app import operator_credentials
from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401
from tests.support import Api, assert_error, held, sql

BOTH_DATABASES = True  # every test here runs on SQLite and on PostgreSQL (skipped where it is absent)

CREATE = "/v2.1/{pid}/cloudvolumes"
LIST = "/v2/{pid}/cloudvolumes/detail"
ONE = "/v2/{pid}/cloudvolumes/%s"
NOVA = "/v2.1/{pid}/os-volumes"
AZ = "eu-de-01"
UNKNOWN = "0b6f3c1e-2d4a-4f5b-8c9d-0e1f2a3b4c5d"   # no disk, image, snapshot or backup has this id


def body(**volume) -> dict:
    return {"volume": {"availability_zone": AZ, "size": 20, "volume_type": "SSD", **volume}}


def create(api: Api, **volume) -> tuple[str, list[str]]:
    r = api.post(CREATE, body(**volume))
    assert r.status_code == 202, r.text
    return r.json()["job_id"], r.json()["volume_ids"]


def new_disk(api: Api, **volume) -> str:
    job_id, (vid,) = create(api, **volume)
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    return vid


def show(api: Api, vid: str) -> dict:
    r = api.get(ONE % vid)
    assert r.status_code == 200, r.text
    return r.json()["volume"]


def delete(api: Api, vid: str) -> dict:
    r = api.delete(ONE % vid)
    assert r.status_code == 202, r.text
    return api.wait_job(r.json()["job_id"])


def fail_next(client, settings, operation: str, code: str) -> None:
    r = client.post("/_ecsd/faults", json={"operation": operation, "code": code},
                    headers={"X-Ecsd-Operator-Token": operator_credentials(settings)["operator_token"]})
    assert r.status_code == 201, r.text


# --- success -------------------------------------------------------------------------------------------------

def test_create_show_list_update_delete_end_to_end(api):
    job_id, volume_ids = create(api, name="data-1", description="logs", metadata={"team": "ops"})
    assert len(job_id) == 32 and len(volume_ids) == 1
    vid = volume_ids[0]
    assert show(api, vid)["status"] in ("creating", "available")

    job = api.wait_job(job_id)
    assert job["status"] == "SUCCESS" and job["job_type"] == "createVolume"
    assert job["entities"] == {"volume_id": vid, "size": 20, "volume_type": "SSD", "name": "data-1"}

    v = show(api, vid)
    assert v["status"] == "available" and v["attachments"] == []
    assert (v["name"], v["description"], v["metadata"], v["size"], v["volume_type"]) == (
        "data-1", "logs", {"team": "ops"}, 20, "SSD")
    assert v["availability_zone"] == AZ and v["bootable"] == "false" and v["volume_image_metadata"] == {}
    assert v["multiattach"] is False and v["shareable"] == "false"
    assert v["os-vol-tenant-attr:tenant_id"] == api.pid
    assert v["links"][0]["rel"] == "self" and v["links"][0]["href"].endswith(f"/cloudvolumes/{vid}")
    assert len(v["created_at"]) == 26 and "T" in v["created_at"]

    listed = api.get(LIST).json()
    assert listed["count"] == 1 and [x["id"] for x in listed["volumes"]] == [vid]
    assert listed["volumes_links"] == []

    r = api.call("PUT", ONE % vid, {"volume": {"name": "data-2", "metadata": {"k": "v"}}})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "data-2" and r.json()["metadata"] == {"k": "v"}
    assert r.json()["description"] == "logs"
    assert show(api, vid)["name"] == "data-2"

    job = delete(api, vid)
    assert job["status"] == "SUCCESS" and job["job_type"] == "deleteVolume"
    assert job["entities"] == {"volume_id": vid}
    assert_error(api.get(ONE % vid), 404, "EVS.5404")
    assert api.get(LIST).json()["count"] == 0


def test_count_creates_several_disks_each_with_its_sub_job(api):
    job_id, volume_ids = create(api, name="bulk", count=3, size=10, volume_type="SATA")
    assert len(set(volume_ids)) == 3
    job = api.wait_job(job_id)
    assert job["status"] == "SUCCESS"
    subs = job["entities"]["sub_jobs"]
    assert sorted(x["entities"]["volume_id"] for x in subs) == sorted(volume_ids)
    assert all(x["status"] == "SUCCESS" and x["job_type"] == "createVolume" for x in subs)
    names = sorted(show(api, vid)["name"] for vid in volume_ids)
    assert names == ["bulk-0001", "bulk-0002", "bulk-0003"]


def test_a_disk_from_an_image_is_bootable_and_names_its_image(api):
    vid = new_disk(api, imageRef=s.UBUNTU, size=None)
    v = show(api, vid)
    assert v["bootable"] == "true" and v["size"] >= 10
    assert v["volume_image_metadata"]["image_id"] == s.UBUNTU
    assert v["volume_image_metadata"]["image_name"] == "Standard_Ubuntu_22.04_latest"


def test_a_servers_disks_are_listed_with_their_attachment_and_cannot_be_deleted(api):
    r = api.post("/v1/{pid}/cloudservers", {"server": {
        "name": "withdata", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
        "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
        "data_volumes": [{"volumetype": "SATA", "size": 10}]}})
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    server = api.server(sid)
    disks = api.get(LIST + f"?server_id={sid}").json()
    assert disks["count"] == 2
    by_device = {v["attachments"][0]["device"]: v for v in disks["volumes"]}
    system, data = by_device["/dev/vda"], by_device["/dev/vdb"]
    assert system["bootable"] == "true" and data["bootable"] == "false"
    for v in (system, data):
        assert v["status"] == "in-use" and v["availability_zone"] == server["OS-EXT-AZ:availability_zone"]
        (a,) = v["attachments"]
        assert a["server_id"] == sid and a["volume_id"] == v["id"] and a["attachment_id"] and a["attached_at"]
    assert data["size"] == 10 and data["volume_type"] == "SATA"
    err = assert_error(api.delete(ONE % data["id"]), 400, "EVS.1046")
    assert "attached" in err["message"]


def test_a_shared_disk_shows_every_attachment_of_volume_attachments(api, client):
    vid = new_disk(api, multiattach=True)
    assert show(api, vid)["shareable"] == "true"
    servers = [str(uuid.uuid4()), str(uuid.uuid4())]
    for n, sid in enumerate(servers):
        sql(client, "INSERT INTO volume_attachments (volume_id, server_id, device, status, created_at) "
                    "VALUES (:v, :s, :d, 'in-use', :t)", v=vid, s=sid, d=f"/dev/sd{'ab'[n]}", t=time.time() + n)
    v = show(api, vid)
    assert [a["server_id"] for a in v["attachments"]] == servers
    assert len({a["attachment_id"] for a in v["attachments"]}) == 2
    assert api.get(LIST + f"?server_id={servers[1]}").json()["count"] == 1
    assert api.get(LIST + "?multiattach=true").json()["count"] == 1
    assert api.get(LIST + "?multiattach=false").json()["count"] == 0
    assert_error(api.delete(ONE % vid), 400, "EVS.1046")


def test_list_pages_sorts_and_filters(api):
    _job, ids = create(api, name="p", count=3, size=10)
    api.wait_job(_job)
    other = new_disk(api, name="other", size=30, volume_type="SAS", availability_zone="eu-de-02")
    page = api.get(LIST + "?limit=2&sort_key=size&sort_dir=asc").json()
    assert page["count"] == 4 and len(page["volumes"]) == 2
    (link,) = page["volumes_links"]
    assert link["rel"] == "next" and "marker=" in link["href"]
    rest = api.get(LIST + f"?limit=2&sort_key=size&sort_dir=asc&marker={page['volumes'][-1]['id']}").json()
    assert [v["id"] for v in rest["volumes"]][-1] == other and rest["volumes_links"] == []
    seen = [v["id"] for v in page["volumes"] + rest["volumes"]]
    assert sorted(seen) == sorted([*ids, other])
    assert [v["id"] for v in api.get(LIST + "?offset=3&sort_key=size&sort_dir=asc").json()["volumes"]] == [other]
    assert [v["id"] for v in api.get(LIST + "?name=other").json()["volumes"]] == [other]
    assert api.get(LIST + "?availability_zone=eu-de-02").json()["count"] == 1
    assert api.get(LIST + "?status=available").json()["count"] == 4
    assert api.get(LIST + "?status=error").json()["count"] == 0
    assert [v["id"] for v in api.get(LIST + f"?id={other}").json()["volumes"]] == [other]


def test_update_keeps_what_is_not_given(api):
    vid = new_disk(api, name="n", description="d", metadata={"a": "1"})
    r = api.call("PUT", ONE % vid, {"volume": {"description": "new"}})
    assert r.status_code == 200, r.text
    v = show(api, vid)
    assert (v["name"], v["description"], v["metadata"]) == ("n", "new", {"a": "1"})


# --- refusals --------------------------------------------------------------------------------------------------

# Matrices as one test each (a test's setup costs more than its calls): the message names the case.
CREATE_REFUSALS = [
    ({"size": 9}, "EVS.1010"),
    ({"size": 32769}, "EVS.1010"),
    ({"size": None}, "EVS.1010"),
    ({"volume_type": "GOLD"}, "EVS.1020"),
    ({"availability_zone": "mars-1"}, "EVS.1036"),
    ({"availability_zone": None}, "EVS.1036"),
    ({"count": 0}, "EVS.1021"),
    ({"count": 101}, "EVS.1021"),
    ({"name": "x" * 65}, "EVS.1003"),
    ({"description": "x" * 86}, "EVS.1004"),
    ({"description": "<b>"}, "EVS.1004"),
    ({"metadata": {"k": "v" * 256}}, "EVS.5400"),
    ({"metadata": {"k": 1}}, "EVS.5400"),
    ({"size": "20"}, "EVS.5400"),
    ({"colour": "red"}, "EVS.5400"),
    ({"imageRef": UNKNOWN, "size": None}, "EVS.5400"),
    ({"imageRef": "not-a-uuid"}, "EVS.5400"),
    ({"imageRef": s.FEDORA_QUEUED}, "EVS.5400"),
    ({"imageRef": s.UBUNTU, "size": 10, "snapshot_id": UNKNOWN}, "EVS.1016"),
    ({"backup_id": UNKNOWN}, "EVS.1006"),
    ({"snapshot_id": UNKNOWN}, "EVS.5400"),
    ({"tags": {"a": "b"}}, "EVS.5400"),
    ({"iops": 3000}, "EVS.5400"),
]
BODY_REFUSALS = [
    ({"server_id": UNKNOWN}, "EVS.5400"),
    ({"bssParam": {"chargingMode": "prePaid"}}, "EVS.5400"),
    ({"volume": "x"}, "EVS.5400"),
]
LIST_REFUSALS = [
    ("limit=0", "EVS.5400"), ("limit=x", "EVS.5400"), ("limit=1001", "EVS.2142"), ("offset=-1", "EVS.5400"),
    ("marker=nope", "EVS.1024"), (f"marker={UNKNOWN}", "EVS.1024"), ("sort_key=colour", "EVS.1039"),
    ("sort_dir=up", "EVS.1040"), ("availability_zone=mars", "EVS.1041"), ("multiattach=yes", "EVS.5400"),
]


def _refused(resp, code: str, case: object) -> None:
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, code), (case, resp.text)
    assert_error(resp, 400, code)


@pytest.mark.sqlite_only
def test_create_refusals(api):
    for volume, code in CREATE_REFUSALS:
        b = body(**volume)
        b["volume"] = {k: v for k, v in b["volume"].items() if v is not None}
        _refused(api.post(CREATE, b), code, volume)
    for extra, code in BODY_REFUSALS:
        _refused(api.post(CREATE, {**body(), **extra}), code, extra)
    assert api.get(LIST).json()["count"] == 0


@pytest.mark.sqlite_only
def test_list_refusals(api):
    for query, code in LIST_REFUSALS:
        _refused(api.get(LIST + "?" + query), code, query)


def test_update_refusals(api):
    vid = new_disk(api)
    assert_error(api.call("PUT", ONE % vid, {"volume": {}}), 400, "EVS.1007")
    assert_error(api.call("PUT", ONE % vid, {"volume": {"name": "x" * 65}}), 400, "EVS.1003")
    assert_error(api.call("PUT", ONE % vid, {"volume": {"description": "x" * 86}}), 400, "EVS.1004")
    assert_error(api.call("PUT", ONE % vid, {"volume": {"size": 30}}), 400, "EVS.5400")
    assert_error(api.call("PUT", ONE % vid, {"name": "x"}), 400, "EVS.5400")
    assert_error(api.call("PUT", ONE % str(uuid.uuid4()), {"volume": {"name": "x"}}), 404, "EVS.5404")
    assert show(api, vid)["name"] == ""


def test_another_projects_disk_is_not_found(api, other_api):
    vid = new_disk(api)
    assert_error(other_api.get(ONE % vid), 404, "EVS.5404")
    assert_error(other_api.call("PUT", ONE % vid, {"volume": {"name": "mine"}}), 404, "EVS.5404")
    assert_error(other_api.delete(ONE % vid), 404, "EVS.5404")
    assert_error(other_api.get(NOVA + "/" + vid), 404, "EVS.5404")
    assert other_api.get(LIST).json()["count"] == 0
    assert other_api.get(LIST + f"?marker={vid}").status_code == 400
    assert show(api, vid)["status"] == "available"
    assert_error(api.get(ONE % "not-a-uuid"), 404, "EVS.5404")


def test_a_disk_in_a_job_cannot_be_deleted_and_concurrent_deletes_exactly_one_accepted(api, client):
    with held(api):
        job_id, (vid,) = create(api)
        assert show(api, vid)["status"] == "creating"
        assert "in progress" in assert_error(api.delete(ONE % vid), 400, "EVS.1046")["message"]
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    with held(api):
        results = s.at_once(*[functools.partial(api.delete, ONE % vid)] * 8)
        accepted = [r for r in results if r.status_code == 202]
        assert len(accepted) == 1, [r.text for r in results]
        for r in results:
            if r.status_code != 202:
                assert_error(r, 400, "EVS.1046")
        assert show(api, vid)["status"] == "deleting"
    assert api.wait_job(accepted[0].json()["job_id"])["status"] == "SUCCESS"
    assert sql(client, "SELECT count(*) FROM volumes WHERE id = :v", v=vid).scalar() == 0


# --- failures ---------------------------------------------------------------------------------------------------

def test_a_failed_creation_leaves_the_disk_in_error_and_it_can_be_deleted(api, client, settings):
    fail_next(client, settings, "createVolume", "EVS.2024")
    job_id, (vid,) = create(api)
    job = api.wait_job(job_id)
    assert job["status"] == "FAIL" and job["error_code"] == "EVS.2024" and job["fail_reason"]
    assert job["entities"]["volume_id"] == vid
    assert show(api, vid)["status"] == "error"
    assert sql(client, "SELECT job_id FROM volumes WHERE id = :v", v=vid).scalar() is None
    assert delete(api, vid)["status"] == "SUCCESS"


def test_a_failed_deletion_leaves_error_deleting_and_may_be_retried(api, client, settings):
    vid = new_disk(api)
    fail_next(client, settings, "deleteVolume", "EVS.5500")
    job = delete(api, vid)
    assert job["status"] == "FAIL" and job["error_code"] == "EVS.5500"
    assert show(api, vid)["status"] == "error_deleting"
    assert delete(api, vid)["status"] == "SUCCESS"
    assert_error(api.get(ONE % vid), 404, "EVS.5404")


# --- Nova os-volumes ---------------------------------------------------------------------------------------------

def test_nova_os_volumes_create_list_show_delete(api):
    r = api.post(NOVA, {"volume": {"availability_zone": AZ, "size": 12, "display_name": "nova-disk",
                                   "display_description": "d", "metadata": {"a": "b"}}})
    assert r.status_code == 200, r.text
    v = r.json()["volume"]
    assert v["status"] == "creating" and v["attachments"] == [{}] and v["volumeType"] == "SATA"
    assert (v["displayName"], v["displayDescription"], v["size"], v["availabilityZone"]) == ("nova-disk", "d", 12, AZ)
    vid = v["id"]
    deadline = time.monotonic() + 10
    while api.get(NOVA + "/" + vid).json()["volume"]["status"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for path in (NOVA, NOVA + "/detail"):
        listed = api.get(path).json()["volumes"]
        assert [x["id"] for x in listed] == [vid] and listed[0]["metadata"] == {"a": "b"}
    assert api.get(NOVA + "?limit=0").json()["volumes"] == []
    r = api.delete(NOVA + "/" + vid)
    assert r.status_code == 202 and not r.content
    deadline = time.monotonic() + 10
    while api.get(NOVA + "/" + vid).status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert_error(api.get(NOVA + "/" + vid), 404, "EVS.5404")


@pytest.mark.sqlite_only
def test_nova_os_volumes_refusals(api):
    assert_error(api.post(NOVA, {"volume": {"size": 10}}), 400, "EVS.1036")
    assert_error(api.post(NOVA, {"volume": {"availability_zone": AZ}}), 400, "EVS.5400")
    assert_error(api.post(NOVA, {"volume": {"availability_zone": AZ, "size": 5}}), 400, "EVS.1010")
    assert_error(api.post(NOVA, {"volume": {"availability_zone": AZ, "size": 10,
                                            "snapshot_id": str(uuid.uuid4())}}), 400, "EVS.5400")
    assert_error(api.delete(NOVA + "/" + str(uuid.uuid4())), 404, "EVS.5404")


# --- the official huaweicloudsdkevs client against a live ecsd (AK/SK signing) -------------------------------------

# Fields ecsd leaves null or out because it has nothing to say there (no snapshots, replication,
# migration, dedicated storage, consistency groups, QoS objects of GPSSD2/ESSD2 disks, order ids).
VOLUME_OPTIONAL = {
    "VolumeDetail": {"source_volid", "snapshot_id", "consistencygroup_id", "os_volume_replicationextended_status",
                     "os_vol_mig_status_attrmigstat", "os_vol_mig_status_attrname_id", "user_id",
                     "dedicated_storage_id", "dedicated_storage_name", "serial_number", "iops", "throughput"},
    "UpdateVolumeResponse": {"source_volid", "snapshot_id", "os_volume_replicationextended_status"},
    "VolumeMetadata": {"*"},
    "CreateVolumeResponse": {"order_id"},
    "JobEntities": {"sub_jobs"},
    "ShowJobResponse": {"error_code", "fail_reason"},
}


@pytest.fixture(scope="module")
def evs(ecsd_server):  # noqa: F811
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkevs.v2 import EvsClient

    base, creds = ecsd_server
    return EvsClient.new_builder().with_credentials(
        BasicCredentials(creds["ak"], creds["sk"], creds["project_id"])).with_endpoint(base).build()


def _evs_job(evs, job_id: str):
    from huaweicloudsdkevs.v2 import ShowJobRequest

    deadline = time.monotonic() + 20
    while True:
        job = evs.show_job(ShowJobRequest(job_id=job_id))
        if job.status in ("SUCCESS", "FAIL"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning")
def test_the_evs_sdk_creates_lists_shows_updates_and_deletes_a_disk(evs):
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkevs.v2 import (
        CreateVolumeOption,
        CreateVolumeRequest,
        CreateVolumeRequestBody,
        DeleteVolumeRequest,
        ListVolumesRequest,
        ShowVolumeRequest,
        UpdateVolumeOption,
        UpdateVolumeRequest,
        UpdateVolumeRequestBody,
    )

    from tests.sdk_models import check_response

    created = evs.create_volume(CreateVolumeRequest(body=CreateVolumeRequestBody(volume=CreateVolumeOption(
        availability_zone=AZ, size=15, volume_type="SAS", name="sdk-disk", metadata={"team": "ops"},
        image_ref=s.UBUNTU, multiattach=True))))
    assert check_response(created, optional=VOLUME_OPTIONAL) == []
    (vid,) = created.volume_ids
    job = _evs_job(evs, created.job_id)
    assert job.status == "SUCCESS" and job.job_type == "createVolume", job
    assert (job.entities.volume_id, job.entities.size, job.entities.volume_type) == (vid, 15, "SAS")
    assert check_response(job, optional=VOLUME_OPTIONAL) == []

    shown = evs.show_volume(ShowVolumeRequest(volume_id=vid))
    assert check_response(shown, optional=VOLUME_OPTIONAL) == []
    v = shown.volume
    assert (v.id, v.status, v.size, v.name, v.availability_zone) == (vid, "available", 15, "sdk-disk", AZ)
    assert v.bootable == "true" and v.volume_image_metadata["image_id"] == s.UBUNTU
    assert v.multiattach is True and v.shareable == "true" and v.metadata == {"team": "ops"}

    listed = evs.list_volumes(ListVolumesRequest(limit=10, offset=0, name="sdk-disk", multiattach=True,
                                                 availability_zone=AZ, status="available"))
    assert check_response(listed, optional=VOLUME_OPTIONAL) == []
    assert listed.count == 1 and [x.id for x in listed.volumes] == [vid]

    updated = evs.update_volume(UpdateVolumeRequest(volume_id=vid, body=UpdateVolumeRequestBody(
        volume=UpdateVolumeOption(name="sdk-renamed", description="by the SDK"))))
    assert check_response(updated, optional=VOLUME_OPTIONAL) == []
    assert (updated.id, updated.name, updated.description) == (vid, "sdk-renamed", "by the SDK")

    deleted = evs.delete_volume(DeleteVolumeRequest(volume_id=vid))
    job = _evs_job(evs, deleted.job_id)
    assert job.status == "SUCCESS" and job.job_type == "deleteVolume" and job.entities.volume_id == vid

    with pytest.raises(ClientRequestException) as err:
        evs.show_volume(ShowVolumeRequest(volume_id=vid))
    assert (err.value.status_code, err.value.error_code) == (404, "EVS.5404")
    with pytest.raises(ClientRequestException) as err:
        evs.create_volume(CreateVolumeRequest(body=CreateVolumeRequestBody(volume=CreateVolumeOption(
            availability_zone=AZ, size=5, volume_type="SAS"))))
    assert (err.value.status_code, err.value.error_code) == (400, "EVS.1010")
