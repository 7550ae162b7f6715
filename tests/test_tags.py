"""Server tags: the v1 batch API, project tags, querying servers by tag, the Nova (2.26) tag API, the list
filters and the server views."""

from __future__ import annotations

import warnings

import pytest

from tests.support import assert_error, sql

BOTH_DATABASES = True

ACTION = "/v1/{pid}/cloudservers/{sid}/tags/action"
V1_TAGS = "/v1/{pid}/cloudservers/{sid}/tags"
PROJECT_TAGS = "/v1/{pid}/cloudservers/tags"
BY_TAG = "/v1/{pid}/cloudservers/resource_instances/action"
NOVA = "/v2.1/{pid}/servers/{sid}/tags"
MV = {"X-OpenStack-Nova-API-Version": "2.26"}
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def server(api) -> str:
    return api.create_servers()[0]


def _add(api, sid: str, *pairs: tuple[str, str]):
    return api.post(ACTION.replace("{sid}", sid),
                    {"action": "create", "tags": [{"key": k, "value": v} for k, v in pairs]})


def _remove(api, sid: str, *tags: dict):
    return api.post(ACTION.replace("{sid}", sid), {"action": "delete", "tags": list(tags)})


def _tags(api, sid: str) -> list[dict]:
    r = api.get(V1_TAGS.replace("{sid}", sid))
    assert r.status_code == 200, r.text
    return r.json()["tags"]


def _nova(api, method: str, sid: str, tag: str | None = None, body=None, headers: dict | None = None):
    path = NOVA.replace("{sid}", sid) + (f"/{tag}" if tag is not None else "")
    return api.call(method, path, body, headers=MV if headers is None else headers)


def _by_tag(api, body: dict, path: str = BY_TAG):
    r = api.post(path, body)
    assert r.status_code == 200, r.text
    return r.json()


# --- v1: batch create, delete, show ----------------------------------------------------------------------

def test_batch_create_adds_updates_and_is_idempotent(api, server):
    r = _add(api, server, ("env", "prod"), ("team", "a-1"))
    assert r.status_code == 204, r.text
    assert _tags(api, server) == [{"key": "env", "value": "prod"}, {"key": "team", "value": "a-1"}]
    assert _add(api, server, ("env", "prod")).status_code == 204            # the same pair again: no change
    assert _add(api, server, ("env", "dev"), ("empty", "")).status_code == 204   # same key: the new value
    assert _tags(api, server) == [{"key": "empty", "value": ""}, {"key": "env", "value": "dev"},
                                  {"key": "team", "value": "a-1"}]


def test_batch_delete_by_key_or_by_pair_and_absent_tags_succeed(api, server):
    _add(api, server, ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"))
    assert _remove(api, server, {"key": "a"}).status_code == 204                 # any value
    assert _remove(api, server, {"key": "b", "value": "other"}).status_code == 204  # value differs: kept
    assert _remove(api, server, {"key": "c", "value": "3"}, {"key": "d", "value": ""}).status_code == 204
    assert _remove(api, server, {"key": "nothing", "value": "x"}).status_code == 204
    assert _tags(api, server) == [{"key": "b", "value": "2"}]


def test_ten_tags_at_most(api, server):
    assert _add(api, server, *[(f"k{i}", "v") for i in range(10)]).status_code == 204
    assert _add(api, server, ("k0", "changed")).status_code == 204               # an update is not an 11th
    assert_error(_add(api, server, ("k10", "v")), 400, "Ecs.0905")
    assert len(_tags(api, server)) == 10
    _remove(api, server, {"key": "k0"})
    assert _add(api, server, ("k10", "v")).status_code == 204
    other = api.create_servers()[0]
    assert_error(_add(api, other, *[(f"k{i}", "v") for i in range(11)]), 400, "Ecs.0905")
    assert _tags(api, other) == []


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("key", "value", "code"), [
    ("", "v", "Ecs.0906"),
    ("k" * 37, "v", "Ecs.0906"),
    ("k", "v" * 44, "Ecs.0906"),
    ("a.b", "v", "Ecs.0907"),
    ("a b", "v", "Ecs.0907"),
    ("ключ", "v", "Ecs.0907"),
    ("k", "a=b", "Ecs.0907"),
    ("k", "a b", "Ecs.0907"),
])
def test_create_refuses_keys_and_values_outside_the_rules(api, server, key, value, code):
    assert_error(_add(api, server, (key, value)), 400, code)
    assert _tags(api, server) == []


def test_create_accepts_the_longest_key_and_value_and_the_allowed_characters(api, server):
    assert _add(api, server, ("K" * 36, "v" * 43), ("a_B-9", "x.Y_z-1")).status_code == 204
    assert {t["key"] for t in _tags(api, server)} == {"K" * 36, "a_B-9"}


def test_a_key_twice_in_one_request_is_ecs_0908(api, server):
    assert_error(_add(api, server, ("a", "1"), ("a", "2")), 400, "Ecs.0908")
    assert_error(_remove(api, server, {"key": "a"}, {"key": "a", "value": "1"}), 400, "Ecs.0908")


def test_delete_checks_its_lengths(api, server):
    assert_error(_remove(api, server, {"key": ""}), 400, "Ecs.0906")
    assert_error(_remove(api, server, {"key": "k" * 128}), 400, "Ecs.0906")
    assert_error(_remove(api, server, {"key": "k", "value": "v" * 256}), 400, "Ecs.0906")
    assert _remove(api, server, {"key": "k" * 127, "value": "v" * 255}).status_code == 204


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [
    {"action": "create"},
    {"tags": []},
    {"action": "Create", "tags": []},
    {"action": "update", "tags": []},
    {"action": "create", "tags": [{"key": "a"}]},                 # a create needs its value
    {"action": "create", "tags": [{"key": "a", "value": 1}]},
    {"action": "create", "tags": [{"key": "a", "value": "1", "extra": "x"}]},
    {"action": "create", "tags": {"key": "a", "value": "1"}},
    {"action": "create", "tags": [], "more": 1},
    ["create"],
])
def test_malformed_action_bodies_are_ecs_0005(api, server, body):
    assert_error(api.post(ACTION.replace("{sid}", server), body), 400, "Ecs.0005")


def test_unknown_or_foreign_server_is_ecs_0114(api, other_api, server):
    _add(api, server, ("a", "1"))
    for sid in (UNKNOWN, "not-a-uuid"):
        assert_error(_add(api, sid, ("a", "1")), 404, "Ecs.0114")
        assert_error(_remove(api, sid, {"key": "a"}), 404, "Ecs.0114")
        assert_error(api.get(V1_TAGS.replace("{sid}", sid)), 404, "Ecs.0114")
    assert_error(_add(other_api, server, ("b", "2")), 404, "Ecs.0114")
    assert_error(_remove(other_api, server, {"key": "a"}), 404, "Ecs.0114")
    assert_error(other_api.get(V1_TAGS.replace("{sid}", server)), 404, "Ecs.0114")
    assert_error(_nova(other_api, "GET", server), 404, "Ecs.0114")
    assert other_api.get(PROJECT_TAGS).json() == {"tags": []}
    assert _tags(api, server) == [{"key": "a", "value": "1"}]


def test_a_locked_server_refuses_every_tag_change(api, server):
    _add(api, server, ("a", "1"))
    assert api.post("/v2.1/{pid}/servers/" + server + "/action", {"lock": None}).status_code == 202
    assert_error(_add(api, server, ("b", "2")), 400, "Ecs.0605")
    assert_error(_remove(api, server, {"key": "a"}), 400, "Ecs.0605")
    assert_error(_nova(api, "PUT", server, body={"tags": ["x"]}), 400, "Ecs.0605")
    assert_error(_nova(api, "PUT", server, "x"), 400, "Ecs.0605")
    assert_error(_nova(api, "DELETE", server), 400, "Ecs.0605")
    assert_error(_nova(api, "DELETE", server, "a=1"), 400, "Ecs.0605")
    assert _tags(api, server) == [{"key": "a", "value": "1"}]              # reads still answer
    assert api.post("/v2.1/{pid}/servers/" + server + "/action", {"unlock": None}).status_code == 202
    api.stop(server)                                                       # SHUTOFF: allowed
    assert _add(api, server, ("b", "2")).status_code == 204


def test_tags_are_refused_while_an_operation_runs(slow_api):
    (server,) = slow_api.create_servers()
    driver = slow_api.client.app.state.services.driver
    driver.hold()
    try:
        r = slow_api.post("/v1/{pid}/cloudservers/action", {"os-stop": {"servers": [{"id": server}]}})
        assert r.status_code == 200, r.text
        assert_error(_add(slow_api, server, ("a", "1")), 400, "Ecs.0100")
        assert_error(_nova(slow_api, "PUT", server, "a"), 400, "Ecs.0100")
    finally:
        driver.release()
    assert slow_api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert _add(slow_api, server, ("a", "1")).status_code == 204


def test_the_discarded_paths_serve_the_same(api, server):
    r = api.post(f"/v1/{{pid}}/servers/{server}/tags/action",
                 {"action": "create", "tags": [{"key": "old", "value": "path"}]})
    assert r.status_code == 204, r.text
    assert api.get(f"/v1/{{pid}}/servers/{server}/tags").json() == {"tags": [{"key": "old", "value": "path"}]}
    assert api.get("/v1/{pid}/servers/tags").json() == {"tags": [{"key": "old", "values": ["path"]}]}
    r = api.post(f"/v1/{{pid}}/servers/{server}/tags/action", {"action": "delete", "tags": [{"key": "old"}]})
    assert r.status_code == 204
    assert _tags(api, server) == []


# --- project tags and querying by tag --------------------------------------------------------------------

def test_project_tags_gather_keys_and_values_of_live_servers(api, other_api):
    a, b, c = api.create_servers(count=3)
    _add(api, a, ("env", "prod"), ("team", "x"))
    _add(api, b, ("env", "dev"))
    _add(api, c, ("env", "prod"), ("bare", ""))
    assert api.get(PROJECT_TAGS).json() == {"tags": [
        {"key": "bare", "values": [""]}, {"key": "env", "values": ["dev", "prod"]}, {"key": "team", "values": ["x"]}]}
    assert other_api.get(PROJECT_TAGS).json() == {"tags": []}


def test_tags_go_with_their_server_when_it_is_deleted(api):
    doomed, kept = api.create_servers(count=2)
    _add(api, doomed, ("gone", "soon"))
    _add(api, kept, ("stays", "here"))
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": doomed}], "delete_volume": True})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.get(PROJECT_TAGS).json() == {"tags": [{"key": "stays", "values": ["here"]}]}
    assert_error(api.get(V1_TAGS.replace("{sid}", doomed)), 404, "Ecs.0114")
    assert _by_tag(api, {"action": "count", "tags": [{"key": "gone"}]}) == {"total_count": 0}
    assert api.get("/v1/{pid}/cloudservers/detail?tags=gone=soon").json()["count"] == 0
    # the deleted server's rows are gone too, not only hidden
    gone = sql(api.client, "SELECT count(*) FROM server_tags WHERE server_id = :sid", sid=doomed).scalar_one()
    assert gone == 0
    # a server row that is removed outright takes its tag rows with it (ON DELETE CASCADE)
    sql(api.client, "DELETE FROM volumes WHERE server_id = :sid", sid=kept)
    sql(api.client, "DELETE FROM servers WHERE id = :sid", sid=kept)
    left = sql(api.client, "SELECT count(*) FROM server_tags WHERE server_id = :sid", sid=kept).scalar_one()
    assert left == 0


def test_query_by_tag_filters_counts_and_pages(api):
    web1, web2, db, bare = api.create_servers(count=4, name="node")     # newest first in answers
    _add(api, web1, ("role", "web"), ("env", "prod"))
    _add(api, web2, ("role", "web"), ("env", "dev"))
    _add(api, db, ("role", "db"), ("env", "prod"))

    def ids(body):
        return [r["resource_id"] for r in _by_tag(api, {"action": "filter", **body})["resources"]]

    newest = [s["id"] for s in api.get("/v1/{pid}/cloudservers/detail").json()["servers"]]
    order = [s for s in newest if s in (web1, web2, db, bare)]

    def ordered(*sids):
        return [s for s in order if s in sids]

    assert ids({}) == order
    assert ids({"tags": [{"key": "role", "values": ["web"]}]}) == ordered(web1, web2)
    assert ids({"tags": [{"key": "role", "values": ["web", "db"]}, {"key": "env", "values": ["prod"]}]}) \
        == ordered(web1, db)
    assert ids({"tags": [{"key": "env"}]}) == ordered(web1, web2, db)                # any value
    assert ids({"not_tags": [{"key": "env", "values": ["prod"]}]}) == ordered(web2, bare)
    assert ids({"not_tags": [{"key": "role", "values": ["db"]}, {"key": "env", "values": ["dev"]}]}) \
        == ordered(web1, bare)                                                       # none of them
    assert ids({"not_tags_any": [{"key": "role"}]}) == ordered(bare)
    assert ids({"tags_any": [{"key": "role", "values": ["db"]}, {"key": "env", "values": ["dev"]}]}) \
        == ordered(web2, db)
    assert ids({"tags": [{"key": "role", "values": ["nothing"]}]}) == []
    # paging: limit and offset are strings (or numbers); total_count counts every match
    page = _by_tag(api, {"action": "filter", "limit": "2", "offset": "1", "tags": [{"key": "env"}]})
    assert page["total_count"] == 3
    assert [r["resource_id"] for r in page["resources"]] == ordered(web1, web2, db)[1:3]
    assert ids({"limit": 1, "offset": 0}) == order[:1]
    r = next(r for r in _by_tag(api, {"action": "filter"})["resources"] if r["resource_id"] == web1)
    assert r == {"resource_id": web1, "resource_name": api.server(web1)["name"], "resource_detail": None,
                 "tags": [{"key": "env", "value": "prod"}, {"key": "role", "value": "web"}]}
    # count: only total_count, limit and offset not read
    assert _by_tag(api, {"action": "count", "tags": [{"key": "role", "values": ["web"]}], "limit": "1"}) \
        == {"total_count": 2}
    # the reference's path answers the same
    assert _by_tag(api, {"action": "count"}, path="/v1/{pid}/servers/resource_instances/action") \
        == {"total_count": 4}


def test_query_by_tag_matches_the_server_name(api):
    (a,) = api.create_servers(name="alpha-web")
    (b,) = api.create_servers(name="beta-db")
    body = {"action": "filter", "matches": [{"key": "resource_name", "value": "WEB"}]}
    assert [r["resource_id"] for r in _by_tag(api, body)["resources"]] == [a]
    body["matches"][0]["value"] = "a-"
    assert {r["resource_id"] for r in _by_tag(api, body)["resources"]} == {a, b}
    body["matches"][0]["value"] = "%"
    assert _by_tag(api, body)["resources"] == []                      # a literal character, not a wildcard


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [
    {},
    {"action": "list"},
    {"action": "filter", "limit": "-1"},
    {"action": "filter", "limit": "1001"},
    {"action": "filter", "limit": "ten"},
    {"action": "filter", "offset": "-5"},
    {"action": "filter", "limit": True},
    {"action": "filter", "tags": [{"key": ""}]},
    {"action": "filter", "tags": [{"key": "k" * 128}]},
    {"action": "filter", "tags": [{"key": "a"}, {"key": "a", "values": ["1"]}]},
    {"action": "filter", "tags": [{"key": "a", "values": ["1", "1"]}]},
    {"action": "filter", "tags": [{"key": "a", "values": ["v" * 256]}]},
    {"action": "filter", "not_tags": ["a"]},
    {"action": "filter", "matches": [{"key": "name", "value": "x"}]},
    {"action": "filter", "matches": [{"key": "resource_name", "value": ""}]},
    {"action": "filter", "matches": [{"key": "resource_name", "value": "a"}, {"key": "resource_name", "value": "b"}]},
    {"action": "filter", "unknown": 1},
])
def test_query_by_tag_refuses_malformed_bodies(api, body):
    assert_error(api.post(BY_TAG, body), 400, "Ecs.0005")


# --- Nova -----------------------------------------------------------------------------------------------

def test_nova_tags_replace_add_show_and_delete(api, server):
    r = _nova(api, "PUT", server, body={"tags": ["qux", "baz", "foo"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"tags": ["baz", "foo", "qux"]}
    assert _nova(api, "GET", server).json() == {"tags": ["baz", "foo", "qux"]}
    r = _nova(api, "PUT", server, "new")
    assert r.status_code == 201, r.text
    assert r.json() == {"message": "<br /><br />\n\n\n", "code": "201 Created", "title": "Created"}
    assert r.headers["Location"].endswith(f"/servers/{server}/tags/new")
    assert _nova(api, "PUT", server, "new").status_code == 204           # had it already
    assert _nova(api, "GET", server, "new").status_code == 204
    assert_error(_nova(api, "GET", server, "absent"), 404, "Common.0404")
    assert _nova(api, "DELETE", server, "baz").status_code == 204
    assert_error(_nova(api, "DELETE", server, "baz"), 404, "Common.0404")
    assert _nova(api, "GET", server).json() == {"tags": ["foo", "new", "qux"]}
    # Nova tags are keys with an empty value in the v1 API
    assert _tags(api, server) == [{"key": t, "value": ""} for t in ("foo", "new", "qux")]
    # PUT replaces every tag
    assert _nova(api, "PUT", server, body={"tags": ["only"]}).json() == {"tags": ["only"]}
    assert _nova(api, "DELETE", server).status_code == 204
    assert _nova(api, "GET", server).json() == {"tags": []}


def test_nova_shows_v1_tags_as_key_equals_value(api, server):
    _add(api, server, ("env", "prod"), ("bare", ""))
    assert _nova(api, "GET", server).json() == {"tags": ["bare", "env=prod"]}
    assert _nova(api, "GET", server, "env=prod").status_code == 204
    assert _nova(api, "DELETE", server, "env=prod").status_code == 204
    assert _tags(api, server) == [{"key": "bare", "value": ""}]


def test_nova_tags_need_microversion_2_26(api, server):
    for headers in ({}, {"X-OpenStack-Nova-API-Version": "2.25"}, {"OpenStack-API-Version": "compute 2.1"}):
        assert_error(_nova(api, "GET", server, headers=headers), 404, "Common.0404")
        assert_error(_nova(api, "PUT", server, "a", headers=headers), 404, "Common.0404")
    assert _nova(api, "GET", server, headers={"OpenStack-API-Version": "compute 2.60"}).status_code == 200
    assert _nova(api, "GET", server, headers={"X-OpenStack-Nova-API-Version": "latest"}).status_code == 200


def test_nova_tag_rules(api, server):
    assert_error(_nova(api, "PUT", server, "t" * 81), 400, "Ecs.0906")
    assert _nova(api, "PUT", server, "t" * 80).status_code == 201
    assert_error(_nova(api, "PUT", server, "a,b"), 400, "Ecs.0907")
    assert_error(_nova(api, "PUT", server, body={"tags": ["a/b"]}), 400, "Ecs.0907")
    assert_error(_nova(api, "PUT", server, body={"tags": [""]}), 400, "Ecs.0906")
    assert_error(_nova(api, "PUT", server, body={"tags": ["a", "a"]}), 400, "Ecs.0908")
    assert_error(_nova(api, "PUT", server, body={"tags": [f"t{i}" for i in range(51)]}), 400, "Ecs.0905")
    assert _nova(api, "PUT", server, body={"tags": [f"t{i}" for i in range(50)]}).status_code == 200
    assert_error(_nova(api, "PUT", server, "one-more"), 400, "Ecs.0905")
    assert_error(_add(api, server, ("k", "v")), 400, "Ecs.0905")        # beyond the v1 API's 10 as well
    for body in ({"tags": "a"}, {"tags": [1]}, {}, {"tags": [], "x": 1}):
        assert_error(_nova(api, "PUT", server, body=body), 400, "Ecs.0005")
    assert_error(_nova(api, "PUT", UNKNOWN, "a"), 404, "Ecs.0114")
    assert_error(_nova(api, "GET", UNKNOWN, "a"), 404, "Ecs.0114")
    assert_error(_nova(api, "DELETE", UNKNOWN), 404, "Ecs.0114")


# --- views and list filters -----------------------------------------------------------------------------

def test_server_views_show_the_tags(api, server):
    assert api.server(server)["tags"] == []
    _add(api, server, ("env", "prod"), ("bare", ""))
    assert api.server(server)["tags"] == ["bare", "env=prod"]
    listed = api.get("/v1/{pid}/cloudservers/detail").json()["servers"]
    assert next(s for s in listed if s["id"] == server)["tags"] == ["bare", "env=prod"]
    nova = api.get(f"/v2.1/{{pid}}/servers/{server}", headers=MV).json()["server"]
    assert nova["tags"] == ["bare", "env=prod"]
    nova_list = api.get("/v2.1/{pid}/servers/detail", headers=MV).json()["servers"]
    assert next(s for s in nova_list if s["id"] == server)["tags"] == ["bare", "env=prod"]


def test_the_v1_list_shows_a_tag_change_on_the_next_page_read(api, server):
    """The list body keeps each server's encoded view while its inputs are unchanged: tags are inputs."""
    def listed():
        return next(s for s in api.get("/v1/{pid}/cloudservers/detail").json()["servers"] if s["id"] == server)

    assert listed()["tags"] == []
    _add(api, server, ("a", "1"))
    assert listed()["tags"] == ["a=1"]
    _nova(api, "PUT", server, "b")
    assert listed()["tags"] == ["a=1", "b"]
    _nova(api, "DELETE", server)
    assert listed()["tags"] == []


def test_v1_list_filters_tags_and_not_tags(api):
    a, b, c = api.create_servers(count=3)
    _add(api, a, ("env", "prod"), ("web", ""))
    _add(api, b, ("env", "prod"))

    def listed(query):
        r = api.get("/v1/{pid}/cloudservers/detail?" + query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["servers"])
        return {s["id"] for s in body["servers"]}

    assert listed("tags=env=prod") == {a, b}
    assert listed("tags=env=prod,web") == {a}                   # all of them
    assert listed("tags=web") == {a}
    assert listed("tags=env") == set()                          # "env" alone is the tag env with no value
    assert listed("not-tags=web") == {b, c}
    assert listed("not-tags=env=prod,web") == {b, c}            # not all of them
    assert listed("tags=env=prod&not-tags=web") == {b}
    assert listed("tags=" + ",".join(f"t{i}" for i in range(50))) == set()
    assert_error(api.get("/v1/{pid}/cloudservers/detail?tags=" + ",".join(f"t{i}" for i in range(51))),
                 400, "Ecs.0005")


def test_nova_list_filters_tags_any_and_not_tags_any(api):
    a, b, c = api.create_servers(count=3)
    _nova(api, "PUT", a, body={"tags": ["red", "big"]})
    _nova(api, "PUT", b, body={"tags": ["blue"]})

    def listed(query):
        r = api.get("/v2.1/{pid}/servers/detail?" + query)
        assert r.status_code == 200, r.text
        return {s["id"] for s in r.json()["servers"]}

    assert listed("tags=red,big") == {a}
    assert listed("tags=red,blue") == set()
    assert listed("tags-any=red,blue") == {a, b}
    assert listed("not-tags=red,big") == {b, c}
    assert listed("not-tags=red,blue") == {a, b, c}
    assert listed("not-tags-any=red,blue") == {c}
    assert {s["id"] for s in api.get("/v2.1/{pid}/servers?tags-any=blue").json()["servers"]} == {b}


# --- the official Huawei SDK's models --------------------------------------------------------------------

def _sdk():
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkecs.v2 import EcsClient

    # No request leaves it: the client only deserialises what this service answered.
    return EcsClient.new_builder().with_credentials(BasicCredentials("ak", "sk", "0" * 32)) \
        .with_endpoints(["http://127.0.0.1:9"]).build()


def _read(client, resp, response_type: str, optional: dict | None = None):
    """The response as the SDK's model, checked field by field against the raw JSON (tests/sdk_models.py)."""
    from huaweicloudsdkcore.warning.warning import TypeConversionWarning

    from tests.sdk_models import check_response

    with warnings.catch_warnings():
        warnings.simplefilter("error", TypeConversionWarning)
        model = client._deserialize(resp.json() if resp.content else None, response_type)
    if model is None:
        from huaweicloudsdkecs.v2 import model as m

        model = getattr(m, response_type)()
    model.raw_content = resp.content
    assert check_response(model, optional=optional) == []
    return model


def _body(request_body) -> dict:
    """A request body as the SDK sends it."""
    from huaweicloudsdkcore.utils.http_utils import sanitize_for_serialization

    return sanitize_for_serialization(request_body)


def test_huawei_sdk_models_read_every_v1_tag_answer(api, server):
    from huaweicloudsdkecs.v2.model import (
        BatchAddServerTag,
        BatchCreateServerTagsRequestBody,
        BatchDeleteServerTagsRequestBody,
        ListServersByTagRequestBody,
        ServerTag,
        ServerTagMatch,
        ServerTags,
    )

    client = _sdk()
    create = BatchCreateServerTagsRequestBody(action="create", tags=[BatchAddServerTag(key="env", value="prod"),
                                                                     BatchAddServerTag(key="role", value="web")])
    r = api.post(ACTION.replace("{sid}", server), _body(create))
    assert r.status_code == 204, r.text
    _read(client, r, "BatchCreateServerTagsResponse")

    shown = _read(client, api.get(V1_TAGS.replace("{sid}", server)), "ShowServerTagsResponse")
    assert [(t.key, t.value) for t in shown.tags] == [("env", "prod"), ("role", "web")]

    project = _read(client, api.get(PROJECT_TAGS), "ListServerTagsResponse")
    assert [(t.key, t.values) for t in project.tags] == [("env", ["prod"]), ("role", ["web"])]

    query = ListServersByTagRequestBody(action="filter", limit="10", offset="0",
                                        tags=[ServerTags(key="env", values=["prod"])],
                                        not_tags=[ServerTags(key="role", values=["db"])],
                                        matches=[ServerTagMatch(key="resource_name", value="srv")])
    found = _read(client, api.post(BY_TAG, _body(query)), "ListServersByTagResponse",
                  optional={"ServerResource": {"resource_detail"}})       # null in the reference's example
    assert found.total_count == 1
    assert found.resources[0].resource_id == server
    assert [(t.key, t.value) for t in found.resources[0].tags] == [("env", "prod"), ("role", "web")]
    count = _read(client, api.post(BY_TAG, _body(ListServersByTagRequestBody(action="count"))),
                  "ListServersByTagResponse", optional={"ListServersByTagResponse": {"resources"}})
    assert count.total_count == 1

    delete = BatchDeleteServerTagsRequestBody(action="delete", tags=[ServerTag(key="env", value="prod")])
    r = api.post(ACTION.replace("{sid}", server), _body(delete))
    assert r.status_code == 204, r.text
    _read(client, r, "BatchDeleteServerTagsResponse")
    assert _tags(api, server) == [{"key": "role", "value": "web"}]


def test_huawei_sdk_models_read_the_tags_of_the_server_views(api, server):
    _add(api, server, ("env", "prod"))
    _nova(api, "PUT", server, "plain")
    client = _sdk()
    detail = client._deserialize(api.get(f"/v1/{{pid}}/cloudservers/{server}").json(), "ShowServerResponse")
    assert detail.server.tags == ["env=prod", "plain"]
    listed = client._deserialize(api.get("/v1/{pid}/cloudservers/detail").json(), "ListServersDetailsResponse")
    assert next(s for s in listed.servers if s.id == server).tags == ["env=prod", "plain"]
    nova = client._deserialize(api.get(f"/v2.1/{{pid}}/servers/{server}", headers=MV).json(),
                                "NovaShowServerResponse")
    assert nova.server.tags == ["env=prod", "plain"]
