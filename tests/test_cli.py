"""The administration commands (`ecsd users|projects|keys ...`) as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app
from ecsd.config import Settings
from tests.support import token_request
from tests.test_aksk import Signer

pytestmark = pytest.mark.slow  # every test here starts `ecsd` processes
ECSD = [sys.executable, "-m", "ecsd"]


def ecsd(data_dir: str, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ECSD_SECRET_KEY", "ECSD_DATA_DIR", "ECSD_DATABASE_URL")}
    r = subprocess.run(ECSD + list(args) + ["--data-dir", data_dir], input=stdin,
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def signed_list(data_dir: str, ak: str, sk: str, project_id: str):
    app = create_app(Settings(data_dir=data_dir, sim_delay=0.0))
    with TestClient(app, raise_server_exceptions=False) as c:
        return Signer(c, ak, sk, project_id).get("/v1/{pid}/cloudservers/detail")


def test_operator_session(tmp_path):
    d = str(tmp_path / "data")
    out = ecsd(d, "users", "create", "alice", "--domain", "acme", "--password-stdin",
               stdin="Alice-Passw0rd\n").stdout
    assert "Created domain acme" in out and "Created user alice" in out
    ecsd(d, "users", "create", "bob", "--domain", "acme", "--password", "Bob-Passw0rd")
    project = json.loads(ecsd(d, "projects", "create", "eu-de_prod", "--domain", "acme", "--json").stdout)
    assert len(project["id"]) == 32
    out = ecsd(d, "projects", "add-member", "eu-de_prod", "--user", "alice", "--domain", "acme").stdout
    assert "is now a member" in out
    out = ecsd(d, "projects", "add-member", project["id"], "--user", "alice", "--domain", "acme").stdout
    assert "already" in out

    users = ecsd(d, "users", "list").stdout
    assert "alice" in users and "eu-de_prod" in users and "bob" in users
    listed = json.loads(ecsd(d, "users", "list", "--domain", "acme", "--json").stdout)
    assert {u["name"]: u["projects"] for u in listed} == {"alice": ["eu-de_prod"], "bob": []}
    assert "eu-de_prod" in ecsd(d, "projects", "list").stdout

    out = ecsd(d, "keys", "create", "--user", "alice", "--domain", "acme", "--description", "ci").stdout
    ak = out.split("AK: ")[1].split()[0]
    sk = out.split("SK: ")[1].split()[0]
    assert len(ak) == 20 and ak.isalnum() and ak.isupper() and len(sk) == 40
    other = json.loads(ecsd(d, "keys", "create", "--user", "bob", "--domain", "acme", "--json").stdout)
    assert other["ak"] != ak

    table = ecsd(d, "keys", "list").stdout
    assert ak in table and other["ak"] in table and "active" in table
    assert sk not in table and other["sk"] not in table
    mine = json.loads(ecsd(d, "keys", "list", "--user", "alice", "--domain", "acme", "--json").stdout)
    assert [k["ak"] for k in mine] == [ak]
    assert mine[0]["description"] == "ci" and mine[0]["status"] == "active"
    assert sk not in json.dumps(mine) and not any("sk" in k for k in mine[0])

    # alice logs in with the password read from stdin ...
    with TestClient(create_app(Settings(data_dir=d, sim_delay=0.0)), raise_server_exceptions=False) as c:
        r = c.post("/v3/auth/tokens", json=token_request({"user_name": "alice", "password": "Alice-Passw0rd",
                                                           "domain_name": "acme", "project_name": "eu-de_prod"}))
        assert r.status_code == 201, r.text
    # ... and her key signs requests for her project; bob's key does not reach it
    assert signed_list(d, ak, sk, project["id"]).status_code == 200
    r = signed_list(d, other["ak"], other["sk"], project["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "Ecs.0023"

    out = ecsd(d, "keys", "revoke", ak).stdout
    assert "Revoked" in out
    assert "already inactive" in ecsd(d, "keys", "revoke", ak).stdout
    assert "inactive" in ecsd(d, "keys", "list", "--user", "alice", "--domain", "acme").stdout
    r = signed_list(d, ak, sk, project["id"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "APIGW.0301"
    assert r.headers["X-Request-Id"]


def test_refusals(tmp_path):
    d = str(tmp_path / "data")
    ecsd(d, "users", "create", "alice", "--domain", "acme", "--password", "Alice-Passw0rd")
    ecsd(d, "users", "create", "alice", "--domain", "other", "--password", "Alice-Passw0rd")

    r = ecsd(d, "users", "create", "alice", "--domain", "acme", "--password", "Alice-Passw0rd", check=False)
    assert r.returncode == 1 and "already has a user" in r.stderr
    r = ecsd(d, "users", "create", "carol", "--domain", "acme", check=False)  # no password, no terminal
    assert r.returncode == 2 and "password" in r.stderr
    r = ecsd(d, "users", "create", "carol", "--domain", "acme", "--password", "short", check=False)
    assert r.returncode == 1 and "8 to 1024" in r.stderr
    r = ecsd(d, "keys", "create", "--user", "alice", check=False)  # two domains have an alice
    assert r.returncode == 1 and "--domain" in r.stderr
    r = ecsd(d, "keys", "create", "--user", "nobody", "--domain", "acme", check=False)
    assert r.returncode == 1 and "no user" in r.stderr
    r = ecsd(d, "keys", "create", "--user", "alice", "--domain", "nowhere", check=False)
    assert r.returncode == 1 and "no domain" in r.stderr
    r = ecsd(d, "projects", "add-member", "nothing", "--user", "alice", "--domain", "acme", check=False)
    assert r.returncode == 1 and "no project" in r.stderr
    r = ecsd(d, "keys", "revoke", "AKNOTTHERE0000000000", check=False)
    assert r.returncode == 1 and "no access key" in r.stderr
    assert "(none)" in ecsd(d, "keys", "list").stdout


def test_keys_need_the_servers_secret_key(tmp_path):
    """A key made with another ECSD_SECRET_KEY would be unusable: the command refuses instead."""
    d = str(tmp_path / "data")
    ecsd(d, "users", "create", "alice", "--domain", "acme", "--password", "Alice-Passw0rd")
    ecsd(d, "keys", "create", "--user", "alice", "--domain", "acme")
    os.remove(os.path.join(d, "secret.key"))
    r = ecsd(d, "keys", "create", "--user", "alice", "--domain", "acme", check=False)
    assert r.returncode == 1 and "another secret key" in r.stderr


def test_serve_prints_a_ready_to_use_access_key(tmp_path):
    from tests.test_process import Server

    data = str(tmp_path / "data")
    server = Server(data)
    try:
        with open(os.path.join(data, "credentials.json")) as fh:
            creds = json.load(fh)
        signer = Signer(None, creds["ak"], creds["sk"], creds["project_id"])
        req = signer.build("GET", "/v1/{pid}/cloudservers/detail", params=[("limit", "10")],
                           headers={"Host": f"127.0.0.1:{server.port}"})
        r = httpx.get(f"{server.base}{req['path']}?{req['query']}", headers=req["headers"], timeout=10)
        assert r.status_code == 200, r.text
    finally:
        out = server.stop()
    for value in (creds["ak"], creds["sk"], creds["project_id"], server.base):
        assert value in out
