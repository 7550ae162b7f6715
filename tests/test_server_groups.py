"""Server groups (v1 and Nova), membership through a create's os:scheduler_hints, and auto recovery.

Black-box through HTTP on both databases; the v1 answers are read through the official Huawei SDK's
models (:func:`sdk`), which must find every field they declare with its declared type.
"""

from __future__ import annotations

from typing import Any

import pytest

from ecsd.domain import server_groups as sg
from tests import support as s
from tests.support import Api, assert_error

BOTH_DATABASES = True

V1 = "/v1/{pid}/cloudservers/os-server-groups"
NOVA = "/v2.1/{pid}/os-server-groups"
UNKNOWN = "0b4e9c1a-7d2f-4e8b-9a6c-3f5d2e1b0c9a"
MV = {"OpenStack-API-Version": "compute 2.13"}


def sdk(raw: dict, response_type: str) -> Any:
    """The SDK's model of ``raw``, after checking it against the model's declarations."""
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkecs.v2 import EcsClient

    from tests.sdk_models import check_model

    model = EcsClient()._deserialize(raw, response_type)
    optional = {"ListServerGroupsPageInfoResult": {"next_marker"}}
    assert check_model(model, raw, optional=optional, top=True) == []
    return model


def new_group(api: Api, name: str = "grp", path: str = V1) -> dict:
    r = api.post(path, {"server_group": {"name": name, "policies": ["anti-affinity"]}})
    assert r.status_code == 200, r.text
    return r.json()["server_group"]


def members(api: Api, group_id: str) -> list[str]:
    r = api.get(f"{V1}/{group_id}")
    assert r.status_code == 200, r.text
    return r.json()["server_group"]["members"]


def action(api: Api, group_id: str, verb: str, server_id: str):
    return api.post(f"{V1}/{group_id}/action", {verb: {"instance_uuid": server_id}})


def v1_create(api: Api, group: Any, count: int = 1):
    body = {"server": {"name": "member", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}, "count": count,
                       "os:scheduler_hints": {"group": group}}}
    return api.post("/v1/{pid}/cloudservers", body)


def created_ids(api: Api, resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    job = api.wait_job(resp.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    return [j["entities"]["server_id"] for j in job["entities"]["sub_jobs"]]


def server_count(api: Api) -> int:
    return api.get("/v1/{pid}/cloudservers/detail").json()["count"]


# --- groups ---------------------------------------------------------------------------------------------

def test_v1_create_show_list_and_delete(api):
    r = api.post(V1, {"server_group": {"name": "web tier", "policies": ["anti-affinity"]}})
    assert r.status_code == 200, r.text
    created = sdk(r.json(), "CreateServerGroupResponse").server_group
    assert (created.name, created.policies, created.members, created.metadata) == (
        "web tier", ["anti-affinity"], [], {})

    shown = sdk(api.get(f"{V1}/{created.id}").json(), "ShowServerGroupResponse").server_group
    assert (shown.id, shown.name) == (created.id, "web tier")

    listed = sdk(api.get(V1).json(), "ListServerGroupsResponse")
    assert [g.id for g in listed.server_groups] == [created.id]
    assert listed.page_info.next_marker is None

    r = api.delete(f"{V1}/{created.id}")
    assert r.status_code == 204 and r.content == b""
    assert_error(api.get(f"{V1}/{created.id}"), 404, "Ecs.0313")
    assert api.get(V1).json()["server_groups"] == []


def test_nova_create_show_list_and_delete(api):
    group = new_group(api, "nova", NOVA)
    assert group == {"id": group["id"], "name": "nova", "policies": ["anti-affinity"], "members": [],
                     "metadata": {}}
    shown = api.get(f"{NOVA}/{group['id']}", headers=MV).json()["server_group"]
    assert shown["project_id"] == api.pid and shown["user_id"] == api.creds["user_id"]
    assert "project_id" not in api.get(f"{NOVA}/{group['id']}").json()["server_group"]
    assert [g["id"] for g in api.get(NOVA, headers=MV).json()["server_groups"]] == [group["id"]]
    # one group, seen by both APIs
    assert api.get(f"{V1}/{group['id']}").json()["server_group"]["name"] == "nova"
    assert api.delete(f"{NOVA}/{group['id']}").status_code == 204
    assert_error(api.get(f"{NOVA}/{group['id']}"), 404, "Ecs.0313")
    assert_error(api.delete(f"{NOVA}/{group['id']}"), 404, "Ecs.0313")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("path", [V1, NOVA])
@pytest.mark.parametrize("group", [
    {"name": "g", "policies": ["affinity"]},
    {"name": "g", "policies": ["soft-anti-affinity"]},
    {"name": "g", "policies": []},
    {"name": "g", "policies": ["anti-affinity", "anti-affinity"]},
    {"name": "g", "policies": "anti-affinity"},
    {"name": "", "policies": ["anti-affinity"]},
    {"name": "x" * 256, "policies": ["anti-affinity"]},
    {"name": " padded", "policies": ["anti-affinity"]},
    {"name": "bell\x07", "policies": ["anti-affinity"]},
    {"name": 5, "policies": ["anti-affinity"]},
    {"policies": ["anti-affinity"]},
    {"name": "g", "policies": ["anti-affinity"], "rules": {}},
])
def test_create_refuses_what_the_reference_does_not_allow(api, path, group):
    assert_error(api.post(path, {"server_group": group}), 400, "Ecs.0005")
    assert api.get(V1).json()["server_groups"] == []


def test_a_name_of_255_characters_is_accepted(api):
    assert new_group(api, "n" * 255)["name"] == "n" * 255


def test_a_project_has_at_most_ten_groups(api):
    ids = [new_group(api, f"g{n}")["id"] for n in range(sg.MAX_GROUPS)]
    assert sg.MAX_GROUPS == api.get("/v2.1/{pid}/os-quota-sets/{pid}").json()["quota_set"]["server_groups"]
    assert_error(api.post(V1, {"server_group": {"name": "one more", "policies": ["anti-affinity"]}}),
                 400, "Ecs.0022")
    assert_error(api.post(NOVA, {"server_group": {"name": "one more", "policies": ["anti-affinity"]}}),
                 400, "Ecs.0022")
    assert api.delete(f"{V1}/{ids[0]}").status_code == 204
    new_group(api, "room again")


@pytest.mark.parametrize("group_id", [UNKNOWN, "not-a-uuid"])
def test_unknown_group_is_404(api, group_id):
    assert_error(api.get(f"{V1}/{group_id}"), 404, "Ecs.0313")
    assert_error(api.delete(f"{V1}/{group_id}"), 404, "Ecs.0313")
    assert_error(api.get(f"{NOVA}/{group_id}"), 404, "Ecs.0313")
    sid = api.create_servers()[0]
    assert_error(action(api, group_id, "add_member", sid), 404, "Ecs.0313")
    assert_error(action(api, group_id, "remove_member", sid), 404, "Ecs.0313")


def test_another_projects_groups_and_servers_are_out_of_reach(api, other_api):
    group = new_group(api)
    theirs = new_group(other_api, "theirs")
    assert other_api.get(V1).json()["server_groups"] == [theirs]
    assert_error(other_api.get(f"{V1}/{group['id']}"), 404, "Ecs.0313")
    assert_error(other_api.delete(f"{NOVA}/{group['id']}"), 404, "Ecs.0313")
    sid = api.create_servers()[0]
    assert_error(action(other_api, theirs["id"], "add_member", sid), 404, "Ecs.0114")
    assert_error(v1_create(other_api, group["id"]), 400, "Ecs.0313")
    assert [g["id"] for g in api.get(V1).json()["server_groups"]] == [group["id"]]


def test_v1_list_pages_with_limit_and_marker(api):
    ids = [new_group(api, f"g{n}")["id"] for n in range(5)]
    first = sdk(api.get(f"{V1}?limit=2").json(), "ListServerGroupsResponse")
    assert [g.id for g in first.server_groups] == ids[:2] and first.page_info.next_marker == ids[1]
    second = api.get(f"{V1}?limit=2&marker={ids[1]}").json()
    assert [g["id"] for g in second["server_groups"]] == ids[2:4]
    last = api.get(f"{V1}?limit=2&marker={ids[3]}").json()
    assert [g["id"] for g in last["server_groups"]] == ids[4:] and last["page_info"] == {}
    assert_error(api.get(f"{V1}?marker={UNKNOWN}"), 400, "Ecs.0005")
    assert_error(api.get(f"{V1}?limit=0"), 400, "Ecs.0005")
    assert_error(api.get(f"{V1}?limit=x"), 400, "Ecs.0005")


def test_nova_list_pages_with_limit_and_offset(api):
    ids = [new_group(api, f"g{n}")["id"] for n in range(4)]
    assert [g["id"] for g in api.get(f"{NOVA}?limit=2&offset=1").json()["server_groups"]] == ids[1:3]
    assert [g["id"] for g in api.get(f"{NOVA}?offset=3").json()["server_groups"]] == ids[3:]
    assert_error(api.get(f"{NOVA}?offset=-1"), 400, "Ecs.0005")


# --- members ------------------------------------------------------------------------------------------------

def test_add_and_remove_a_member(api):
    group = new_group(api)
    a, b = api.create_servers(count=2)
    r = action(api, group["id"], "add_member", a)
    assert r.status_code == 200 and r.content == b""
    assert action(api, group["id"], "add_member", b).status_code == 200
    shown = sdk(api.get(f"{V1}/{group['id']}").json(), "ShowServerGroupResponse").server_group
    assert shown.members == [a, b]
    assert api.get(f"{NOVA}/{group['id']}").json()["server_group"]["members"] == [a, b]

    assert action(api, group["id"], "remove_member", a).status_code == 200
    assert members(api, group["id"]) == [b]


def test_member_refusals(api):
    group, other = new_group(api, "one"), new_group(api, "two")
    a, b = api.create_servers(count=2)
    assert action(api, group["id"], "add_member", a).status_code == 200
    assert_error(action(api, group["id"], "add_member", a), 400, "Ecs.0005")        # already in it
    assert_error(action(api, other["id"], "add_member", a), 400, "Ecs.0005")        # in another group
    assert_error(action(api, other["id"], "remove_member", a), 400, "Ecs.0005")     # not in this one
    assert_error(action(api, group["id"], "remove_member", b), 400, "Ecs.0005")
    assert_error(action(api, group["id"], "add_member", UNKNOWN), 404, "Ecs.0114")
    assert_error(action(api, group["id"], "remove_member", UNKNOWN), 404, "Ecs.0114")
    for body in ({}, {"add_member": {"instance_uuid": b}, "remove_member": {"instance_uuid": a}},
                 {"add_member": {}}, {"add_member": {"instance_uuid": 5}}, {"join": {"instance_uuid": b}}):
        assert_error(api.post(f"{V1}/{group['id']}/action", body), 400, "Ecs.0005")
    assert members(api, group["id"]) == [a] and members(api, other["id"]) == []


def test_a_locked_server_cannot_join_or_leave(api):
    group = new_group(api)
    a, b = api.create_servers(count=2)
    assert action(api, group["id"], "add_member", a).status_code == 200
    for sid in (a, b):
        assert api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {"lock": None}).status_code == 202
    assert_error(action(api, group["id"], "remove_member", a), 400, "Ecs.0605")
    assert_error(action(api, group["id"], "add_member", b), 400, "Ecs.0605")
    assert members(api, group["id"]) == [a]


def test_a_group_holds_at_most_sixteen_members(api):
    """Anti-affinity: one simulated host per member, as many as the members quota allows (16)."""
    limit = api.get("/v2.1/{pid}/os-quota-sets/{pid}").json()["quota_set"]["server_group_members"]
    assert limit == sg.MAX_MEMBERS == 16
    group = new_group(api)
    ids = created_ids(api, v1_create(api, group["id"], count=limit - 1))
    before = server_count(api)
    assert_error(v1_create(api, group["id"], count=2), 400, "Ecs.0022")     # all or nothing
    assert server_count(api) == before
    last = created_ids(api, v1_create(api, group["id"]))
    assert sorted(members(api, group["id"])) == sorted(ids + last)
    extra = api.create_servers()[0]
    assert_error(action(api, group["id"], "add_member", extra), 400, "Ecs.0022")
    assert action(api, group["id"], "remove_member", last[0]).status_code == 200
    assert action(api, group["id"], "add_member", extra).status_code == 200


# --- membership through the create ------------------------------------------------------------------------

def test_v1_create_hint_puts_every_new_server_into_the_group(api, client):
    group = new_group(api)
    ids = created_ids(api, v1_create(api, group["id"], count=2))
    assert sorted(members(api, group["id"])) == sorted(ids)
    hints = client.app.state.services.store.run_sync(lambda conn: sg.scheduler_hints(conn, [*ids, UNKNOWN]))
    assert hints == {ids[0]: {"group": [group["id"]]}, ids[1]: {"group": [group["id"]]}, UNKNOWN: {}}


def test_v1_create_hint_refusals_create_nothing(api):
    before = server_count(api)
    assert_error(v1_create(api, UNKNOWN), 400, "Ecs.0313")
    assert_error(v1_create(api, "not-a-uuid"), 400, "Ecs.0005")
    assert_error(v1_create(api, 7), 400, "Ecs.0005")
    assert server_count(api) == before


def test_v1_create_without_a_group_hint_joins_nothing(api):
    group = new_group(api)
    created_ids(api, v1_create(api, None))
    assert members(api, group["id"]) == []


@pytest.mark.parametrize("key", ["os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"])
def test_nova_create_hint_puts_the_server_into_the_group(api, key):
    group = new_group(api, "nova", NOVA)
    body = {"server": {"name": "nova", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1",
                       "networks": [{"uuid": s.SUBNET}]}, key: {"group": group["id"]}}
    r = api.post("/v2.1/{pid}/servers", body)
    assert r.status_code == 202, r.text
    assert members(api, group["id"]) == [r.json()["server"]["id"]]


def test_nova_create_hint_naming_an_unknown_group_is_refused(api):
    body = {"server": {"name": "nova", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1",
                       "networks": [{"uuid": s.SUBNET}]}, "os:scheduler_hints": {"group": UNKNOWN}}
    assert_error(api.post("/v2.1/{pid}/servers", body), 400, "Ecs.0313")


def test_a_deleted_server_leaves_its_group(api):
    group = new_group(api)
    a, b = created_ids(api, v1_create(api, group["id"], count=2))
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": a}]})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert members(api, group["id"]) == [b]
    # its place is free again
    assert action(api, group["id"], "remove_member", b).status_code == 200
    assert members(api, group["id"]) == []


def test_deleting_a_group_lets_its_members_go(api):
    group, other = new_group(api, "one"), new_group(api, "two")
    a = created_ids(api, v1_create(api, group["id"]))[0]
    assert api.delete(f"{V1}/{group['id']}").status_code == 204
    assert action(api, other["id"], "add_member", a).status_code == 200
    assert members(api, other["id"]) == [a]


# --- automatic recovery ---------------------------------------------------------------------------------------

def test_auto_recovery_is_stored_per_server(api):
    a, b = api.create_servers(count=2)
    path = "/v1/{pid}/cloudservers/%s/autorecovery"
    assert api.get(path % a).json() == {"support_auto_recovery": "false"}
    r = api.call("PUT", path % a, {"support_auto_recovery": "true"})
    assert r.status_code == 204 and r.content == b""
    assert api.get(path % a).json() == {"support_auto_recovery": "true"}
    assert api.get(path % b).json() == {"support_auto_recovery": "false"}
    assert api.call("PUT", path % a, {"support_auto_recovery": "false"}).status_code == 204
    assert api.get(path % a).json() == {"support_auto_recovery": "false"}


def test_auto_recovery_refusals(api):
    sid = api.create_servers()[0]
    path = "/v1/{pid}/cloudservers/%s/autorecovery"
    for body in ({"support_auto_recovery": True}, {"support_auto_recovery": "yes"}, {}):
        assert_error(api.call("PUT", path % sid, body), 400, "Ecs.0005")
    assert_error(api.get(path % UNKNOWN), 404, "Ecs.0114")
    assert_error(api.call("PUT", path % UNKNOWN, {"support_auto_recovery": "true"}), 404, "Ecs.0114")
    assert api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {"lock": None}).status_code == 202
    assert_error(api.call("PUT", path % sid, {"support_auto_recovery": "true"}), 400, "Ecs.0605")
    assert api.get(path % sid).json() == {"support_auto_recovery": "false"}


def test_limits_count_the_projects_groups(api, other_api):
    def used(a: Api) -> int:
        return a.get("/v1/{pid}/cloudservers/limits").json()["absolute"]["totalServerGroupsUsed"]

    assert used(api) == 0
    group = new_group(api, "counted", V1)
    new_group(api, "counted-too", V1)
    assert used(api) == 2 and used(other_api) == 0
    assert api.delete(f"{V1}/{group['id']}").status_code == 204
    assert used(api) == 1
