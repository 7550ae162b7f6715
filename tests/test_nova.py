"""Native (Nova) server APIs: single-server actions, lock / unlock, server lists with marker paging."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import support as s
from tests.support import Api, assert_error

ACTION = "/v2.1/{pid}/servers/%s/action"
UNKNOWN = "0b4e9c1a-7d2f-4e8b-9a6c-3f5d2e1b0c9a"
BOTH_DATABASES = True




def act(api: Api, sid: str, body: dict):
    return api.post(ACTION % sid, body)


def settled(api: Api, sid: str, timeout: float = 10.0) -> dict:
    """The server once no operation is running on it (a native action returns no job id)."""
    deadline = time.monotonic() + timeout
    while True:
        srv = api.server(sid)
        if srv["OS-EXT-STS:task_state"] is None:
            return srv
        assert time.monotonic() < deadline, srv
        time.sleep(0.01)


def batch(api: Api, name: str, sid: str, **args):
    return api.post("/v1/{pid}/cloudservers/action", {name: {"servers": [{"id": sid}], **args}})


# --- actions -------------------------------------------------------------------------------------------------

def test_stop_start_reboot_answer_202_without_body(api):
    sid = api.create_servers()[0]
    for body, status in (({"os-stop": {}}, "SHUTOFF"), ({"os-start": {}}, "ACTIVE"),
                         ({"os-stop": {"type": "HARD"}}, "SHUTOFF"), ({"os-start": None}, "ACTIVE"),
                         ({"os-stop": None}, "SHUTOFF"), ({"os-start": {}}, "ACTIVE"),
                         ({"reboot": {"type": "SOFT"}}, "ACTIVE"), ({"reboot": {"type": "HARD"}}, "ACTIVE")):
        r = act(api, sid, body)
        assert r.status_code == 202, (body, r.text)
        assert r.content == b""
        srv = settled(api, sid)
        assert srv["status"] == status, body
        assert srv["OS-EXT-STS:power_state"] == (4 if status == "SHUTOFF" else 1)


def test_native_actions_are_jobs_of_the_batch_types(api):
    sid = api.create_servers()[0]
    assert act(api, sid, {"os-stop": {}}).status_code == 202
    settled(api, sid)
    # the job is the batch API's: start it again through the batch API and both are consistent
    r = batch(api, "os-start", sid)
    job = api.wait_job(r.json()["job_id"])
    assert job["job_type"] == "batchStartServer" and job["status"] == "SUCCESS"
    # starting a running server is a no-op, as in the batch API
    assert act(api, sid, {"os-start": {}}).status_code == 202
    assert settled(api, sid)["status"] == "ACTIVE"


def test_state_gate_applies_to_native_actions(api):
    sid = api.create_servers()[0]
    api.stop(sid)
    assert_error(act(api, sid, {"reboot": {"type": "SOFT"}}), 400, "Ecs.0100")
    broken = api.wait_job(api.post("/v1/{pid}/cloudservers", {"server": {
        "name": "broken", "imageRef": s.FAULTY_DISK, "flavorRef": "s3.small.1", "vpcid": s.VPC,
        "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}).json()["job_id"])
    bad = broken["entities"]["sub_jobs"][0]["entities"]["server_id"]
    assert_error(act(api, bad, {"os-start": {}}), 400, "Ecs.0100")
    assert_error(act(api, bad, {"os-stop": {}}), 400, "Ecs.0100")


def test_conflict_while_a_job_runs(slow_api):
    api = slow_api
    sid = api.create_servers()[0]
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]})    # three driver steps
    assert r.status_code == 200
    for body in ({"reboot": {"type": "HARD"}}, {"os-stop": {}}, {"os-start": {}}):
        assert_error(act(api, sid, body), 400, "Ecs.0100")
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert_error(act(api, sid, {"os-start": {}}), 404, "Ecs.0114")


@pytest.mark.parametrize("body", [
    {"pause": None},
    {"rebuild": {"imageRef": "not-a-uuid"}},
    {"rebuild": {}},
    {"os-start": {}, "os-stop": {}},
    {},
    {"reboot": {}},
    {"reboot": None},
    {"reboot": {"type": "soft"}},
    {"os-stop": {"type": "GENTLE"}},
    {"os-stop": {"kind": "SOFT"}},
    {"os-stop": "SOFT"},
    {"os-start": {"servers": []}},
    {"unlock": {"now": True}},
    {"lock": {"reason": "x"}},
    {"lock": "yes"},
])
def test_action_bodies_are_checked(api, body):
    sid = api.create_servers()[0]
    assert_error(act(api, sid, body), 400, "Ecs.0005")
    srv = api.server(sid)
    assert (srv["status"], srv["locked"]) == ("ACTIVE", False)


def test_action_body_not_an_object_or_empty(api):
    sid = api.create_servers()[0]
    assert_error(act(api, sid, [{"os-stop": {}}]), 400, "Ecs.0005")
    assert_error(api.post(ACTION % sid, content=b""), 400, "Common.0002")
    assert_error(api.post(ACTION % sid, content=b"lock", headers={"Content-Type": "application/json"}),
                 400, "Ecs.0005")


def test_action_on_unknown_malformed_or_foreign_server(api, other_api):
    sid = api.create_servers()[0]
    for body in ({"os-stop": {}}, {"lock": None}, {"unlock": None}, {"reboot": {"type": "SOFT"}}):
        assert_error(act(api, UNKNOWN, body), 404, "Ecs.0114")
        assert_error(act(api, "not-a-uuid", body), 404, "Ecs.0114")
        assert_error(act(other_api, sid, body), 404, "Ecs.0114")
    srv = api.server(sid)
    assert (srv["status"], srv["locked"]) == ("ACTIVE", False)


# --- lock ----------------------------------------------------------------------------------------------------

def test_locked_server_refuses_every_mutating_operation(api):
    sid, other = api.create_servers(count=2)
    name = api.server(sid)["name"]
    r = act(api, sid, {"lock": None})
    assert r.status_code == 202 and r.content == b""
    assert api.server(sid)["locked"] is True
    assert api.get(f"/v2.1/{{pid}}/servers/{sid}").json()["server"]["locked"] is True

    assert_error(batch(api, "os-stop", sid), 400, "Ecs.0605")
    assert_error(batch(api, "reboot", sid, type="SOFT"), 400, "Ecs.0605")
    assert_error(batch(api, "os-start", sid), 400, "Ecs.0605")          # even a no-op
    assert_error(api.post("/v1/{pid}/cloudservers/action",
                          {"os-stop": {"servers": [{"id": other}, {"id": sid}]}}), 400, "Ecs.0605")
    assert_error(api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}]}), 400, "Ecs.0605")
    assert_error(api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"name": "x"}}), 400, "Ecs.0605")
    assert_error(act(api, sid, {"os-stop": {}}), 400, "Ecs.0605")
    assert_error(act(api, sid, {"reboot": {"type": "HARD"}}), 400, "Ecs.0605")
    assert_error(api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {"imageid": s.DEBIAN,
                                                                                      "mode": "withStopServer"}}),
                 400, "Ecs.0605")
    srv = api.server(sid)
    assert (srv["status"], srv["OS-EXT-STS:task_state"], srv["name"]) == ("ACTIVE", None, name)
    assert api.server(other)["status"] == "ACTIVE"      # the refused batch touched nothing

    # locking twice is fine; reading is allowed while locked
    assert act(api, sid, {"lock": {}}).status_code == 202
    assert api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").status_code == 200

    r = act(api, sid, {"unlock": None})
    assert r.status_code == 202 and r.content == b""
    assert api.server(sid)["locked"] is False
    job = api.wait_job(batch(api, "os-stop", sid).json()["job_id"])
    assert job["status"] == "SUCCESS" and api.server(sid)["status"] == "SHUTOFF"
    assert act(api, sid, {"unlock": {}}).status_code == 202       # unlocking an unlocked server too


def test_lock_with_a_reason_and_lock_during_a_job(slow_api):
    api = slow_api
    sid = api.create_servers()[0]
    r = batch(api, "os-stop", sid)
    assert act(api, sid, {"lock": {"locked_reason": "maintenance"}}).status_code == 202
    # the job that was already running finishes; new operations are refused
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    srv = api.server(sid)
    assert (srv["status"], srv["locked"]) == ("SHUTOFF", True)
    assert_error(act(api, sid, {"os-start": {}}), 400, "Ecs.0605")


# --- lists ---------------------------------------------------------------------------------------------------

def test_list_servers_shows_id_name_and_links(api):
    ids = api.create_servers(count=2, name="node")
    r = api.get("/v2.1/{pid}/servers")
    assert r.status_code == 200, r.text
    body = r.json()
    assert "servers_links" not in body
    assert sorted(x["id"] for x in body["servers"]) == sorted(ids)
    for item in body["servers"]:
        assert set(item) == {"id", "name", "links"}
        assert item["name"] in ("node-0001", "node-0002")
        rels = {link["rel"]: link["href"] for link in item["links"]}
        assert rels["self"].endswith(f"/v2.1/{api.pid}/servers/{item['id']}")
        assert rels["bookmark"].endswith(f"/{api.pid}/servers/{item['id']}")


def test_list_detail_shows_the_nova_view(api):
    sid = api.create_servers(name="box")[0]
    api.stop(sid)
    r = api.get("/v2.1/{pid}/servers/detail")
    assert r.status_code == 200, r.text
    [srv] = r.json()["servers"]
    assert srv == api.get(f"/v2.1/{{pid}}/servers/{sid}").json()["server"]
    assert srv["id"] == sid and srv["name"] == "box"
    assert (srv["status"], srv["OS-EXT-STS:vm_state"], srv["OS-EXT-STS:power_state"]) == ("SHUTOFF", "stopped", 4)
    assert srv["OS-EXT-STS:task_state"] is None and srv["locked"] is False
    assert srv["tenant_id"] == api.pid and srv["metadata"]["vpc_id"] == s.VPC
    assert srv["image"]["id"] == s.UBUNTU and srv["image"]["links"][0]["rel"] == "bookmark"
    assert (srv["flavor"]["vcpus"], srv["flavor"]["ram"], srv["flavor"]["original_name"]) == (1, 1024, "s3.small.1")
    [nic] = srv["addresses"][s.VPC]
    assert nic["version"] == 4 and nic["addr"]
    [vol] = srv["os-extended-volumes:volumes_attached"]
    assert set(vol) == {"id", "delete_on_termination"} and vol["delete_on_termination"] is True
    assert "fault" not in srv
    assert {link["rel"] for link in srv["links"]} == {"self", "bookmark"}


def test_detail_is_not_taken_for_a_server_id(api):
    assert api.get("/v2.1/{pid}/servers/detail").json() == {"servers": []}
    assert api.get("/v2.1/{pid}/servers").json() == {"servers": []}
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{UNKNOWN}"), 404, "Ecs.0114")


def _follow(api: Api, href: str):
    parts = urlsplit(href)
    return api.get(parts.path + "?" + parts.query)


@pytest.mark.parametrize("path", ["servers", "servers/detail"])
def test_paging_by_marker(api, path):
    ids = api.create_servers(count=5)
    everything = [x["id"] for x in api.get(f"/v2.1/{{pid}}/{path}").json()["servers"]]
    assert sorted(everything) == sorted(ids)
    assert everything == [x["id"] for x in api.get("/v1/{pid}/cloudservers/detail").json()["servers"]]

    seen: list[str] = []
    r = api.get(f"/v2.1/{{pid}}/{path}?limit=2")
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        seen += [x["id"] for x in body["servers"]]
        if "servers_links" not in body:
            break
        [link] = body["servers_links"]
        assert link["rel"] == "next"
        query = parse_qs(urlsplit(link["href"]).query)
        assert query["limit"] == ["2"] and query["marker"] == [seen[-1]]
        assert urlsplit(link["href"]).path == f"/v2.1/{api.pid}/{path}"
        r = _follow(api, link["href"])
    assert pages == 3 and seen == everything
    # a marker starts after that server
    after = api.get(f"/v2.1/{{pid}}/{path}?marker={everything[1]}").json()
    assert [x["id"] for x in after["servers"]] == everything[2:]
    # exactly one page's worth: no next link when nothing follows
    assert "servers_links" not in api.get(f"/v2.1/{{pid}}/{path}?limit=5").json()
    assert "servers_links" in api.get(f"/v2.1/{{pid}}/{path}?limit=4").json()


def test_next_link_keeps_the_filters(api):
    api.create_servers(count=3, name="web")
    api.create_servers(count=2, name="db")
    r = api.get("/v2.1/{pid}/servers/detail?name=web&limit=2")
    body = r.json()
    rest = _follow(api, body["servers_links"][0]["href"]).json()
    assert sorted(x["name"] for x in body["servers"] + rest["servers"]) == ["web-0001", "web-0002", "web-0003"]
    assert "servers_links" not in rest


@pytest.mark.parametrize("query", ["?marker=" + UNKNOWN, "?marker=abc", "?limit=-1", "?limit=x",
                                   "?status=SLEEPING", "?changes-since=yesterday"])
def test_list_refuses_bad_queries(api, query):
    assert_error(api.get("/v2.1/{pid}/servers/detail" + query), 400, "Ecs.0005")
    assert_error(api.get("/v2.1/{pid}/servers" + query), 400, "Ecs.0005")


def test_marker_of_another_project_is_refused(api, other_api):
    sid = api.create_servers()[0]
    assert_error(other_api.get(f"/v2.1/{{pid}}/servers?marker={sid}"), 400, "Ecs.0005")
    assert other_api.get("/v2.1/{pid}/servers/detail").json() == {"servers": []}
    assert_error(other_api.get(f"/v2.1/{{pid}}/servers/{sid}"), 404, "Ecs.0114")


def test_list_filters(api):
    web = api.create_servers(name="web")[0]
    db = api.create_servers(name="db", image=s.DEBIAN)[0]
    api.stop(db)

    def ids(query: str) -> set[str]:
        r = api.get("/v2.1/{pid}/servers/detail" + query)
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["servers"]}

    assert ids("?name=we") == {web}
    assert ids("?status=SHUTOFF") == {db} and ids("?status=ACTIVE") == {web}
    assert ids(f"?image={s.DEBIAN}") == {db}
    assert ids("?flavor=s3.small.1") == {web, db} and ids("?flavor=c6.large.2") == set()
    assert ids("?changes-since=2000-01-01T00:00:00Z") == {web, db}
    assert ids("?changes-since=2999-01-01T00:00:00Z") == set()
    assert ids("?limit=1000000") == {web, db}              # lowered to 1000
    assert ids("?all_tenants=False&deleted=False") == {web, db}   # unknown filters are ignored


def test_native_paths_check_project_and_token(api):
    other = "0" * 32
    for path in ("/v2.1/%s/servers", "/v2.1/%s/servers/detail", "/v2.1/%s/servers/" + UNKNOWN):
        assert_error(api.get(path % other), 400, "Ecs.0023")
        assert_error(api.get(path % api.pid, token=False), 401, "Common.0013")
    assert_error(api.post(f"/v2.1/{other}/servers/{UNKNOWN}/action", {"os-start": {}}), 400, "Ecs.0023")
    assert_error(api.post(ACTION % UNKNOWN, {"os-start": {}}, token=False), 401, "Common.0013")


def test_rebuild_is_a_change_os(api):
    api.keypair("kp-rebuild")
    sid = api.create_servers()[0]
    r = act(api, sid, {"rebuild": {"imageRef": s.DEBIAN, "key_name": "kp-rebuild", "name": "rebuilt"}})
    assert r.status_code == 202, r.text
    server = r.json()["server"]
    assert server["status"] == "REBUILD" and server["name"] == "rebuilt"
    final = settled(api, sid)
    assert final["status"] == "ACTIVE"
    assert final["image"]["id"] == s.DEBIAN and final["key_name"] == "kp-rebuild"
    assert_error(act(api, sid, {"rebuild": {"imageRef": UNKNOWN}}), 400, "Ecs.0031")


# --- console output -------------------------------------------------------------------------------------

def test_console_output_gives_the_last_lines(api, other_api):
    sid = api.create_servers()[0]
    full = act(api, sid, {"os-getConsoleOutput": {"length": -1}})
    assert full.status_code == 200, full.text
    lines = full.json()["output"].splitlines()
    assert len(lines) >= 2 and all(isinstance(line, str) for line in lines)
    assert act(api, sid, {"os-getConsoleOutput": {"length": "1"}}).json() == {"output": lines[-1]}   # as the reference's example
    assert act(api, sid, {"os-getConsoleOutput": {"length": 0}}).json() == {"output": ""}
    assert act(api, sid, {"os-getConsoleOutput": {}}).json()["output"].splitlines() == lines
    assert act(api, sid, {"os-getConsoleOutput": None}).json()["output"].splitlines() == lines
    for bad in ({"length": -2}, {"length": "many"}, {"length": 1.5}, {"length": True}, {"lines": 3}, "x"):
        assert_error(act(api, sid, {"os-getConsoleOutput": bad}), 400, "Ecs.0005")
    assert_error(act(api, UNKNOWN, {"os-getConsoleOutput": {"length": 5}}), 404, "Ecs.0114")
    assert_error(act(other_api, sid, {"os-getConsoleOutput": {"length": 5}}), 404, "Ecs.0114")


def test_security_group_actions(api):
    sid = api.create_servers()[0]
    groups = f"/v2.1/{{pid}}/servers/{sid}/os-security-groups"
    before = api.get(groups).json()["security_groups"]
    assert [g["name"] for g in before] == ["default"]
    assert act(api, sid, {"addSecurityGroup": {"name": "default"}}).status_code == 202          # already in it
    assert act(api, sid, {"addSecurityGroup": {"name": before[0]["id"]}}).status_code == 202    # by id
    assert_error(act(api, sid, {"removeSecurityGroup": {"name": "default"}}), 400, "Ecs.0014")
    assert_error(act(api, sid, {"addSecurityGroup": {"name": "web"}}), 400, "Ecs.0014")
    for bad in (None, {}, {"name": 5}, {"name": "default", "x": 1}):
        assert_error(act(api, sid, {"addSecurityGroup": bad}), 400, "Ecs.0005")
    assert_error(act(api, UNKNOWN, {"addSecurityGroup": {"name": "default"}}), 404, "Ecs.0114")
    assert api.get(groups).json()["security_groups"] == before
