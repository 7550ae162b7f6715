"""AK/SK (SDK-HMAC-SHA256) signed requests through the HTTP API, the way the Huawei SDK sends them.

The signer here is written for the tests from clients.md section 3, on the client's side (from
the parameters the client is about to send), not from the server's verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from ecsd.app import create_app, prepare_store
from ecsd.config import Settings
from ecsd.domain import access_keys, identity
from tests import support as s
from tests.conftest import add_tenant
from tests.support import assert_error

BOTH_DATABASES = True  # every test that uses the `settings` fixture runs on SQLite and on PostgreSQL

HOST = "127.0.0.1:8080"  # sent as the Host header, port included, as the SDK does
UA = "huaweicloud-usdk-python/3.0; os/Linux python/3.11.7 impl/CPython; app/test"


def sdk_date(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).strftime("%Y%m%dT%H%M%SZ")


def _enc(value: str) -> str:
    return quote(value, safe="~")


class Signer:
    """A minimal SDK-HMAC-SHA256 client over a Starlette TestClient."""

    def __init__(self, client, ak: str, sk: str, project_id: str) -> None:
        self.client = client
        self.ak = ak
        self.sk = sk
        self.pid = project_id

    def build(self, method: str, path: str, *, params: list[tuple[str, str]] | None = None,
              body: Any = None, headers: dict[str, str] | None = None, project_header: bool = True,
              date: str | None = None, signed: list[str] | None = None, sk: str | None = None,
              algorithm: str = "SDK-HMAC-SHA256", payload: str | None = None) -> dict:
        """The request as the SDK would put it on the wire: path, query, headers, body."""
        path = path.replace("{pid}", self.pid)
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:  # the SDK's simplejson separators
            raw = json.dumps(body, separators=(", ", ": ")).encode()
        hdrs = {"Content-Type": "application/json;charset=utf-8" if raw else "application/json",
                "Host": HOST, "User-Agent": UA, "X-Sdk-Date": date or sdk_date()}
        if project_header:
            hdrs["X-Project-Id"] = self.pid
        hdrs.update(headers or {})
        # the query the SDK sends is exactly its canonical query string
        query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params or []))
        names = signed if signed is not None else sorted(h.lower() for h in hdrs if "_" not in h)
        lookup = {k.lower(): v for k, v in hdrs.items()}
        segments = path.split("/")
        uri = "/".join(_enc(seg) for seg in segments)
        if not uri.endswith("/"):
            uri += "/"
        canonical = "\n".join([
            method.upper(), uri, query,
            "".join(f"{n}:{lookup.get(n, '').strip()}\n" for n in names),
            ";".join(names), payload or hashlib.sha256(raw).hexdigest()])
        to_sign = "\n".join([algorithm, hdrs["X-Sdk-Date"], hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new((sk or self.sk).encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs["Authorization"] = (f"{algorithm} Access={self.ak}, SignedHeaders={';'.join(names)}, "
                                 f"Signature={sig}")
        return {"method": method, "path": path, "query": query, "headers": hdrs, "body": raw}

    def send(self, req: dict):
        url = req["path"] + (f"?{req['query']}" if req["query"] else "")
        return self.client.request(req["method"], url, content=req["body"] or None, headers=req["headers"])

    def call(self, method: str, path: str, **kw):
        return self.send(self.build(method, path, **kw))

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any, **kw):
        return self.call("POST", path, body=body, **kw)


def test_the_test_signer_reproduces_the_reference_vectors():
    """The signer used below agrees with the known answers of clients.md section 3."""
    signer = Signer(None, "AKEXAMPLE0000000000A", "SKEXAMPLE0000000000000000000000000000000B",
                    "0605767d4e80d2f42f2bc0115e5b1234")
    fixed = {"User-Agent": "huaweicloud-usdk-python/3.0"}
    req = signer.build("POST", "/v1/{pid}/cloudservers/b6b2c9f4-8b0e-4f43-9d4d-6f1c2f3b5a11/changeos",
                       body={"os-change": {"keyname": "KeyPair-350b",
                                           "imageid": "e215580f-73ad-429d-b6f2-5433947433b0",
                                           "mode": "withStopServer"}}, headers=fixed, date="20240102T030405Z")
    assert req["headers"]["Authorization"].endswith(
        "SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, "
        "Signature=d75691870f7fb22cfcb46152f769f431420f22afeb4b4fa7393e9555ae02dbe8")
    req = signer.build("GET", "/v1/{pid}/cloudservers/detail",
                       params=[("offset", "1"), ("name", "a b"), ("limit", "10")],
                       headers=fixed, date="20240102T030405Z")
    assert req["query"] == "limit=10&name=a%20b&offset=1"
    assert req["headers"]["Authorization"].endswith(
        "Signature=9b39bd731f04222fd5db8496b9785075660783fc8f3d5eb28afb2f471809338a")


def new_key(client, user_id: str, description: str = "test") -> tuple[str, str]:
    services = client.app.state.services
    box = access_keys.secret_box(services.settings)
    return services.store.run_sync(access_keys.create, box, user_id, description)


@pytest.fixture
def signer(client, creds) -> Signer:
    ak, sk = new_key(client, creds["user_id"])
    return Signer(client, ak, sk, creds["project_id"])




def assert_denied(resp) -> dict:
    return assert_error(resp, 401, "APIGW.0301")


def test_an_unsigned_payload_is_refused_for_any_body(signer):
    """X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD leaves the body out of the signature, so that a captured
    request could be replayed with another body. Every body of this API is JSON (whatever its
    Content-Type says), so it is refused wherever a body is sent."""
    before = signer.get("/v1/{pid}/cloudservers/detail").json()["count"]
    body = {"server": {"name": "unsigned", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
    for content_type in ("text/plain", "application/octet-stream", "application/json"):
        req = signer.build("POST", "/v1/{pid}/cloudservers", body=body, payload="UNSIGNED-PAYLOAD",
                           headers={"Content-Type": content_type, "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
        assert_denied(signer.send(req))
    assert signer.get("/v1/{pid}/cloudservers/detail").json()["count"] == before


# --- accepted -----------------------------------------------------------------------------------------

def test_signed_list_with_query(signer, api):
    api.create_servers(name="alpha")
    api.create_servers(name="other")
    r = signer.get("/v1/{pid}/cloudservers/detail", params=[("limit", "10"), ("name", "a b")])
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-Id"]
    assert r.json()["servers"] == []
    r = signer.get("/v1/{pid}/cloudservers/detail", params=[("limit", "10"), ("name", "alpha")])
    assert r.status_code == 200, r.text
    assert [srv["name"] for srv in r.json()["servers"]] == ["alpha"]


def test_signed_changeos_then_job(signer, api):
    api.keypair("kp-aksk")
    sid = api.create_servers(s.UBUNTU)[0]
    r = signer.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                    {"os-change": {"keyname": "kp-aksk", "imageid": s.DEBIAN, "mode": "withStopServer"}})
    assert r.status_code == 200, r.text  # the body was read for the signature and again by the handler
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 15
    while True:
        job = signer.get(f"/v1/{{pid}}/jobs/{job_id}")
        assert job.status_code == 200, job.text
        if job.json()["status"] in ("SUCCESS", "FAIL") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert job.json()["status"] == "SUCCESS", job.json()
    server = api.server(sid)
    assert server["image"]["id"] == s.DEBIAN and server["key_name"] == "kp-aksk"


def test_signed_request_with_validation_error_reads_body_once(signer):
    r = signer.post("/v1/{pid}/cloudservers/delete", {"servers": "not-a-list"})
    assert_error(r, 400, "Ecs.0005")
    r = signer.post("/v1/{pid}/cloudservers/delete", b"")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Common.0002"


def test_nova_and_keypair_paths(signer):
    r = signer.post("/v2.1/{pid}/os-keypairs", {"keypair": {"name": "kp-signed"}})
    assert r.status_code == 200, r.text
    assert r.json()["keypair"]["private_key"]
    assert signer.get("/v2.1/{pid}/os-keypairs/kp-signed").status_code == 200
    assert signer.call("DELETE", "/v2.1/{pid}/os-keypairs/kp-signed").status_code in (202, 204)


def test_ims_list_scoped_by_x_project_id(signer, api):
    r = signer.get("/v2/cloudimages", params=[("__imagetype", "gold"), ("limit", "3")])
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 3
    assert r.json() == api.get("/v2/cloudimages?__imagetype=gold&limit=3").json()
    assert signer.get("/v2/images").status_code == 200
    # no project at all: a project-level API needs one
    assert_error(signer.get("/v2/cloudimages", project_header=False), 400, "Ecs.0005")


def test_iam_project_lookup_without_project(signer, creds):
    """What the SDK does when given a region but no project id: GET /v3/projects?name=<region>."""
    r = signer.get("/v3/projects", params=[("name", creds["project_name"])], project_header=False)
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["projects"]] == [creds["project_id"]]


def test_token_wins_over_authorization(api):
    r = api.get("/v1/{pid}/cloudservers/detail", headers={"Authorization": "SDK-HMAC-SHA256 garbage"})
    assert r.status_code == 200, r.text


def test_last_used_is_recorded(client, signer):
    assert signer.get("/v1/{pid}/cloudservers/detail").status_code == 200
    keys = client.app.state.services.store.run_sync(access_keys.list_keys)
    mine = next(k for k in keys if k["ak"] == signer.ak)
    assert mine["last_used_at"] is not None and mine["status"] == "active"


def test_unsigned_extra_headers_are_ignored(signer):
    req = signer.build("GET", "/v1/{pid}/cloudservers/detail")
    req["headers"].update({"Accept": "*/*", "Accept-Encoding": "gzip, deflate", "X-Whatever": "x"})
    assert signer.send(req).status_code == 200


# --- refused: 401 APIGW.0301 ------------------------------------------------------------------------------

def _tamper_path(req):
    req["path"] = req["path"].replace("kp-x", "kp-y")


def _tamper_query(req):
    req["query"] = req["query"].replace("limit=10", "limit=11")


def _drop_query(req):
    req["query"] = ""


def _tamper_header(req):
    req["headers"]["User-Agent"] = "something-else"


def _tamper_host(req):
    req["headers"]["Host"] = "127.0.0.1:8081"


def _tamper_method(req):
    req["method"] = "DELETE"


@pytest.mark.parametrize("tamper", [_tamper_path, _tamper_query, _drop_query, _tamper_header, _tamper_host,
                                    _tamper_method])
def test_tampered_request_is_refused(signer, tamper):
    req = signer.build("GET", "/v2.1/{pid}/os-keypairs/kp-x", params=[("limit", "10"), ("name", "a b")])
    tamper(req)
    err = assert_denied(signer.send(req))
    assert "signature does not match" in err["details"][0]["message"]


def test_tampered_body_is_refused(signer, api):
    sid = api.create_servers(s.UBUNTU)[0]
    req = signer.build("POST", f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                       body={"os-change": {"adminpass": "Passw0rd!Ok2", "imageid": s.DEBIAN}})
    req["body"] = req["body"].replace(s.DEBIAN.encode(), s.CENTOS.encode())
    assert_denied(signer.send(req))
    assert api.server(sid)["image"]["id"] == s.UBUNTU


def test_unknown_ak_wrong_sk_and_malformed_ak(signer):
    unknown = Signer(signer.client, "AKUNKNOWN00000000000", signer.sk, signer.pid)
    err = assert_denied(unknown.get("/v1/{pid}/cloudservers/detail"))
    assert "does not exist" in err["details"][0]["message"]
    malformed = Signer(signer.client, "x" * 300, signer.sk, signer.pid)
    assert_denied(malformed.get("/v1/{pid}/cloudservers/detail"))
    assert_denied(signer.get("/v1/{pid}/cloudservers/detail", sk=signer.sk[:-1] + "!"))


def test_revoked_key_is_refused(client, creds):
    ak, sk = new_key(client, creds["user_id"])
    assert client.app.state.services.store.run_sync(access_keys.revoke, ak)
    err = assert_denied(Signer(client, ak, sk, creds["project_id"]).get("/v1/{pid}/cloudservers/detail"))
    assert "not active" in err["details"][0]["message"]


def test_revocation_reaches_a_cached_key(client, creds):
    ak, sk = new_key(client, creds["user_id"])
    signer = Signer(client, ak, sk, creds["project_id"])
    assert signer.get("/v1/{pid}/cloudservers/detail").status_code == 200
    client.app.state.services.store.run_sync(access_keys.revoke, ak)
    auth = client.app.state.services.auth
    auth.forget_access_key(ak)  # what the key cache's few-second ttl does on its own
    assert_denied(signer.get("/v1/{pid}/cloudservers/detail"))


@pytest.mark.parametrize(("date", "why"), [
    (-16 * 60, "too old"),          # seconds from now, turned into a date when the test runs
    (16 * 60, "future"),
    ("2024-01-02T03:04:05Z", "form"),
    ("20241340T030405Z", "form"),
    ("not a date", "form"),
])
def test_bad_dates_are_refused(signer, date, why):
    if isinstance(date, int):
        date = sdk_date(date)
    err = assert_denied(signer.get("/v1/{pid}/cloudservers/detail", date=date))
    assert why in err["details"][0]["message"] or "valid" in err["details"][0]["message"]


def test_dates_within_the_window_are_accepted(signer):
    assert signer.get("/v1/{pid}/cloudservers/detail", date=sdk_date(-14 * 60)).status_code == 200
    assert signer.get("/v1/{pid}/cloudservers/detail", date=sdk_date(14 * 60)).status_code == 200


@pytest.mark.parametrize("drop", ["host", "x-sdk-date"])
def test_host_and_date_must_be_signed(signer, drop):
    names = [n for n in ("content-type", "host", "user-agent", "x-project-id", "x-sdk-date") if n != drop]
    err = assert_denied(signer.get("/v1/{pid}/cloudservers/detail", signed=names))
    assert drop in err["details"][0]["message"]


def test_other_algorithms_are_refused(signer):
    for algorithm in ("SDK-HMAC-SM3", "SDK-ECDSA-P256-SHA256", "V11-HMAC-SHA256"):
        err = assert_denied(signer.get("/v1/{pid}/cloudservers/detail", algorithm=algorithm))
        assert "not supported" in err["details"][0]["message"]
    r = signer.client.get("/v1/x/cloudservers/detail", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_denied(r)


def test_security_token_is_refused(signer):
    r = signer.get("/v1/{pid}/cloudservers/detail", headers={"X-Security-Token": "temporary"})
    assert "X-Security-Token" in assert_denied(r)["details"][0]["message"]


def test_unsigned_project_header_is_refused(signer):
    names = ["content-type", "host", "user-agent", "x-sdk-date"]
    assert_denied(signer.get("/v2/cloudimages", signed=names))


def test_signed_header_missing_from_request_is_refused(signer):
    req = signer.build("GET", "/v1/{pid}/cloudservers/detail")
    del req["headers"]["User-Agent"]
    req["headers"]["User-Agent"] = ""  # httpx would add its own; an empty value is not the signed one
    assert_denied(signer.send(req))


def test_no_credentials_at_all(client, creds):
    r = client.get(f"/v1/{creds['project_id']}/cloudservers/detail")
    assert_error(r, 401, "Common.0013")


def test_oversized_signed_body(signer, client):
    limit = client.app.state.services.settings.max_body_bytes
    r = signer.post("/v1/{pid}/cloudservers/delete", b"{" + b" " * limit + b"}")
    assert_error(r, 400, "Ecs.0005")


# --- tenancy ------------------------------------------------------------------------------------------

def test_project_of_another_tenant(signer, client):
    other = add_tenant(client, "other-domain", "mallory", "Other-Passw0rd", "eu-de_other")
    # in the path
    assert_error(signer.get(f"/v1/{other['project_id']}/cloudservers/detail", project_header=False),
                 400, "Ecs.0023")
    # in X-Project-Id (IMS has no project in its path)
    foreign = Signer(signer.client, signer.ak, signer.sk, other["project_id"])
    assert_error(foreign.get("/v2/cloudimages"), 400, "Ecs.0023")
    assert_error(foreign.get("/v1/{pid}/cloudservers/detail"), 400, "Ecs.0023")


def test_path_and_header_projects_must_agree(signer, client, creds):
    def second_project(conn):
        did = identity.find_domain(conn, creds["domain_name"])["id"]
        pid = identity.create_project(conn, did, "eu-de_second")
        identity.add_member(conn, creds["user_id"], pid)
        return pid

    pid2 = client.app.state.services.store.run_sync(second_project)
    # the user may use both projects, and each works on its own ...
    assert signer.get(f"/v1/{pid2}/cloudservers/detail", headers={"X-Project-Id": pid2}).status_code == 200
    assert signer.get("/v1/{pid}/cloudservers/detail").status_code == 200
    # ... but not one in the path and the other in the header
    err = assert_error(signer.get(f"/v1/{pid2}/cloudservers/detail"), 400, "Ecs.0023")
    assert "differ" in err["details"][0]["message"]


def test_literal_project_id_placeholder(signer):
    """The SDK without a project id sends /v1/%7Bproject_id%7D/...: an unknown project, not a crash."""
    r = signer.get("/v1/{project_id}/cloudservers/detail", project_header=False)
    assert_error(r, 400, "Ecs.0023")
    r = signer.get("/v1/{project_id}/cloudservers/detail")  # with a real X-Project-Id: they differ
    assert_error(r, 400, "Ecs.0023")


def test_disabled_user_is_refused(client, signer, creds):
    from ecsd.store.schema import users

    client.app.state.services.store.run_sync(
        lambda conn: conn.execute(users.update().where(users.c.id == creds["user_id"]).values(enabled=False)))
    assert_denied(signer.get("/v1/{pid}/cloudservers/detail"))


# --- first start and the secret key -------------------------------------------------------------------

def test_first_start_credentials_carry_a_working_access_key(tmp_path, monkeypatch):
    monkeypatch.delenv("ECSD_SECRET_KEY", raising=False)
    data = str(tmp_path / "fresh")
    settings = Settings(data_dir=data, sim_delay=0.0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        path = os.path.join(data, "credentials.json")
        with open(path) as fh:
            creds = json.load(fh)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert access_keys.looks_like_access_key(creds["ak"])
        assert len(creds["sk"]) == 40 and creds["sk"].isalnum()
        assert creds["endpoint"] and creds["project_id"]
        key_file = os.path.join(data, "secret.key")
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        with open(os.path.join(data, "ecsd.db"), "rb") as fh:
            assert creds["sk"].encode() not in fh.read()  # stored encrypted
        signer = Signer(client, creds["ak"], creds["sk"], creds["project_id"])
        r = signer.get("/v1/{pid}/cloudservers/detail")
        assert r.status_code == 200, r.text
        keys = client.app.state.services.store.run_sync(access_keys.list_keys)
        assert [k["ak"] for k in keys] == [creds["ak"]]
        assert "sk" not in keys[0] and "sk_encrypted" not in keys[0]


def test_secret_key_from_environment(tmp_path):
    key = Fernet.generate_key().decode()
    data = str(tmp_path / "envkey")
    settings = Settings(data_dir=data, sim_delay=0.0, secret_key=key)
    assert key not in repr(settings)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        with open(os.path.join(data, "credentials.json")) as fh:
            creds = json.load(fh)
        signer = Signer(client, creds["ak"], creds["sk"], creds["project_id"])
        assert signer.get("/v1/{pid}/cloudservers/detail").status_code == 200
    assert not os.path.exists(os.path.join(data, "secret.key"))

    # another key cannot open the stored SKs: a server error (logged), never a verified request
    settings = Settings(data_dir=data, sim_delay=0.0, secret_key=Fernet.generate_key().decode())
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = Signer(client, creds["ak"], creds["sk"], creds["project_id"]).get("/v1/{pid}/cloudservers/detail")
        assert_error(r, 500, "Common.0001")


def test_malformed_secret_key_stops_the_start(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "bad"), sim_delay=0.0, secret_key="not-a-fernet-key")
    with pytest.raises(SystemExit, match="Fernet"):
        prepare_store(settings)


def test_domain_header_must_be_signed_and_the_keys_own(signer, creds, client):
    """GlobalCredentials send X-Domain-Id (clients.md): it must be signed and name the key's account."""
    domain_id = signer.get("/v3/auth/domains", project_header=False).json()["domains"][0]["id"]
    ok = signer.get("/v3/projects", params=[("name", creds["project_name"])], project_header=False,
                    headers={"X-Domain-Id": domain_id})
    assert ok.status_code == 200, ok.text
    assert_denied(signer.get("/v3/projects", project_header=False, headers={"X-Domain-Id": "0" * 32}))
    other = add_tenant(client, "domain-header", "dora", "Other-Passw0rd", "eu-de_dora")
    assert_denied(signer.get("/v3/projects", project_header=False, headers={"X-Domain-Id": other["domain_id"]}))
    names = ["content-type", "host", "user-agent", "x-sdk-date"]
    assert_denied(signer.get("/v3/projects", project_header=False, headers={"X-Domain-Id": domain_id},
                             signed=names))
