"""Server metadata: the v1 update and the native (Nova) metadata API."""

from __future__ import annotations

import pytest

from ecsd.domain.metadata import SYSTEM_KEYS
from tests.support import assert_error

BOTH_DATABASES = True

V1 = "/v1/{pid}/cloudservers/{sid}/metadata"
NOVA = "/v2.1/{pid}/servers/{sid}/metadata"
ACTION = "/v1/{pid}/cloudservers/action"


@pytest.fixture
def server(api) -> str:
    return api.create_servers()[0]


def _user(meta: dict) -> dict:
    """The user's pairs of a server's metadata (without the keys the service keeps)."""
    return {k: v for k, v in meta.items() if k not in SYSTEM_KEYS}


def test_v1_update_merges_and_shows_in_the_server(api, server):
    r = api.post(V1.replace("{sid}", server), {"metadata": {"owner": "team-a", "env": "dev"}})
    assert r.status_code == 200, r.text
    assert _user(r.json()["metadata"]) == {"owner": "team-a", "env": "dev"}
    r = api.post(V1.replace("{sid}", server), {"metadata": {"env": "prod", "tier": "web"}})
    assert _user(r.json()["metadata"]) == {"owner": "team-a", "env": "prod", "tier": "web"}
    shown = api.server(server)["metadata"]
    assert _user(shown) == {"owner": "team-a", "env": "prod", "tier": "web"}
    assert shown["image_name"] and shown["os_type"]          # the service's keys stay
    # an empty object changes nothing
    assert api.post(V1.replace("{sid}", server), {"metadata": {}}).json()["metadata"] == shown


def test_nova_metadata_api(api, server):
    base = NOVA.replace("{sid}", server)
    assert api.post(base, {"metadata": {"a": "1", "b": "2"}}).status_code == 200
    got = api.get(base)
    assert got.status_code == 200 and _user(got.json()["metadata"]) == {"a": "1", "b": "2"}
    assert api.get(base + "/a").json() == {"meta": {"a": "1"}}
    r = api.call("PUT", base + "/c", {"meta": {"c": "3"}})
    assert r.status_code == 200 and r.json() == {"meta": {"c": "3"}}
    r = api.call("PUT", base, {"metadata": {"only": "this"}})       # replaces the user's pairs
    assert r.status_code == 200 and _user(r.json()["metadata"]) == {"only": "this"}
    assert "image_name" in r.json()["metadata"]
    assert api.delete(base + "/only").status_code == 204
    assert _user(api.get(base).json()["metadata"]) == {}
    assert_error(api.get(base + "/only"), 404, "Common.0404")
    assert_error(api.delete(base + "/only"), 404, "Common.0404")


@pytest.mark.parametrize("body", [
    {"metadata": {"bad key": "v"}}, {"metadata": {"k" * 256: "v"}}, {"metadata": {"k": "v" * 256}},
    {"metadata": {"k": 5}}, {"metadata": ["k"]}, {"meta": {"k": "v"}}, {"metadata": {"k": "v"}, "x": 1},
    {"metadata": {"image_name": "mine"}}, {"metadata": {"metering.image_id": "x"}},
])
def test_bad_metadata_is_refused(api, server, body):
    assert_error(api.post(V1.replace("{sid}", server), body), 400, "Ecs.0005")


def test_service_keys_sent_back_unchanged_are_a_no_op(api, server):
    """Read-merge-write (Ansible's server_metadata module): everything read is sent back, the service's
    keys with the values they have; only the user's pairs change. A changed service key stays refused."""
    for base in (V1.replace("{sid}", server), NOVA.replace("{sid}", server)):
        read = api.get(NOVA.replace("{sid}", server)).json()["metadata"]
        assert read["image_name"] and read["vpc_id"] and read["charging_mode"]
        r = api.post(base, {"metadata": {**read, "owner": "ansible"}})
        assert r.status_code == 200, r.text
        assert r.json()["metadata"] == {**read, "owner": "ansible"}
    base = NOVA.replace("{sid}", server)
    read = api.get(base).json()["metadata"]
    r = api.call("PUT", base, {"metadata": {**read, "only": "this"}})          # replace, echoing service keys
    assert r.status_code == 200, r.text
    assert _user(r.json()["metadata"]) == {"owner": "ansible", "only": "this"}
    assert r.json()["metadata"]["image_name"] == read["image_name"]
    r = api.call("PUT", base + "/os_type", {"meta": {"os_type": read["os_type"]}})   # one key, unchanged
    assert r.status_code == 200, r.text
    assert_error(api.post(base, {"metadata": {**read, "image_name": "mine"}}), 400, "Ecs.0005")
    assert_error(api.call("PUT", base, {"metadata": {**read, "vpc_id": "other"}}), 400, "Ecs.0005")
    assert_error(api.call("PUT", base + "/os_type", {"meta": {"os_type": "Windows"}}), 400, "Ecs.0005")
    assert_error(api.post(base, {"metadata": {"BYOL": "true"}}), 400, "Ecs.0005")    # one it does not have
    assert api.get(base).json()["metadata"] == {**read, "only": "this"}


def test_service_keys_cannot_be_deleted_and_the_key_must_match_the_path(api, server):
    base = NOVA.replace("{sid}", server)
    assert_error(api.delete(base + "/os_type"), 400, "Ecs.0005")
    assert_error(api.call("PUT", base + "/a", {"meta": {"b": "1"}}), 400, "Ecs.0005")
    assert_error(api.call("PUT", base + "/a", {"meta": {"a": "1", "b": "2"}}), 400, "Ecs.0005")
    assert_error(api.post(base, None), 400, "Common.0002")


def test_metadata_needs_a_server_of_the_project_at_rest(api, other_api, server):
    assert_error(api.post(V1.replace("{sid}", "0" * 8 + "-0000-4000-8000-" + "0" * 12), {"metadata": {"a": "1"}}),
                 404, "Ecs.0114")
    assert_error(other_api.post(V1.replace("{sid}", server), {"metadata": {"a": "1"}}), 404, "Ecs.0114")
    r = api.post("/v2.1/{pid}/servers/" + server + "/action", {"lock": None})
    assert r.status_code == 202, r.text
    assert_error(api.post(V1.replace("{sid}", server), {"metadata": {"a": "1"}}), 400, "Ecs.0605")
    assert api.post("/v2.1/{pid}/servers/" + server + "/action", {"unlock": None}).status_code == 202
    api.stop(server)                                   # SHUTOFF: allowed
    assert api.post(V1.replace("{sid}", server), {"metadata": {"a": "1"}}).status_code == 200


def test_metadata_is_refused_while_an_operation_runs(slow_api):
    (server,) = slow_api.create_servers()
    slow_api.client.app.state.services.driver.hold()
    try:
        r = slow_api.post(ACTION, {"os-stop": {"servers": [{"id": server}]}})
        assert r.status_code == 200, r.text
        assert_error(slow_api.post(V1.replace("{sid}", server), {"metadata": {"a": "1"}}), 400, "Ecs.0100")
    finally:
        slow_api.client.app.state.services.driver.release()
    assert slow_api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
