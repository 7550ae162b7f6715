"""Version documents: ``GET /`` and ``GET /v2.1`` as Nova shows them, ``GET /v1`` for the ECS API."""

from __future__ import annotations

import os
import shutil

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app
from ecsd.config import Settings
from tests.support import assert_error


def test_root_lists_compute_versions_without_a_token(client, settings):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    versions = {v["id"]: v for v in r.json()["versions"]}
    assert set(versions) == {"v2.0", "v2.1"}
    old, cur = versions["v2.0"], versions["v2.1"]
    assert old["status"] == "SUPPORTED" and old["version"] == "" and old["min_version"] == ""
    assert old["updated"] == "2011-01-21T11:33:21Z"
    assert old["links"] == [{"rel": "self", "href": f"{settings.endpoint}/v2/"}]
    assert cur["status"] == "CURRENT"
    assert cur["version"] == "2.60" and cur["min_version"] == "2.1"
    assert cur["updated"] == "2013-07-23T11:33:21Z"
    assert {"rel": "self", "href": f"{settings.endpoint}/v2.1/"} in cur["links"]


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
def test_v21_document_advertises_microversions(client, settings, path):
    r = client.get(path)
    assert r.status_code == 200
    version = r.json()["version"]
    assert version["id"] == "v2.1" and version["status"] == "CURRENT"
    assert version["version"] == "2.60" and version["min_version"] == "2.1"
    assert version["updated"] == "2013-07-23T11:33:21Z"
    assert {"rel": "self", "href": f"{settings.endpoint}/v2.1/"} in version["links"]
    assert version["media-types"] == [{"base": "application/json",
                                       "type": "application/vnd.openstack.compute+json;version=2.1"}]


def test_v21_entry_is_the_same_in_both_documents(client):
    listed = next(v for v in client.get("/").json()["versions"] if v["id"] == "v2.1")
    single = client.get("/v2.1").json()["version"]
    assert {k: v for k, v in single.items() if k != "links"} == {k: v for k, v in listed.items() if k != "links"}


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_ecs_v1_document(client, settings, path):
    r = client.get(path)
    assert r.status_code == 200
    version = r.json()["version"]
    assert version["id"] == "v1" and version["status"] == "CURRENT"
    assert version["links"] == [{"rel": "self", "href": f"{settings.endpoint}/v1/"}]


@pytest.mark.parametrize("path", ["/", "/v2.1", "/v1"])
def test_version_documents_ignore_a_bad_token(client, path):
    r = client.get(path, headers={"X-Auth-Token": "expired-or-garbage"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] and r.headers["X-Openstack-Request-Id"]


def test_links_follow_the_public_url(template, tmp_path):
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    shutil.copy(os.path.join(template[0], "ecsd.db"), os.path.join(data_dir, "ecsd.db"))
    settings = Settings(data_dir=data_dir, sim_delay=0.0, run_worker=False, public_url="https://ecs.example.org/")
    with TestClient(create_app(settings)) as client:
        hrefs = [link["href"] for v in client.get("/").json()["versions"] for link in v["links"]]
        assert hrefs == ["https://ecs.example.org/v2/", "https://ecs.example.org/v2.1/"]


def test_unknown_paths_and_methods_keep_the_ecs_error_body(client):
    r = client.post("/v2.1")
    assert r.status_code == 405 and r.json()["error"]["code"] == "Common.0405"


@pytest.mark.parametrize(("name", "version_id"), [("v2", "v2.0"), ("V2", "v2.0"), ("v2.1", "v2.1"),
                                                  ("v2.1/", "v2.1"), ("v1", "v1"), ("v1/", "v1")])
def test_a_named_api_version_is_described(client, name, version_id):
    r = client.get("/" + name)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["id"] == version_id


@pytest.mark.parametrize("name", ["v3.7", "v9", "cloudservers", "v2.1x"])
def test_an_unknown_api_version_is_an_unknown_path(client, name):
    assert_error(client.get("/" + name), 404, "Common.0404")
    assert client.get("/healthz").status_code == 200 and client.get("/openapi.json").status_code == 200
