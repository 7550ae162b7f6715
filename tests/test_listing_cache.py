"""The v1 list's in-memory order of a project's servers and its kept server views never go stale.

An unfiltered ``GET /v1/{project_id}/cloudservers/detail`` pages through an order of the project's
live servers kept per process and checked against ``projects.list_gen``; its server views are kept
by their content. These tests change servers between listings and expect every change at once.

A page within the first 1000 servers is read from the index while the kept order is out of date; a
page past them ranks every server and keeps the order (:func:`rank`), which later pages then use.
"""

from __future__ import annotations

import dataclasses

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app
from tests.support import DEBIAN, Api, sql

LIST = "/v1/{pid}/cloudservers/detail"
BOTH_DATABASES = True


def listing(api: Api, query: str = "") -> dict:
    r = api.get(LIST + query)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def rank(api: Api) -> int:
    """Ask for a page past the first 1000 servers: the project's order is ranked and kept; its count."""
    body = listing(api, "?limit=1000&offset=2")
    assert body["servers"] == []
    return body["count"]


def all_pages(api: Api, limit: int, extra: str = "") -> tuple[int, list[dict]]:
    """(count, every server) walking the pages of ``limit`` until an empty one."""
    seen: list[dict] = []
    page = 1
    while True:
        body = listing(api, f"?limit={limit}&offset={page}{extra}")
        if not body["servers"]:
            return body["count"], seen
        assert len(body["servers"]) <= limit
        seen += body["servers"]
        page += 1


def ids(api: Api, limit: int) -> list[str]:
    count, servers = all_pages(api, limit)
    assert count == len(servers)
    return [x["id"] for x in servers]


def delete(api: Api, server_ids: list[str]) -> None:
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": i} for i in server_ids]})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"


@pytest.mark.parametrize("ranked", [True, False], ids=["kept-order", "near-top"])
def test_pages_follow_creates_and_deletes_at_once(api, ranked):
    def ids_(limit: int) -> list[str]:
        if ranked:
            rank(api)
        return ids(api, limit)

    first = api.create_servers(count=5, name="first")
    before = ids_(2)
    assert sorted(before) == sorted(first)
    fifth = listing(api, "?limit=5")["servers"][4:]
    assert listing(api, "?limit=2&offset=3") == {"count": 5, "servers": fifth}

    if ranked:
        rank(api)    # kept at this state; the create below must not be hidden by it
    second = api.create_servers(count=2, name="second")
    last = listing(api, "?limit=2&offset=4")
    assert last["count"] == 7 and [x["id"] for x in last["servers"]] == [before[-1]]
    after = ids_(2)
    assert after[:2] == sorted(second, reverse=True)   # newest first; one batch shares created_at
    assert after[2:] == before

    if ranked:
        rank(api)
    delete(api, [before[-1], after[0]])
    assert listing(api, "?limit=2&offset=4") == {"count": 5, "servers": []}
    remaining = ids_(2)
    assert remaining == [i for i in after if i not in (before[-1], after[0])]
    fifth = listing(api, "?limit=5")["servers"][4:]
    assert listing(api, "?limit=2&offset=3") == {"count": 5, "servers": fifth}

    if ranked:
        assert rank(api) == 5
    delete(api, remaining)
    assert listing(api, "?limit=2&offset=1") == {"count": 0, "servers": []}
    assert rank(api) == 0


def test_unfiltered_pages_match_the_filtered_query(api):
    api.create_servers(count=4, name="web")   # a batch shares created_at: the order falls back to the id
    api.create_servers(count=3, name="web")
    for limit in (1, 3, 25):
        unfiltered = all_pages(api, limit)          # read near the top
        assert rank(api) == 7
        assert all_pages(api, limit) == unfiltered  # sliced from the kept order
        filtered = all_pages(api, limit, "&name=web")      # the SQL path: ORDER BY created_at, id
        assert unfiltered == filtered
        assert unfiltered[0] == 7
    for page in (1, 2, 3):
        assert listing(api, f"?limit=3&offset={page}") == listing(api, f"?limit=3&offset={page}&name=web")


def test_a_listed_view_follows_the_server(api):
    sid = api.create_servers(name="before")[0]

    def listed() -> dict:
        (view,) = listing(api)["servers"]
        assert view == api.server(sid)       # the list shows the same view as the details
        return view

    assert listed()["status"] == "ACTIVE"
    rank(api)
    api.stop(sid)
    assert listed()["status"] == "SHUTOFF"
    r = api.call("PUT", f"/v1/{{pid}}/cloudservers/{sid}", {"server": {"name": "after", "description": "d"}})
    assert r.status_code == 200, r.text
    view = listed()
    assert (view["name"], view["description"], view["status"]) == ("after", "d", "SHUTOFF")
    disks = view["os-extended-volumes:volumes_attached"]
    r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {"imageid": DEBIAN}})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    view = listed()     # a new system disk: same row values but for the image, another disk id
    assert view["image"]["id"] == DEBIAN
    assert view["os-extended-volumes:volumes_attached"] != disks
    r = api.post("/v1/{pid}/cloudservers/action", {"os-start": {"servers": [{"id": sid}]}})
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert listed()["status"] == "ACTIVE"


def test_projects_are_listed_independently(api, other_api):
    mine = api.create_servers(count=3)
    assert rank(api) == 3 and sorted(ids(api, 2)) == sorted(mine)
    assert rank(other_api) == 0 and listing(other_api) == {"count": 0, "servers": []}
    theirs = other_api.create_servers(count=2)
    assert rank(other_api) == 2 and sorted(ids(other_api, 1)) == sorted(theirs)
    assert rank(api) == 3 and sorted(ids(api, 2)) == sorted(mine)
    delete(other_api, theirs[:1])
    assert rank(other_api) == 1 and ids(other_api, 1) == theirs[1:]
    assert listing(api, "?limit=2&offset=2")["count"] == 3


def test_another_api_process_sees_every_change(settings, api, creds):
    """A second app on the same database (its own engine, so its own order) lists what the first did."""
    other = dataclasses.replace(settings, run_worker=False)
    with TestClient(create_app(other), raise_server_exceptions=False) as client:
        second = Api(client, creds)
        assert rank(second) == 0 and listing(second) == {"count": 0, "servers": []}
        made = api.create_servers(count=3)
        assert rank(second) == 3 and sorted(ids(second, 2)) == sorted(made)
        delete(api, made[:1])
        assert rank(second) == 2 and ids(second, 2) == ids(api, 2) and len(ids(second, 2)) == 2
        r = api.call("PUT", f"/v1/{{pid}}/cloudservers/{made[1]}", {"server": {"name": "renamed"}})
        assert r.status_code == 200, r.text
        assert {x["id"]: x["name"] for x in listing(second)["servers"]}[made[1]] == "renamed"
        assert listing(second) == listing(api)


def test_servers_whose_rowids_changed_are_still_listed(api, settings):
    """SQLite: the kept order fetches rows by rowid, which VACUUM may renumber; then it reads by id."""
    if settings.database_url:
        pytest.skip("rowids are SQLite's")
    made = api.create_servers(count=3)
    assert rank(api) == 3
    before = ids(api, 2)
    sql(api.client, "UPDATE servers SET rowid = rowid + 1000000")    # what a VACUUM may do
    assert ids(api, 2) == before and sorted(before) == sorted(made)
    assert rank(api) == 3 and ids(api, 2) == before
