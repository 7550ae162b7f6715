"""The emulator controls over HTTP (/_ecsd/): who may reach them, every refusal, faults, holds, seeds,
snapshots and the request log, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app, operator_credentials
from tests import support as s
from tests.support import Api, assert_error

BOTH_DATABASES = True

ROUTES = [("GET", "/_ecsd/"), ("POST", "/_ecsd/reset"), ("GET", "/_ecsd/snapshots"),
          ("PUT", "/_ecsd/snapshots/x"), ("DELETE", "/_ecsd/snapshots/x"), ("POST", "/_ecsd/snapshots/x/restore"),
          ("POST", "/_ecsd/seed"), ("GET", "/_ecsd/faults"), ("POST", "/_ecsd/faults"), ("DELETE", "/_ecsd/faults"),
          ("GET", "/_ecsd/holds"), ("POST", "/_ecsd/holds"), ("DELETE", "/_ecsd/holds"),
          ("GET", "/_ecsd/step-delay"), ("PUT", "/_ecsd/step-delay"), ("GET", "/_ecsd/requests"),
          ("DELETE", "/_ecsd/requests"), ("POST", f"/_ecsd/servers/{s.VPC}/power-off")]


class Operator:
    def __init__(self, client, settings) -> None:
        self.client = client
        self.headers = {"X-Ecsd-Operator-Token": operator_credentials(settings)["operator_token"]}

    def call(self, method: str, path: str, **kw):
        return self.client.request(method, "/_ecsd" + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw):
        r = self.call(method, path, **kw)
        assert r.status_code == status, r.text
        return r.json() if r.content else None


@pytest.fixture
def op(client, settings):
    return Operator(client, settings)


def wait_held(op: Operator) -> list[dict]:
    deadline = time.monotonic() + 5
    while not (held := op.ok("GET", "/holds")["held_jobs"]):
        assert time.monotonic() < deadline, "no job reached the hold"
        time.sleep(0.01)
    return held


def servers(api: Api) -> list[tuple[str, str]]:
    return sorted((x["name"], x["status"]) for x in api.get("/v1/{pid}/cloudservers/detail").json()["servers"])


def change_os(api: Api, sid: str, image: str = s.DEBIAN) -> str:
    r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                 {"os-change": {"adminpass": "Test-Passw0rd!", "imageid": image, "mode": "withStopServer"}})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


# --- who may reach them ----------------------------------------------------------------------------------

def test_without_the_operator_token_every_control_is_an_unknown_path(client, api, settings):
    unknown = client.get("/_ecsd/no-such-thing")
    assert_error(unknown, 404, "Common.0404")
    for method, path in ROUTES:
        for headers in ({}, {"X-Auth-Token": api.token}, {"X-Ecsd-Operator-Token": "ecsd-op-guess"},
                        {"Authorization": "Bearer " + api.token}):
            r = client.request(method, path, headers=headers, json={})
            assert r.status_code == 404 and r.json() == unknown.json(), (method, path, headers, r.text)
        # another method on an existing path is also 404, not 405 (which would tell that it exists)
        assert client.request("PATCH", path).status_code == 404


def test_the_operator_gets_405_for_a_method_not_served(op):
    r = op.call("PATCH", "/faults")
    assert_error(r, 405, "Common.0405")
    assert r.headers["Allow"] == "GET, POST, DELETE"
    assert op.call("GET", "/", headers={}).status_code == 200
    bearer = {"Authorization": "Bearer " + op.headers["X-Ecsd-Operator-Token"]}
    assert op.client.get("/_ecsd/faults", headers=bearer).status_code == 200


def test_with_the_emulator_off_the_controls_do_not_exist(settings):
    token = operator_credentials(settings)["operator_token"]
    settings.emulator = False
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for method, path in ROUTES:
            assert client.request(method, path, headers={"X-Ecsd-Operator-Token": token}).status_code == 404
        assert client.get("/healthz").status_code == 200


# --- faults ----------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
@pytest.mark.parametrize(("body", "says"), [
    ({"operation": "formatDisk", "code": "Ecs.0226"}, "unknown operation"),
    ({"operation": "changeOS", "code": "Ecs.0226", "step": "defrag"}, "has no step"),
    ({"operation": "changeOS", "code": "not a code"}, "not an error code"),
    ({"operation": "changeOS", "code": "Ecs.0226", "count": 0}, "count"),
    ({"operation": "changeOS"}, "code"),
    ({"operation": "changeOS", "code": "Ecs.0226", "colour": "red"}, "colour"),
    ({"operation": 5, "code": "Ecs.0226"}, "operation"),
])
def test_a_bad_fault_is_refused_with_the_reason(op, body, says):
    err = assert_error(op.call("POST", "/faults", json=body), 400, "Ecs.0005")
    assert says in err["message"]
    assert op.ok("GET", "/faults") == {"faults": []}


def test_a_fault_body_that_is_not_json_is_refused(op):
    assert_error(op.call("POST", "/faults", content=b"{oops", headers={"Content-Type": "application/json"}),
                 400, "Ecs.0005")
    assert_error(op.call("POST", "/faults", content=b""), 400, "Common.0002")


def test_faults_on_a_batch_operation_fail_that_many_sub_jobs(op, api):
    fault = op.ok("POST", "/faults", 201, json={"operation": "createServer", "code": "Ecs.0204", "count": 2})["fault"]
    assert fault == {"operation": "createServer", "step": "boot", "code": "Ecs.0204", "server_id": None,
                     "remaining": 2, "reason": "injected fault at step boot"}
    body = {"server": {"name": "f", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}, "count": 3}}
    job = api.wait_job(api.post("/v1/{pid}/cloudservers", body).json()["job_id"])
    subs = sorted((x["status"], x.get("error_code")) for x in job["entities"]["sub_jobs"])
    assert subs == [("FAIL", "Ecs.0204"), ("FAIL", "Ecs.0204"), ("SUCCESS", None)]
    assert op.ok("GET", "/faults") == {"faults": []}          # used up


def test_clearing_faults_lets_jobs_succeed(op, api):
    (sid,) = api.create_servers()
    op.ok("POST", "/faults", 201, json={"operation": "changeOS", "code": "Ecs.0202"})
    assert op.call("DELETE", "/faults").status_code == 204
    assert api.wait_job(change_os(api, sid))["status"] == "SUCCESS"


# --- holds and the step delay ----------------------------------------------------------------------------

def test_a_hold_without_operation_holds_every_job_at_its_first_step(op, api):
    (sid,) = api.create_servers()
    assert op.ok("POST", "/holds", 201) == {"hold": {"operation": None, "step": None}}
    r = api.post("/v1/{pid}/cloudservers/action", {"os-stop": {"servers": [{"id": sid}]}})
    wait_held(op)
    (held,) = op.ok("GET", "/holds")["held_jobs"]
    assert (held["operation"], held["step"], held["server_id"]) == ("stopServer", "stop", sid)
    assert api.server(sid)["status"] == "ACTIVE" and api.server(sid)["OS-EXT-STS:task_state"] == "powering-off"
    assert op.ok("DELETE", "/holds") == {"released": 1}
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(sid)["status"] == "SHUTOFF"


def test_a_hold_needs_an_operation_for_its_step(op):
    assert_error(op.call("POST", "/holds", json={"step": "start"}), 400, "Ecs.0005")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("seconds", [-1, 601, "1", None])
def test_a_step_delay_out_of_range_is_refused(op, seconds):
    assert_error(op.call("PUT", "/step-delay", json={"seconds": seconds}), 400, "Ecs.0005")


def test_the_step_delay_is_set_and_reset(op):
    assert op.ok("PUT", "/step-delay", json={"seconds": 1}) == {"seconds": 1.0}
    assert op.ok("GET", "/step-delay") == {"seconds": 1.0}
    op.ok("POST", "/reset")
    assert op.ok("GET", "/step-delay") == {"seconds": 0.0}


# --- seeds -----------------------------------------------------------------------------------------------

SEED = {
    "projects": [{"name": "eu-de_ci", "domain": "acme", "quotas": {"instances": 5}}],
    "users": [{"name": "alice", "domain": "acme", "password": "Alice-Passw0rd", "projects": ["eu-de_ci"],
               "access_key": True}],
    "images": [{"name": "team-image", "visibility": "private", "project": "eu-de_ci", "domain": "acme",
                "platform": "Debian", "min_disk": 20},
               {"name": "broken-boot", "fault": "start"}],
    "keypairs": [{"name": "alice-key", "user": "alice", "domain": "acme"}],
    "servers": [{"name": "app", "project": "eu-de_ci", "user": "alice", "domain": "acme", "image": "team-image",
                 "flavor": "s3.small.1", "status": "SHUTOFF", "key_name": "alice-key", "count": 2}],
}


def test_a_seed_makes_a_tenant_that_can_log_in_and_see_its_servers(op, client):
    made = op.ok("POST", "/seed", 201, json=SEED)["seeded"]
    assert [d["name"] for d in made["domains"]] == ["acme"]
    (user,) = made["users"]
    assert user["ak"] and user["sk"]
    assert made["keypairs"][0]["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    alice = Api(client, {"user_name": "alice", "password": "Alice-Passw0rd", "domain_name": "acme",
                         "project_name": "eu-de_ci", "project_id": made["projects"][0]["id"]})
    assert servers(alice) == [("app-0001", "SHUTOFF"), ("app-0002", "SHUTOFF")]
    detail = alice.get("/v1/{pid}/cloudservers/detail").json()["servers"][0]
    assert detail["key_name"] == "alice-key" and detail["metadata"]["image_name"] == "team-image"
    limits = alice.get("/v1/{pid}/cloudservers/limits").json()["absolute"]
    assert (limits["maxTotalInstances"], limits["totalInstancesUsed"]) == (5, 2)
    # The seeded servers are usable: start one.
    sid = detail["id"]
    r = alice.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": sid}]}})
    assert alice.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


def test_a_seeded_fault_image_fails_the_boot(op, api):
    made = op.ok("POST", "/seed", 201, json={"images": [{"name": "broken-boot", "fault": "start"}]})["seeded"]
    body = {"server": {"name": "f", "imageRef": made["images"][0]["id"], "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
    job = api.wait_job(api.post("/v1/{pid}/cloudservers", body).json()["job_id"])
    assert job["entities"]["sub_jobs"][0]["error_code"] == "Ecs.0204"


def test_a_seed_is_all_or_nothing(op, api):
    bad = {**SEED, "servers": [*SEED["servers"], {"name": "x", "image": "Standard_Debian_12_latest",
                                                 "flavor": "no.such.flavor"}]}
    err = assert_error(op.call("POST", "/seed", json=bad), 400, "Ecs.0029")
    assert "servers[1] (x)" in err["message"]
    # nothing of it stayed: seeding the good part again works
    op.ok("POST", "/seed", 201, json=SEED)
    assert_error(op.call("POST", "/seed", json={"users": SEED["users"]}), 409, "Common.0409")


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("raw", "ctype", "code"), [
    (b"servers: [", "application/yaml", "Ecs.0005"),
    (b"- a list", "application/yaml", "Ecs.0005"),
    (b'{"servers": [{"name": "x"}]}', "application/json", "Ecs.0005"),
    (b'{"planets": []}', "application/json", "Ecs.0005"),
    (b'{"users": [{"name": "u", "password": "short"}]}', "application/json", "Ecs.0005"),
    (b"", "application/json", "Common.0002"),
    (b"servers: \x80", "application/yaml", "Ecs.0005"),
])
def test_a_malformed_seed_is_refused(op, raw, ctype, code):
    assert_error(op.call("POST", "/seed", content=raw, headers={"Content-Type": ctype}), 400, code)


def test_a_yaml_seed_of_servers_lands_in_the_demo_project(op, api):
    doc = b"servers:\n  - name: web\n    image: Standard_Debian_12_latest\n    flavor: s3.small.1\n    status: ERROR\n"
    op.ok("POST", "/seed", 201, content=doc, headers={"Content-Type": "application/yaml"})
    assert servers(api) == [("web", "ERROR")]


def test_a_seed_too_large_is_refused(op):
    assert_error(op.call("POST", "/seed", content=b" " * (4 * 1024 * 1024 + 1),
                         headers={"Content-Type": "application/json"}), 400, "Ecs.0005")


# --- snapshots, restore, reset --------------------------------------------------------------------------

def test_snapshots_restore_and_reset(op, api):
    (sid,) = api.create_servers(name="kept")
    snap = op.ok("PUT", "/snapshots/one-server")["snapshot"]
    assert snap["name"] == "one-server" and snap["size"] > 0
    api.create_servers(name="later")
    restored = op.ok("POST", "/snapshots/one-server/restore")["restored"]
    assert restored["name"] == "one-server"
    assert servers(api) == [("kept", "ACTIVE")]
    assert api.wait_job(change_os(api, sid))["status"] == "SUCCESS"     # the restored server works
    names = [x["name"] for x in op.ok("GET", "/snapshots")["snapshots"]]
    assert names == ["initial", "one-server"]
    op.ok("POST", "/reset")
    assert servers(api) == []
    assert op.call("DELETE", "/snapshots/one-server").status_code == 204
    assert_error(op.call("POST", "/snapshots/one-server/restore"), 404, "Common.0404")
    assert_error(op.call("DELETE", "/snapshots/initial"), 409, "Common.0409")
    assert_error(op.call("PUT", "/snapshots/bad name!"), 400, "Ecs.0005")


def test_a_restore_abandons_running_jobs(op, api):
    (sid,) = api.create_servers(name="busy")
    op.ok("PUT", "/snapshots/before")
    op.ok("POST", "/holds", 201, json={"operation": "changeOS", "step": "swap_disk"})
    job_id = change_os(api, sid)
    wait_held(op)
    assert op.ok("POST", "/snapshots/before/restore")["restored"]["abandoned_jobs"] == 1
    assert servers(api) == [("busy", "ACTIVE")]
    assert api.get(f"/v1/{{pid}}/jobs/{job_id}").status_code != 200      # the job is not in "before"
    assert api.wait_job(change_os(api, sid))["status"] == "SUCCESS"


def test_a_token_survives_a_reset_while_its_user_exists(op, api):
    op.ok("POST", "/reset")
    assert api.get("/v1/{pid}/cloudservers/detail").status_code == 200


# --- the request log and power-off ----------------------------------------------------------------------

def test_the_request_log_masks_secrets_and_pages_by_seq(op, client, creds):
    api = Api(client, creds)      # logs in: the login is in the log
    (sid,) = api.create_servers()
    change_os(api, sid)
    log = op.ok("GET", "/requests")["requests"]
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
    login = next(e for e in log if e["path"] == "/v3/auth/tokens")
    assert login["body"]["auth"]["identity"]["methods"] == ["password"]
    assert login["body"]["auth"]["identity"]["password"] == "******"     # the whole password method
    change = next(e for e in log if e["path"].endswith("/changeos"))
    assert change["body"]["os-change"]["adminpass"] == "******" and change["status"] == 200
    assert not any(e["path"].startswith("/_ecsd") for e in log)
    last = log[-1]["seq"]
    client.get("/v1/nope")
    newer = op.ok("GET", "/requests", params={"since": last})["requests"]
    assert [(e["path"], e["status"]) for e in newer] == [("/v1/nope", 404)]
    assert_error(op.call("GET", "/requests", params={"since": "x"}), 400, "Ecs.0005")
    assert op.call("DELETE", "/requests").status_code == 204
    assert op.ok("GET", "/requests") == {"requests": []}


def test_power_off_makes_the_server_shutoff(settings, creds):
    settings.power_sync_interval = 0.1
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        op = Operator(client, settings)
        (sid,) = api.create_servers()
        assert op.call("POST", f"/servers/{sid}/power-off").status_code == 202
        deadline = time.monotonic() + 10
        while api.server(sid)["status"] != "SHUTOFF":
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_the_operator_token_command_prints_the_token_of_credentials_json(tmp_path):
    from click.testing import CliRunner

    from ecsd.app import prepare_store, write_credentials
    from ecsd.cli import main
    from ecsd.config import Settings

    settings = Settings(data_dir=str(tmp_path / "d"))
    store, creds = prepare_store(settings)
    store.close()
    path = write_credentials(settings, creds)
    import json

    with open(path) as fh:
        written = json.load(fh)["operator_token"]
    r = CliRunner().invoke(main, ["operator-token", "--data-dir", settings.data_dir])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == written and written.startswith("ecsd-op-")
    r = CliRunner().invoke(main, ["operator-token", "--data-dir", str(tmp_path / "empty")])
    assert r.exit_code != 0 and "start `ecsd serve` once first" in r.output


def test_a_restore_of_an_unknown_snapshot_disturbs_no_job(op, api):
    (sid,) = api.create_servers(name="busy")
    op.ok("POST", "/holds", 201, json={"operation": "changeOS", "step": "start"})
    job_id = change_os(api, sid)
    wait_held(op)
    assert_error(op.call("POST", "/snapshots/nothing-here/restore"), 404, "Common.0404")
    assert len(op.ok("GET", "/holds")["held_jobs"]) == 1          # still held, not cancelled
    op.ok("DELETE", "/holds")
    assert api.wait_job(job_id)["status"] == "SUCCESS"
