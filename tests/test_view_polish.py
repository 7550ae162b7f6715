"""Server views: ``os:scheduler_hints`` in the v1 views (show, list) of a server in a group; ``tags`` in the
Nova views only from microversion 2.26; the Nova list's query parameters in GET /openapi.json."""

from __future__ import annotations

from typing import Any

import pytest

from ecsd.app import create_app
from ecsd.config import Settings
from ecsd.http import openapi
from tests import support as s
from tests.support import Api

BOTH_DATABASES = True

GROUPS = "/v1/{pid}/cloudservers/os-server-groups"
LIST = "/v1/{pid}/cloudservers/detail"


def sdk(raw: dict, response_type: str) -> Any:
    """The Huawei SDK's model of ``raw`` (every field of the views is checked in test_sdk_models_servers.py)."""
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkecs.v2 import EcsClient

    return EcsClient()._deserialize(raw, response_type)


def create_in_group(api: Api, group_id: str) -> str:
    body = {"server": {"name": "member", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"},
                       "os:scheduler_hints": {"group": group_id}}}
    r = api.post("/v1/{pid}/cloudservers", body)
    assert r.status_code == 200, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    return job["entities"]["sub_jobs"][0]["entities"]["server_id"]


def listed(api: Api, sid: str) -> dict:
    return next(x for x in api.get(LIST + "?limit=1000").json()["servers"] if x["id"] == sid)


# --- os:scheduler_hints -----------------------------------------------------------------------------------

def test_v1_views_show_the_group_of_a_server_created_with_a_group_hint(api):
    r = api.post(GROUPS, {"server_group": {"name": "grp", "policies": ["anti-affinity"]}})
    assert r.status_code == 200, r.text
    group = r.json()["server_group"]["id"]
    member = create_in_group(api, group)
    loner = api.create_servers(name="loner")[0]

    assert api.server(member)["os:scheduler_hints"] == {"group": [group]}
    assert api.server(loner)["os:scheduler_hints"] == {}
    assert listed(api, member)["os:scheduler_hints"] == {"group": [group]}
    assert listed(api, loner)["os:scheduler_hints"] == {}
    filtered = api.get(LIST + "?name=member").json()["servers"]          # a filtered page reads them too
    assert [x["os:scheduler_hints"] for x in filtered] == [{"group": [group]}]
    body = api.get(LIST + "?limit=1000").json()
    model = sdk(body, "ListServersDetailsResponse")
    by_id = {x.id: x for x in model.servers}
    assert by_id[member].osscheduler_hints.group == [group]
    show = sdk(api.get(f"/v1/{{pid}}/cloudservers/{member}").json(), "ShowServerResponse")
    assert show.server.osscheduler_hints.group == [group]
    # the Nova view has no os:scheduler_hints
    assert "os:scheduler_hints" not in api.get(f"/v2.1/{{pid}}/servers/{member}").json()["server"]

    # leaving the group shows on the next page read (the list keeps encoded views while their inputs hold)
    r = api.post(f"{GROUPS}/{group}/action", {"remove_member": {"instance_uuid": member}})
    assert r.status_code == 200, r.text
    assert listed(api, member)["os:scheduler_hints"] == {}
    assert api.server(member)["os:scheduler_hints"] == {}
    r = api.post(f"{GROUPS}/{group}/action", {"add_member": {"instance_uuid": loner}})
    assert r.status_code == 200, r.text
    assert listed(api, loner)["os:scheduler_hints"] == {"group": [group]}


# --- Nova tags from 2.26 -----------------------------------------------------------------------------------

MICROVERSIONS = [
    ({}, False),
    ({"X-OpenStack-Nova-API-Version": "2.1"}, False),
    ({"X-OpenStack-Nova-API-Version": "2.25"}, False),
    ({"X-OpenStack-Nova-API-Version": "2.26"}, True),
    ({"OpenStack-API-Version": "compute 2.26"}, True),
    ({"OpenStack-API-Version": "compute latest"}, True),
]


def test_nova_views_show_tags_from_microversion_2_26(api):
    sid = api.create_servers(name="tagged")[0]
    r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/tags/action",
                 {"action": "create", "tags": [{"key": "env", "value": "prod"}]})
    assert r.status_code == 204, r.text
    for headers, shown in MICROVERSIONS:
        views = [api.get(f"/v2.1/{{pid}}/servers/{sid}", headers=headers).json()["server"],
                 next(x for x in api.get("/v2.1/{pid}/servers/detail", headers=headers).json()["servers"]
                      if x["id"] == sid)]
        for view in views:
            assert ("tags" in view) is shown, headers
            assert view.get("tags", ["env=prod"]) == ["env=prod"]
    assert api.server(sid)["tags"] == ["env=prod"]          # the v1 view has no microversion


# --- the Nova list's query parameters in /openapi.json -------------------------------------------------------

@pytest.mark.sqlite_only
def test_the_nova_lists_document_every_query_parameter_they_read():
    doc = openapi.build(create_app(Settings(data_dir="/nonexistent-not-started")).routes)
    for path in ("/v2.1/{project_id}/servers", "/v2.1/{project_id}/servers/detail"):
        names = {p["name"] for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        assert names >= {"limit", "marker", "name", "status", "flavor", "reservation_id", "ip", "image",
                         "changes-since", "tags", "tags-any", "not-tags", "not-tags-any"}, path
