"""IAM: tokens and projects over HTTP."""

from tests.support import token_request


def test_token_issued_with_catalog_and_expiry(client, creds):
    r = client.post("/v3/auth/tokens", json=token_request(creds))
    assert r.status_code == 201
    assert r.headers["X-Subject-Token"]
    assert r.headers["X-Request-Id"]
    tok = r.json()["token"]
    assert tok["project"]["id"] == creds["project_id"]
    assert tok["user"]["name"] == "demo"
    assert tok["expires_at"].endswith("Z")
    types = {e["type"]: e["endpoints"][0]["url"] for e in tok["catalog"]}
    assert types["ecs"].endswith(f"/v1/{creds['project_id']}")
    assert types["compute"].endswith(f"/v2.1/{creds['project_id']}")
    assert "ims" in types


def test_wrong_password_is_401_with_ecs_body(client, creds):
    r = client.post("/v3/auth/tokens", json=token_request(creds, password="nope"))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "Common.0013"


def test_unknown_project_is_401(client, creds):
    r = client.post("/v3/auth/tokens", json=token_request(creds, project="nowhere"))
    assert r.status_code == 401


def test_malformed_token_requests(client):
    assert client.post("/v3/auth/tokens", content=b"").json()["error"]["code"] == "Common.0002"
    r = client.post("/v3/auth/tokens", content=b"{nope")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Ecs.0005"
    r = client.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"]}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Ecs.0005"


def test_projects_listed_for_token(api, creds):
    r = api.get("/v3/projects")
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["projects"]] == [creds["project_id"]]
    assert api.get("/v3/projects?name=" + creds["project_name"]).json()["projects"]
    assert api.get("/v3/projects?name=other").json()["projects"] == []


def test_missing_and_bad_token_are_401(api):
    r = api.get("/v3/projects", token=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "Common.0013"
    r = api.get("/v3/projects", headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401


def test_revoked_token_is_refused(api):
    r = api.call("DELETE", "/v3/auth/tokens", headers={"X-Subject-Token": api.token})
    assert r.status_code == 204
    assert api.get("/v3/projects").status_code == 401


def test_unknown_route_and_method_have_ecs_bodies(api):
    r = api.get("/v9/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Common.0404"
    assert r.headers["X-Request-Id"]
    r = api.call("PATCH", "/v3/projects")
    assert r.status_code == 405 and "error" in r.json()


def test_expired_token_is_401(api, client):
    from tests.support import sql

    sql(client, "UPDATE tokens SET expires_at = 0")
    client.app.state.services.auth.cache.clear()  # what the 5 s cache does on its own
    r = api.get("/v3/projects")
    assert r.status_code == 401 and r.json()["error"]["code"] == "Common.0013"
