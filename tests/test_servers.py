"""Servers through the ECS v1 API: create, details, list, modify, delete, batch start/stop/reboot, disks."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from ecsd.app import create_app
from ecsd.domain.states import status_of
from ecsd.store.schema import volumes
from tests import support as s
from tests.support import Api, assert_error

CREATE = "/v1/{pid}/cloudservers"
ACTION = "/v1/{pid}/cloudservers/action"
DELETE = "/v1/{pid}/cloudservers/delete"
LIST = "/v1/{pid}/cloudservers/detail"
UNKNOWN = "0b4e9c1a-7d2f-4e8b-9a6c-3f5d2e1b0c9a"
BOTH_DATABASES = True


def server_body(**overrides: Any) -> dict:
    server: dict[str, Any] = {"name": "srv", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                              "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}
    server.update(overrides)
    return {"server": server}


def create(api: Api, **overrides: Any) -> dict:
    """Create, wait for the job, return the finished job."""
    r = api.post(CREATE, server_body(**overrides))
    assert r.status_code == 200, r.text
    return api.wait_job(r.json()["job_id"])


def sub_server_ids(job: dict) -> list[str]:
    return [sj["entities"]["server_id"] for sj in job["entities"]["sub_jobs"]]




def action(api: Api, name: str, ids: list[str], **args: Any):
    return api.post(ACTION, {name: {"servers": [{"id": i} for i in ids], **args}})


def run_action(api: Api, name: str, ids: list[str], **args: Any) -> dict:
    r = action(api, name, ids, **args)
    assert r.status_code == 200, r.text
    return api.wait_job(r.json()["job_id"])


def listing(api: Api, query: str = "") -> dict:
    r = api.get(LIST + query)
    assert r.status_code == 200, r.text
    return r.json()


def names(api: Api, query: str = "") -> set[str]:
    return {srv["name"] for srv in listing(api, query)["servers"]}


@pytest.fixture
def held_api(settings, creds):
    """An app whose simulated driver spends 0.2 s per step, so that a job stays in flight for a while."""
    settings.sim_delay = 0.2
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield Api(c, creds)


# --- create -------------------------------------------------------------------------------------------------

SERVER_FIELDS = {
    "id", "name", "description", "status", "OS-EXT-STS:vm_state", "OS-EXT-STS:task_state",
    "OS-EXT-STS:power_state", "image", "key_name", "flavor", "metadata", "os-extended-volumes:volumes_attached",
    "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:hostname", "OS-EXT-SRV-ATTR:reservation_id",
    "OS-EXT-SRV-ATTR:launch_index", "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:user_data", "locked", "fault", "addresses", "created", "updated", "OS-SRV-USG:launched_at",
    "OS-SRV-USG:terminated_at", "tenant_id", "user_id", "hostId", "host_status", "progress", "config_drive",
    "OS-DCF:diskConfig", "OS-EXT-AZ:availability_zone", "security_groups", "tags", "sys_tags",
    "os:scheduler_hints", "enterprise_project_id", "accessIPv4", "accessIPv6",
}


def test_create_one_server_end_to_end(api, creds):
    r = api.post(CREATE, server_body(name="web.01", description="front end", metadata={"owner": "team-a"}))
    assert r.status_code == 200, r.text
    job_id, server_ids = r.json()["job_id"], r.json()["serverIds"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert len(server_ids) == 1

    job = api.wait_job(job_id)
    assert job["status"] == "SUCCESS" and job["job_type"] == "createServer"
    assert job["error_code"] is None and job["fail_reason"] is None
    assert job["entities"]["sub_jobs_total"] == 1
    sub = job["entities"]["sub_jobs"][0]
    assert sub["job_type"] == "createSingleServer" and sub["status"] == "SUCCESS"
    assert sub["entities"] == {"server_id": server_ids[0]}

    srv = api.server(server_ids[0])
    assert SERVER_FIELDS <= set(srv), SERVER_FIELDS - set(srv)
    assert srv["id"] == server_ids[0] and srv["name"] == "web.01" and srv["description"] == "front end"
    assert (srv["status"], srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:task_state"],
            srv["OS-EXT-STS:power_state"]) == ("ACTIVE", "active", None, 1)
    assert srv["image"] == {"id": s.UBUNTU}
    assert srv["flavor"] == {"id": "s3.small.1", "name": "s3.small.1", "disk": "0", "vcpus": "1", "ram": "1024"}
    assert srv["key_name"] is None and srv["locked"] is False and srv["fault"] is None
    meta = srv["metadata"]
    assert meta["owner"] == "team-a" and meta["vpc_id"] == s.VPC
    assert meta["image_name"] == "Standard_Ubuntu_22.04_latest" and meta["metering.image_id"] == s.UBUNTU
    assert meta["os_type"] == "Linux" and meta["os_bit"] == "64" and meta["metering.imagetype"] == "gold"
    [nic] = srv["addresses"][s.VPC]
    assert nic["version"] == "4" and nic["OS-EXT-IPS:type"] == "fixed"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", nic["addr"])
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", nic["OS-EXT-IPS-MAC:mac_addr"])
    [vol] = srv["os-extended-volumes:volumes_attached"]
    assert vol["bootIndex"] == "0" and vol["device"] == "/dev/vda"
    assert srv["OS-EXT-SRV-ATTR:root_device_name"] == "/dev/vda"
    assert srv["OS-EXT-AZ:availability_zone"] == "eu-de-01"
    assert srv["tenant_id"] == api.pid and srv["user_id"] == creds["user_id"]
    assert srv["OS-EXT-SRV-ATTR:reservation_id"].startswith("r-") and srv["OS-EXT-SRV-ATTR:launch_index"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", srv["created"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", srv["updated"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", srv["OS-SRV-USG:launched_at"])


def test_create_many_servers_gets_numbered_names_and_one_sub_job_each(api):
    r = api.post(CREATE, server_body(name="web", count=3))
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS" and job["entities"]["sub_jobs_total"] == 3
    assert {sj["job_type"] for sj in job["entities"]["sub_jobs"]} == {"createSingleServer"}
    assert sorted(sub_server_ids(job)) == sorted(r.json()["serverIds"])
    servers = [api.server(i) for i in r.json()["serverIds"]]
    assert sorted(x["name"] for x in servers) == ["web-0001", "web-0002", "web-0003"]
    assert sorted(x["OS-EXT-SRV-ATTR:launch_index"] for x in servers) == [0, 1, 2]
    reservation = {x["OS-EXT-SRV-ATTR:reservation_id"] for x in servers}
    assert len(reservation) == 1
    assert listing(api, f"?reservation_id={reservation.pop()}")["count"] == 3
    # addresses and disks are per server
    assert len({x["addresses"][s.VPC][0]["OS-EXT-IPS-MAC:mac_addr"] for x in servers}) == 3
    assert len({x["os-extended-volumes:volumes_attached"][0]["id"] for x in servers}) == 3


def test_name_of_59_characters_is_the_limit_with_count(api):
    assert create(api, name="n" * 59, count=2)["status"] == "SUCCESS"
    assert_error(api.post(CREATE, server_body(name="n" * 60, count=2)), 400, "Ecs.0914")
    assert create(api, name="m" * 128)["status"] == "SUCCESS"


def block_devices(api: Api, sid: str) -> list[dict]:
    r = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device")
    assert r.status_code == 200, r.text
    return r.json()["volumeAttachments"]


def test_system_disk_size_defaults_to_the_image_min_disk(api):
    default = sub_server_ids(create(api))[0]                                       # Ubuntu: min_disk 10
    zero = sub_server_ids(create(api, root_volume={"volumetype": "SSD", "size": 0}))[0]
    bigger = sub_server_ids(create(api, root_volume={"volumetype": "SAS", "size": 40}))[0]
    euler = sub_server_ids(create(api, imageRef=s.EULER, flavorRef="s3.medium.2"))[0]   # min_disk 40
    assert [d["size"] for d in block_devices(api, default)] == [10]
    assert [d["size"] for d in block_devices(api, zero)] == [10]
    assert [d["size"] for d in block_devices(api, bigger)] == [40]
    assert [d["size"] for d in block_devices(api, euler)] == [40]


def test_system_disk_smaller_than_min_disk_is_refused(api):
    r = api.post(CREATE, server_body(imageRef=s.EULER, flavorRef="s3.medium.2",
                                     root_volume={"volumetype": "SSD", "size": 39}))
    err = assert_error(r, 400, "Ecs.0005")
    assert "min_disk" in err["details"][0]["message"]
    assert listing(api)["count"] == 0


def test_data_volumes_are_attached_after_the_system_disk(api):
    sid = sub_server_ids(create(api, data_volumes=[{"volumetype": "SAS", "size": 100},
                                                   {"volumetype": "SSD", "size": 50}]))[0]
    attached = api.server(sid)["os-extended-volumes:volumes_attached"]
    assert [(v["bootIndex"], v["device"]) for v in attached] == [("0", "/dev/vda"), ("-1", "/dev/vdb"),
                                                                 ("-1", "/dev/vdc")]
    bd = block_devices(api, sid)
    assert [(d["bootIndex"], d["size"], d["device"]) for d in bd] == [(0, 10, "/dev/vda"), (-1, 100, "/dev/vdb"),
                                                                      (-1, 50, "/dev/vdc")]
    assert [d["volumeId"] for d in bd] == [v["id"] for v in attached]
    assert all(d["serverId"] == sid and d["id"] == d["volumeId"] for d in bd)
    short = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-volume_attachments").json()["volumeAttachments"]
    assert [v["volumeId"] for v in short] == [v["id"] for v in attached]
    assert_error(api.get(f"/v1/{{pid}}/cloudservers/{UNKNOWN}/block_device"), 404, "Ecs.0114")


# Every refusal of create: (what to change in a valid body, expected status, expected code).
_NIC = {"subnet_id": s.SUBNET}
CREATE_REFUSALS: list[tuple[str, dict, int, str]] = [
    ("imageRef missing", {"imageRef": None}, 400, "Ecs.0005"),
    ("imageRef not a UUID", {"imageRef": "ubuntu"}, 400, "Ecs.0005"),
    ("imageRef not a string", {"imageRef": 42}, 400, "Ecs.0005"),
    ("unknown image", {"imageRef": UNKNOWN}, 400, "Ecs.0031"),
    ("queued image", {"imageRef": s.FEDORA_QUEUED}, 400, "Ecs.0032"),
    ("data disk image", {"imageRef": s.DATA_IMAGE}, 400, "Ecs.0007"),
    ("unknown flavor", {"flavorRef": "x9.huge.1"}, 400, "Ecs.0029"),
    ("flavor missing", {"flavorRef": None}, 400, "Ecs.0005"),
    ("flavor too small for the image", {"imageRef": s.WINDOWS, "flavorRef": "s3.small.1"}, 400, "Ecs.0007"),
    ("unknown key pair", {"key_name": "nope"}, 400, "Ecs.0314"),
    ("weak password", {"adminPass": "weak"}, 400, "Ecs.0011"),
    ("password with the user name", {"adminPass": "Root-Passw0rd!"}, 400, "Ecs.0011"),
    ("weak password in metadata.admin_pass", {"metadata": {"admin_pass": "abc"}}, 400, "Ecs.0011"),
    ("name missing", {"name": None}, 400, "Ecs.0005"),
    ("empty name", {"name": ""}, 400, "Ecs.0005"),
    ("name with a space", {"name": "my server"}, 400, "Ecs.0915"),
    ("name with a newline", {"name": "srv\n"}, 400, "Ecs.0915"),
    ("name not a string", {"name": 7}, 400, "Ecs.0005"),
    ("name too long", {"name": "n" * 129}, 400, "Ecs.0914"),
    ("name too long for count", {"name": "n" * 60, "count": 2}, 400, "Ecs.0914"),
    ("nics missing", {"nics": None}, 400, "Ecs.0005"),
    ("nics empty", {"nics": []}, 400, "Ecs.0005"),
    ("nics not a list", {"nics": _NIC}, 400, "Ecs.0005"),
    ("subnet not a UUID", {"nics": [{"subnet_id": "subnet-1"}]}, 400, "Ecs.0005"),
    ("subnet missing", {"nics": [{"ip_address": "10.0.0.5"}]}, 400, "Ecs.0005"),
    ("13 NICs", {"nics": [_NIC] * 13}, 400, "Ecs.0050"),
    ("bad ip_address", {"nics": [{"subnet_id": s.SUBNET, "ip_address": "10.0.0.300"}]}, 400, "Ecs.0005"),
    ("ip_address with count", {"nics": [{"subnet_id": s.SUBNET, "ip_address": "10.0.0.5"}], "count": 2},
     400, "Ecs.0005"),
    ("same ip_address twice", {"nics": [{"subnet_id": s.SUBNET, "ip_address": "10.0.0.5"}] * 2}, 400, "Ecs.0010"),
    ("vpcid not a UUID", {"vpcid": "vpc-1"}, 400, "Ecs.0005"),
    ("root_volume missing", {"root_volume": None}, 400, "Ecs.0005"),
    ("unknown volumetype", {"root_volume": {"volumetype": "HDD"}}, 400, "Ecs.0043"),
    ("volumetype missing", {"root_volume": {"size": 40}}, 400, "Ecs.0005"),
    ("system disk over 1024 GB", {"root_volume": {"volumetype": "SSD", "size": 1025}}, 400, "Ecs.0005"),
    ("system disk size a string", {"root_volume": {"volumetype": "SSD", "size": "40"}}, 400, "Ecs.0005"),
    ("unknown data volumetype", {"data_volumes": [{"volumetype": "HDD", "size": 10}]}, 400, "Ecs.0043"),
    ("data disk under 10 GB", {"data_volumes": [{"volumetype": "SSD", "size": 9}]}, 400, "Ecs.0005"),
    ("data disk size missing", {"data_volumes": [{"volumetype": "SSD"}]}, 400, "Ecs.0005"),
    ("24 data disks", {"data_volumes": [{"volumetype": "SSD", "size": 10}] * 24}, 400, "Ecs.0042"),
    ("count 0", {"count": 0}, 400, "Ecs.0005"),
    ("count 501", {"count": 501}, 400, "Ecs.0913"),
    ("count a string", {"count": "2"}, 400, "Ecs.0005"),
    ("11 metadata pairs", {"metadata": {f"k{i}": "v" for i in range(11)}}, 400, "Ecs.0005"),
    ("metadata value not a string", {"metadata": {"k": 1}}, 400, "Ecs.0005"),
    ("metadata key with a slash", {"metadata": {"a/b": "v"}}, 400, "Ecs.0005"),
    ("metadata value over 255", {"metadata": {"k": "v" * 256}}, 400, "Ecs.0005"),
    ("description with <", {"description": "<b>bold</b>"}, 400, "Ecs.0041"),
    ("description over 85", {"description": "d" * 86}, 400, "Ecs.0041"),
    ("unknown availability zone", {"availability_zone": "mars-01"}, 400, "Ecs.0005"),
    ("user_data not base64", {"user_data": "not base64!"}, 400, "Ecs.0005"),
    ("key_name empty", {"key_name": ""}, 400, "Ecs.0005"),
]


def test_every_create_refusal(api):
    wrong = []
    for label, change, status, code in CREATE_REFUSALS:
        body = server_body(**change)
        body["server"] = {k: v for k, v in body["server"].items() if v is not None}
        r = api.post(CREATE, body)
        got = (r.status_code, r.json().get("error", {}).get("code"))
        if got != (status, code):
            wrong.append(f"{label}: expected {status} {code}, got {got} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert listing(api)["count"] == 0


@pytest.mark.parametrize("body, status, code", [
    ({"server": []}, 400, "Ecs.0005"),
    ({}, 400, "Ecs.0005"),
    ([1, 2], 400, "Ecs.0005"),
    ({**server_body(), "dry_run": "yes"}, 400, "Ecs.0005"),
])
def test_malformed_create_bodies(api, body, status, code):
    assert_error(api.post(CREATE, body), status, code)


def test_create_body_not_json_or_empty(api):
    assert_error(api.post(CREATE, content=b"{not json", headers={"Content-Type": "application/json"}),
                 400, "Ecs.0005")
    assert_error(api.post(CREATE, content=b""), 400, "Common.0002")


def test_dry_run_checks_everything_and_creates_nothing(api):
    r = api.post(CREATE, {**server_body(count=2), "dry_run": True})
    assert r.status_code == 202, r.text
    assert "job_id" not in r.json()
    assert_error(api.post(CREATE, {**server_body(imageRef=UNKNOWN), "dry_run": True}), 400, "Ecs.0031")
    assert_error(api.post(CREATE, {**server_body(key_name="missing"), "dry_run": True}), 400, "Ecs.0314")
    time.sleep(0.05)
    assert listing(api)["count"] == 0
    # and dry_run false is an ordinary create
    r = api.post(CREATE, {**server_body(), "dry_run": False})
    assert r.status_code == 200 and api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert listing(api)["count"] == 1


def test_create_with_key_pair_and_windows_password(api):
    api.keypair("kp-1")
    sid = sub_server_ids(create(api, key_name="kp-1"))[0]
    assert api.server(sid)["key_name"] == "kp-1"
    win = create(api, imageRef=s.WINDOWS, flavorRef="s3.large.2", adminPass="Str0ng-Passw!")
    assert win["status"] == "SUCCESS"


def test_fixed_ip_address(api):
    nic = {"subnet_id": s.SUBNET, "ip_address": "10.1.2.3"}
    sid = sub_server_ids(create(api, nics=[nic]))[0]
    assert api.server(sid)["addresses"][s.VPC][0]["addr"] == "10.1.2.3"
    assert_error(api.post(CREATE, server_body(nics=[nic])), 400, "Ecs.0010")
    # an empty ip_address means "assign one"
    other = sub_server_ids(create(api, nics=[{"subnet_id": s.SUBNET, "ip_address": ""}]))[0]
    assert api.server(other)["addresses"][s.VPC][0]["addr"] != "10.1.2.3"
    assert [x["id"] for x in listing(api, "?ip=10.1.2.3")["servers"]] == [sid]
    assert [x["id"] for x in listing(api, "?ip=10.1.2")["servers"]] == [sid]
    assert listing(api, "?ip=10.9")["count"] == 0


def test_metadata_cannot_override_system_keys_and_admin_pass_is_not_stored(api):
    sid = sub_server_ids(create(api, metadata={"owner": "me", "vpc_id": "spoofed", "image_name": "spoofed",
                                               "admin_pass": "Str0ng-Passw!"}))[0]
    meta = api.server(sid)["metadata"]
    assert meta["owner"] == "me"
    assert meta["vpc_id"] == s.VPC and meta["image_name"] == "Standard_Ubuntu_22.04_latest"
    assert "admin_pass" not in meta


def test_create_failure_puts_the_server_in_error(api):
    r = api.post(CREATE, server_body(imageRef=s.FAULTY_DISK))
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Common.0021" and job["fail_reason"]
    [sub] = job["entities"]["sub_jobs"]
    assert sub["status"] == "FAIL" and sub["error_code"] == "Ecs.0202" and sub["fail_reason"]
    assert sub["entities"]["server_id"] == r.json()["serverIds"][0]
    assert sub["entities"]["errorcode_message"]
    assert sub["end_time"] is not None

    srv = api.server(sub["entities"]["server_id"])
    assert (srv["status"], srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:task_state"]) == ("ERROR", "error", None)
    assert srv["fault"]["code"] == "Ecs.0202" and srv["fault"]["message"] and srv["fault"]["created"]
    assert listing(api, "?status=ERROR")["count"] == 1
    # an ECS whose creation failed cannot be started, but can be deleted
    assert_error(action(api, "os-start", [srv["id"]]), 400, "Ecs.0100")
    r = api.post(DELETE, {"servers": [{"id": srv["id"]}]})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert_error(api.get(f"/v1/{{pid}}/cloudservers/{srv['id']}"), 404, "Ecs.0114")


def test_boot_failure_fails_with_its_own_code(api):
    job = api.wait_job(api.post(CREATE, server_body(imageRef=s.FAULTY_BOOT, count=2)).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Common.0021"
    assert [sj["error_code"] for sj in job["entities"]["sub_jobs"]] == ["Ecs.0204", "Ecs.0204"]
    assert {api.server(i)["status"] for i in sub_server_ids(job)} == {"ERROR"}


# --- details -------------------------------------------------------------------------------------------------

def test_details_of_unknown_malformed_and_foreign_servers(api, other_api):
    sid = api.create_servers()[0]
    assert_error(api.get(f"/v1/{{pid}}/cloudservers/{UNKNOWN}"), 404, "Ecs.0114")
    assert_error(api.get("/v1/{pid}/cloudservers/not-a-uuid"), 404, "Ecs.0114")
    assert_error(other_api.get(f"/v1/{{pid}}/cloudservers/{sid}"), 404, "Ecs.0114")
    assert other_api.get(LIST).json() == {"count": 0, "servers": []}


def test_status_agrees_with_vm_state_task_state_and_power_state(api):
    active = api.create_servers()[0]
    stopped = api.create_servers()[0]
    api.stop(stopped)
    broken = sub_server_ids(create(api, imageRef=s.FAULTY_DISK))[0]
    expected = {active: ("ACTIVE", 1), stopped: ("SHUTOFF", 4), broken: ("ERROR", 0)}
    for srv in listing(api)["servers"]:
        assert srv["status"] == status_of(srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:task_state"])
        assert (srv["status"], srv["OS-EXT-STS:power_state"]) == expected[srv["id"]]
        assert srv == api.server(srv["id"])     # the list shows the same view as the details


# --- list ----------------------------------------------------------------------------------------------------

def test_list_pages_by_page_number(api):
    ids = set(api.create_servers(count=7))
    first = listing(api, "?limit=3")
    assert first == listing(api, "?limit=3&offset=1") == listing(api, "?limit=3&offset=0")
    seen: list[str] = []
    for page in (1, 2, 3):
        body = listing(api, f"?limit=3&offset={page}")
        assert body["count"] == 7
        assert len(body["servers"]) == (3 if page < 3 else 1)
        seen += [x["id"] for x in body["servers"]]
    assert len(seen) == 7 and set(seen) == ids
    assert listing(api, "?limit=3&offset=4") == {"count": 7, "servers": []}
    assert [x["id"] for x in listing(api)["servers"]] == seen        # default: 25 per page, page 1
    assert [x["id"] for x in listing(api, "?limit=0")["servers"]] == seen


def test_list_newest_first(api):
    old = api.create_servers(name="old")[0]
    time.sleep(0.01)
    new = api.create_servers(name="new")[0]
    assert [x["id"] for x in listing(api)["servers"]] == [new, old]


@pytest.mark.parametrize("query", ["?limit=1001", "?limit=-1", "?limit=ten", "?offset=-1", "?offset=x",
                                   "?status=RUNNING", "?status=on"])
def test_list_refuses_bad_queries(api, query):
    assert_error(api.get(LIST + query), 400, "Ecs.0005")


def test_list_filters(api):
    api.create_servers(name="alpha-web")
    beta = api.create_servers(name="beta-db")[0]
    api.stop(beta)
    api.create_servers(name="gamma_web", flavor="s3.medium.2")
    assert names(api, "?name=web") == {"alpha-web", "gamma_web"}
    assert names(api, "?name=a.p") == {"alpha-web"}            # '.' matches any one character
    assert names(api, "?name=ALPHA") == {"alpha-web"}          # fuzzy: case does not matter
    assert names(api, "?name=a_w") == {"gamma_web"}            # '_' is a character, not a wildcard
    assert names(api, "?name=%25") == set()                    # '%' too
    assert names(api, "?status=SHUTOFF") == names(api, "?status=shutoff") == {"beta-db"}
    assert names(api, "?status=ACTIVE") == {"alpha-web", "gamma_web"}
    assert names(api, "?status=REBOOT") == set()
    assert names(api, "?status=BUILD") == set()
    assert names(api, "?flavor=s3.medium.2") == {"gamma_web"}
    assert names(api, "?flavor=s3.medium.2&name=alpha") == set()
    assert names(api, "?reservation_id=r-00000000") == set()
    body = listing(api, "?name=web&limit=1")
    assert body["count"] == 2 and len(body["servers"]) == 1


# --- modify --------------------------------------------------------------------------------------------------

def test_rename_and_describe(api):
    sid = api.create_servers(name="before")[0]
    r = api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"name": "after"}})
    assert r.status_code == 200, r.text
    assert r.json()["server"]["name"] == "after" and r.json()["server"]["id"] == sid
    assert api.server(sid)["name"] == "after"
    r = api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"description": "db host"}})
    assert r.status_code == 200 and r.json()["server"]["description"] == "db host"
    assert api.server(sid)["name"] == "after"


@pytest.mark.parametrize("body, status, code", [
    ({"server": {"name": "bad name"}}, 400, "Ecs.0915"),
    ({"server": {"name": ""}}, 400, "Ecs.0005"),
    ({"server": {"name": "n" * 129}}, 400, "Ecs.0914"),
    ({"server": {"name": 5}}, 400, "Ecs.0005"),
    ({"server": {"description": "a<b"}}, 400, "Ecs.0041"),
    ({"server": {"nickname": "x"}}, 400, "Ecs.0005"),
    ({"name": "flat"}, 400, "Ecs.0005"),
])
def test_rename_refusals(api, body, status, code):
    sid = api.create_servers(name="keep")[0]
    assert_error(api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", body), status, code)
    assert api.server(sid)["name"] == "keep" and api.server(sid)["description"] == ""


def test_rename_unknown_server(api):
    assert_error(api.call("PUT", f"/v1/{{pid}}/cloudservers/{UNKNOWN}", {"server": {"name": "x"}}), 404, "Ecs.0114")


# --- delete --------------------------------------------------------------------------------------------------

def test_delete_one_and_then_several(api):
    ids = api.create_servers(count=3)
    api.stop(ids[1])
    r = api.post(DELETE, {"servers": [{"id": ids[0]}]})
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS" and job["job_type"] == "deleteServer"
    assert [(sj["job_type"], sj["entities"]["server_id"]) for sj in job["entities"]["sub_jobs"]] == [
        ("deleteSingleServer", ids[0])]
    assert_error(api.get(f"/v1/{{pid}}/cloudservers/{ids[0]}"), 404, "Ecs.0114")
    assert listing(api)["count"] == 2

    job = api.wait_job(api.post(DELETE, {"servers": [{"id": ids[1]}, {"id": ids[2]}],
                                         "delete_publicip": True}).json()["job_id"])
    assert job["status"] == "SUCCESS" and job["entities"]["sub_jobs_total"] == 2
    assert sorted(sub_server_ids(job)) == sorted(ids[1:])
    assert listing(api) == {"count": 0, "servers": []}
    # a deleted server is gone from every API
    assert_error(api.post(DELETE, {"servers": [{"id": ids[0]}]}), 404, "Ecs.0114")
    assert_error(action(api, "os-start", [ids[1]]), 404, "Ecs.0114")
    assert_error(api.get(f"/v1/{{pid}}/cloudservers/{ids[2]}/block_device"), 404, "Ecs.0114")


def _volumes_of(api: Api, volume_ids: list[str]) -> dict[str, dict]:
    """The volume records (no EVS API here, so the store is read directly)."""
    def run(conn):
        return {r.id: dict(r._mapping) for r in conn.execute(select(volumes).where(volumes.c.id.in_(volume_ids)))}
    return api.client.app.state.services.store.run_sync(run)


@pytest.mark.parametrize("delete_volume", [None, False, True])
def test_delete_volume_decides_about_the_data_disks(api, delete_volume):
    sid = sub_server_ids(create(api, data_volumes=[{"volumetype": "SAS", "size": 20}]))[0]
    system, data = [v["id"] for v in api.server(sid)["os-extended-volumes:volumes_attached"]]
    body: dict[str, Any] = {"servers": [{"id": sid}]}
    if delete_volume is not None:
        body["delete_volume"] = delete_volume
    assert api.wait_job(api.post(DELETE, body).json()["job_id"])["status"] == "SUCCESS"
    left = _volumes_of(api, [system, data])
    assert system not in left                       # the system disk always goes with the server
    if delete_volume:
        assert data not in left
    else:
        assert left[data]["server_id"] is None and left[data]["status"] == "available"


def test_delete_refusals_are_all_or_nothing(api):
    a, b = api.create_servers(count=2)
    cases = [
        ({"servers": []}, 400, "Ecs.0005"),
        ({"servers": [{"id": a}, {"id": UNKNOWN}]}, 404, "Ecs.0114"),
        ({"servers": [{"id": a}, {"id": "not-a-uuid"}]}, 404, "Ecs.0114"),
        ({"servers": [{"id": a}, {"id": a}]}, 400, "Ecs.0005"),
        ({"servers": [{"id": a}] + [{"id": UNKNOWN}] * 1000}, 400, "Ecs.0118"),
        ({"servers": {"id": a}}, 400, "Ecs.0005"),
        ({"servers": [{"id": 1}]}, 400, "Ecs.0005"),
        ({"servers": [{"id": a}], "delete_volume": "yes"}, 400, "Ecs.0005"),
        ({"servers": [{"id": a}], "force": True}, 400, "Ecs.0005"),
        ({}, 400, "Ecs.0005"),
    ]
    for body, status, code in cases:
        assert_error(api.post(DELETE, body), status, code)
    for sid in (a, b):
        srv = api.server(sid)
        assert srv["status"] == "ACTIVE" and srv["OS-EXT-STS:task_state"] is None


# --- batch start / stop / reboot ------------------------------------------------------------------------------

def test_stop_start_and_reboot_in_a_batch(api):
    ids = api.create_servers(count=2)
    job = run_action(api, "os-stop", ids)
    assert job["status"] == "SUCCESS" and job["job_type"] == "batchStopServer"
    assert job["entities"]["sub_jobs_total"] == 2
    assert {sj["job_type"] for sj in job["entities"]["sub_jobs"]} == {"stopServer"}
    assert sorted(sub_server_ids(job)) == sorted(ids)
    for sid in ids:
        srv = api.server(sid)
        assert (srv["status"], srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:power_state"]) == ("SHUTOFF", "stopped", 4)

    job = run_action(api, "os-start", ids)
    assert job["status"] == "SUCCESS" and job["job_type"] == "batchStartServer"
    assert {sj["job_type"] for sj in job["entities"]["sub_jobs"]} == {"startServer"}
    assert {api.server(i)["status"] for i in ids} == {"ACTIVE"}

    for kind in ("SOFT", "HARD"):
        job = run_action(api, "reboot", ids, type=kind)
        assert job["status"] == "SUCCESS" and job["job_type"] == "batchRebootServer"
        assert {sj["job_type"] for sj in job["entities"]["sub_jobs"]} == {"rebootServer"}
        assert {(api.server(i)["status"], api.server(i)["OS-EXT-STS:power_state"]) for i in ids} == {("ACTIVE", 1)}

    job = run_action(api, "os-stop", ids, type="HARD")
    assert job["status"] == "SUCCESS" and {api.server(i)["status"] for i in ids} == {"SHUTOFF"}


def test_stopping_a_stopped_server_and_starting_a_running_one_succeed_at_once(api):
    running, stopped = api.create_servers(count=2)
    api.stop(stopped)
    job = run_action(api, "os-stop", [stopped])
    assert job["status"] == "SUCCESS"
    assert [(sj["status"], sj["entities"]["server_id"]) for sj in job["entities"]["sub_jobs"]] == [
        ("SUCCESS", stopped)]
    assert api.server(stopped)["status"] == "SHUTOFF"
    job = run_action(api, "os-start", [running])
    assert job["status"] == "SUCCESS" and job["entities"]["sub_jobs"][0]["status"] == "SUCCESS"
    # a mix: one sub-job does the work, the other has nothing to do
    job = run_action(api, "os-stop", [running, stopped])
    assert job["status"] == "SUCCESS" and job["entities"]["sub_jobs_total"] == 2
    assert {api.server(i)["status"] for i in (running, stopped)} == {"SHUTOFF"}


@pytest.mark.parametrize("body", [
    {"reboot": {"servers": [{"id": UNKNOWN}]}},                       # reboot type is mandatory
    {"reboot": {"type": "MEDIUM", "servers": [{"id": UNKNOWN}]}},
    {"os-stop": {"type": "soft", "servers": [{"id": UNKNOWN}]}},
    {"os-start": {"type": "SOFT", "servers": [{"id": UNKNOWN}]}},
    {"os-start": {"servers": [{"id": UNKNOWN}]}, "os-stop": {"servers": [{"id": UNKNOWN}]}},
    {"os-pause": {"servers": [{"id": UNKNOWN}]}},
    {},
    {"os-start": {}},
    {"os-start": {"servers": "all"}},
    {"os-start": {"servers": []}},
    {"os-start": None},
])
def test_batch_action_bodies_are_checked(api, body):
    assert_error(api.post(ACTION, body), 400, "Ecs.0005")


def test_batch_action_refusals_are_all_or_nothing(api):
    a, b = api.create_servers(count=2)
    api.stop(b)
    assert_error(action(api, "reboot", [a, b], type="SOFT"), 400, "Ecs.0100")     # b is stopped
    assert_error(action(api, "os-stop", [a, UNKNOWN]), 404, "Ecs.0114")
    assert_error(action(api, "os-stop", [a, "12345"]), 404, "Ecs.0114")
    assert_error(action(api, "os-stop", [a, a]), 400, "Ecs.0005")
    assert_error(action(api, "os-stop", [a] + [UNKNOWN] * 1000), 400, "Ecs.0118")
    assert (api.server(a)["status"], api.server(a)["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
    assert (api.server(b)["status"], api.server(b)["OS-EXT-STS:task_state"]) == ("SHUTOFF", None)
    # nothing was left behind: a normal stop of a still works
    assert run_action(api, "os-stop", [a])["status"] == "SUCCESS"


def test_servers_of_another_project_are_unknown(api, other_api):
    sid = api.create_servers()[0]
    assert_error(action(other_api, "os-stop", [sid]), 404, "Ecs.0114")
    assert_error(other_api.post(DELETE, {"servers": [{"id": sid}]}), 404, "Ecs.0114")
    assert_error(other_api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"name": "mine"}}),
                 404, "Ecs.0114")
    assert_error(other_api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device"), 404, "Ecs.0114")
    srv = api.server(sid)
    assert srv["status"] == "ACTIVE" and srv["name"] == "srv"


def test_one_operation_at_a_time(held_api):
    api = held_api
    a, b = api.create_servers(count=2)
    with s.held(api):
        r = action(api, "reboot", [a], type="HARD")
        assert r.status_code == 200, r.text
        reboot_job = r.json()["job_id"]
        srv = api.server(a)
        assert (srv["status"], srv["OS-EXT-STS:task_state"]) == ("HARD_REBOOT", "rebooting_hard")
        assert api.job(reboot_job)["status"] in ("INIT", "RUNNING")
        # the status filter matches on vm_state for ACTIVE, exactly for REBOOT/HARD_REBOOT
        assert {x["id"] for x in listing(api, "?status=ACTIVE")["servers"]} == {a, b}
        assert [x["id"] for x in listing(api, "?status=HARD_REBOOT")["servers"]] == [a]
        assert listing(api, "?status=REBOOT")["count"] == 0

        for name, args in (("os-stop", {}), ("os-start", {}), ("reboot", {"type": "SOFT"})):
            assert_error(action(api, name, [a], **args), 400, "Ecs.0100")
        assert_error(action(api, "os-stop", [b, a]), 400, "Ecs.0100")                 # all or nothing
        assert_error(api.post(DELETE, {"servers": [{"id": a}]}), 400, "Ecs.0100")
        assert_error(api.call("PUT", f"/v1/{{pid}}/cloudservers/{a}", {"server": {"name": "x"}}), 400, "Ecs.0100")
        assert api.server(b)["OS-EXT-STS:task_state"] is None

    assert api.wait_job(reboot_job)["status"] == "SUCCESS"
    srv = api.server(a)
    assert (srv["status"], srv["OS-EXT-STS:task_state"], srv["OS-EXT-STS:power_state"]) == ("ACTIVE", None, 1)
    with s.held(api):
        r = action(api, "os-stop", [a, b])
        assert r.status_code == 200
        assert api.server(a)["OS-EXT-STS:task_state"] == "powering-off"
        assert api.server(a)["status"] == "ACTIVE"                # still ACTIVE while powering off
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


# --- auth and project --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/%s/cloudservers/detail", None),
    ("POST", "/v1/%s/cloudservers", server_body()),
    ("POST", "/v1/%s/cloudservers/action", {"os-start": {"servers": [{"id": UNKNOWN}]}}),
    ("POST", "/v1/%s/cloudservers/delete", {"servers": [{"id": UNKNOWN}]}),
    ("GET", "/v1/%s/cloudservers/" + UNKNOWN, None),
    ("PUT", "/v1/%s/cloudservers/" + UNKNOWN, {"server": {"name": "x"}}),
])
def test_project_and_token_are_checked(api, method, path, body):
    assert_error(api.call(method, path % ("0" * 32), body), 400, "Ecs.0023")
    assert_error(api.call(method, path % api.pid, body, token=False), 401, "Common.0013")
    assert_error(api.call(method, path % api.pid, body, headers={"X-Auth-Token": "ecsd_forged"}),
                 401, "Common.0013")


def test_one_block_device(api):
    sid = api.create_servers()[0]
    disks = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
    r = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device/{disks[0]['volumeId']}")
    assert r.status_code == 200 and r.json()["volumeAttachment"] == disks[0]
    r = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device/0c7a4b8e-5d3f-4e2a-9b1c-7d6e5f4a3b2c")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Ecs.0111"


# --- X-Client-Token: idempotent create ------------------------------------------------------------------

def _server_count(api) -> int:
    return api.get("/v1/{pid}/cloudservers/detail").json()["count"]


def test_create_with_a_client_token_is_idempotent(api):
    before = _server_count(api)
    headers = {"X-Client-Token": "tf-7b1e2c3d-create-1"}
    first = api.post(CREATE, server_body(name="idem"), headers=headers)
    assert first.status_code == 200, first.text
    # The same request again (e.g. a client retrying after a lost answer): the same job and servers.
    again = api.post(CREATE, server_body(name="idem"), headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert _server_count(api) == before + 1
    assert api.wait_job(first.json()["job_id"])["status"] == "SUCCESS"
    # Once the job is done, a repeat still answers with the same job.
    assert api.post(CREATE, server_body(name="idem"), headers=headers).json() == first.json()
    # The same token with a different request is refused and creates nothing.
    assert_error(api.post(CREATE, server_body(name="other"), headers=headers), 400, "Ecs.0005")
    assert _server_count(api) == before + 1
    # Another token, or none, is another request.
    other = api.post(CREATE, server_body(name="idem"), headers={"X-Client-Token": "tf-7b1e2c3d-create-2"})
    assert other.status_code == 200 and other.json()["job_id"] != first.json()["job_id"]
    assert _server_count(api) == before + 2


def test_client_tokens_are_per_project_and_dry_runs_do_not_use_them(api, other_api):
    headers = {"X-Client-Token": "shared-token"}
    dry = api.post(CREATE, {**server_body(name="dry"), "dry_run": True}, headers=headers)
    assert dry.status_code == 202, dry.text
    mine = api.post(CREATE, server_body(name="mine"), headers=headers)
    assert mine.status_code == 200, mine.text
    theirs = other_api.post(CREATE, server_body(name="theirs"), headers=headers)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["job_id"] != mine.json()["job_id"]


@pytest.mark.parametrize("token", ["", "has space", "x" * 65])
def test_malformed_client_token_is_refused(api, token):
    assert_error(api.post(CREATE, server_body(name="bad-token"), headers={"X-Client-Token": token}), 400,
                 "Ecs.0005")


def test_concurrent_repeats_of_a_client_token_create_once(api):
    before = _server_count(api)
    headers = {"X-Client-Token": "race-token"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: api.post(CREATE, server_body(name="race"), headers=headers), range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert _server_count(api) == before + 1


# --- PUT /cloudservers/server-name: batch rename ---------------------------------------------------------

RENAME = "/v1/{pid}/cloudservers/server-name"


def test_batch_rename(api):
    ids = api.create_servers(count=2, name="before")
    other = api.create_servers(name="untouched")[0]
    r = api.call("PUT", RENAME, {"name": "after", "servers": [{"id": i} for i in ids]})
    assert r.status_code == 200, r.text
    assert r.json() == {"response": [{"id": i} for i in ids]}
    assert [api.server(i)["name"] for i in ids] == ["after", "after"]
    assert api.server(other)["name"] == "untouched"
    # a dry run checks and changes nothing
    r = api.call("PUT", RENAME, {"name": "dry", "dry_run": True, "servers": [{"id": ids[0]}]})
    assert r.status_code == 204, r.text
    assert api.server(ids[0])["name"] == "after"


def test_batch_rename_is_all_or_nothing(api):
    ids = api.create_servers(count=2, name="keep")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(api.call("PUT", RENAME, {"name": "x", "servers": [{"id": ids[0]}, {"id": missing}]}),
                 404, "Ecs.0114")
    assert api.post(f"/v2.1/{{pid}}/servers/{ids[1]}/action", {"lock": None}).status_code == 202
    assert_error(api.call("PUT", RENAME, {"name": "x", "servers": [{"id": i} for i in ids]}), 400, "Ecs.0605")
    assert [api.server(i)["name"] for i in ids] == ["keep-0001", "keep-0002"]


@pytest.mark.parametrize("body, code", [
    ({"name": "x", "servers": []}, "Ecs.0005"),
    ({"name": "x"}, "Ecs.0005"),
    ({"name": "x", "servers": [{"id": "a"}] * 101}, "Ecs.0005"),
    ({"name": "bad name!", "servers": [{"id": "00000000-0000-4000-8000-000000000000"}]}, "Ecs.0915"),
    ({"name": "x", "servers": [{"id": "00000000-0000-4000-8000-000000000000"}], "extra": 1}, "Ecs.0005"),
])
def test_batch_rename_bad_bodies(api, body, code):
    assert_error(api.call("PUT", RENAME, body), 400, code)


def test_server_name_path_is_not_a_server_id(api):
    assert_error(api.get("/v1/{pid}/cloudservers/server-name"), 404, "Ecs.0114")


def test_a_name_filter_longer_than_any_name_matches_nothing(api):
    """Not a database error: SQLite bounds LIKE patterns (50,000 bytes), and no name is that long."""
    api.create_servers()
    long_name = "x" * 60_000
    r = api.get(f"/v1/{{pid}}/cloudservers/detail?name={long_name}")
    assert r.status_code == 200 and r.json()["count"] == 0, r.text[:300]
    for path in ("/v2.1/{pid}/servers", "/v2.1/{pid}/servers/detail"):
        r = api.get(f"{path}?name={long_name}")
        assert r.status_code == 200 and r.json()["servers"] == [], r.text[:300]
    r = api.get(f"/v1/{{pid}}/cloudservers/detail?ip={'1' * 60_000}")
    assert r.status_code == 200 and r.json()["count"] == 0


def test_a_nul_character_is_refused_not_a_500(api):
    """PostgreSQL's text columns cannot hold NUL: it is refused at the edge, for every API, body and query."""
    sid = api.create_servers()[0]
    body = {"server": {"name": "nul", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
                       "description": "a\u0000b"}}
    assert_error(api.post("/v1/{pid}/cloudservers", body), 400, "Ecs.0005")
    assert_error(api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"name": "x\u0000"}}), 400, "Ecs.0005")
    assert_error(api.get("/v1/{pid}/cloudservers/detail?name=%00"), 400, "Ecs.0005")
    assert_error(api.get("/v2.1/{pid}/servers?name=a%00b"), 400, "Ecs.0005")
    assert_error(api.get(f"/v1/{{pid}}/cloudservers/{sid}%00"), 404, "Common.0404")      # a path naming nothing
    assert_error(api.get("/v2/images/a%00b"), 404, "Common.0404")


def test_adding_a_server_to_the_monitoring_list(api, other_api):
    (sid,) = api.create_servers()
    for body in ({"monitorMetrics": None}, {}, {"monitorMetrics": ""}):
        r = api.post(f"/v1.0/servers/{sid}/action", body)
        assert r.status_code == 200 and r.content == b"", r.text
    assert_error(api.post(f"/v1.0/servers/{sid}/action", {"monitorMetrics": None, "x": 1}), 400, "Ecs.0005")
    assert_error(api.post(f"/v1.0/servers/{sid}/action", {"monitorMetrics": 5}), 400, "Ecs.0005")
    assert_error(other_api.post(f"/v1.0/servers/{sid}/action", {"monitorMetrics": None}), 404, "Ecs.0114")
    assert_error(api.post(f"/v1.0/servers/{sid}/action", {"monitorMetrics": None}, token=False), 401, "Common.0013")
