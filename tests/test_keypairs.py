"""Key pairs through the public API: /v2.1/{project_id}/os-keypairs (create, import, list, show, delete)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from ecsd.domain import identity
from ecsd.store.schema import users
from tests.support import Api, assert_error

BASE = "/v2.1/{pid}/os-keypairs"

# Vectors made with ssh-keygen; fingerprints from `ssh-keygen -l -E md5 -f <key>.pub`.
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWrvObh9WwKP6AV+Rm5PEGlSuTPZuKIZoUUx/resIRE vector@ecsd"
ED25519_FP = "89:bf:b6:e4:f2:46:e7:38:9f:2b:c8:9a:b6:3c:89:2b"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCzRhcSxO9WBOLHH5bUYxVc29LH8fAu6rqADwyy7o61SQLvtPaEXgce5pmLVmAj"
       "ZL0UgNjifxO06YC46qY9y6U5F5Kz9hgH5TP+GnHhHo7PTVIM5psclGl4NxtXCfaPoEMEDmP+IDHMfD3UM1wcagQ1Ptzc813JvIhdJY"
       "m5dd8H6zsmSq90MTnivGswIw2x3gP+uNcjipw4bTmIUvzg6Aaxm2/yLgzu31YaX5msRr166l/tfTXzuY1USwnvAXNuIBXUCEZ1kZGD"
       "4leZ4l/lRyVPRHjVXgzhvNm/Y6257oUk4I4ezdUH5r1fLtH9Qt2iiKB7mj+T7tz6JS18LA49cUYb rsa-vector")
RSA_FP = "ec:74:aa:6e:b5:c8:e8:30:73:87:21:5a:44:47:b9:65"
ECDSA = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBN509z66iZvuWz5YSTiDHwTr"
         "KuMKcT2zIAd8Iiqa44NFUY5qT5S7C+ErhZ/hA9aCv1g/f6XucS3AgcUUC37E6/o= ec-vector")
ECDSA_FP = "f0:2f:e3:a2:2d:37:72:f8:7d:8f:10:04:9c:67:b1:eb"
# Self-signed EC certificate made with openssl; fingerprint from `openssl x509 -noout -fingerprint -sha1`.
CERT = """-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUVY5QiWbFO4bXC7lWy6fWHnZAVJUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJZWNzZC10ZXN0MB4XDTI2MTEyNzAzMzExOFoXDTM2MTEyNDAz
MzExOFowFDESMBAGA1UEAwwJZWNzZC10ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEBzM9eP9AvZc1GmVPp9c32d5/mC+Yh58hQoaqnI9swOlGuhbqlcM/NW2S
H78pwLDNnteiQXnMCsySaZZRJC30dKNTMFEwHQYDVR0OBBYEFDRfMA+cvBbylr0n
ve7eUZOHy+9CMB8GA1UdIwQYMBaAFDRfMA+cvBbylr0nve7eUZOHy+9CMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgDblzRI3R/Bkz0V6v4C/7y1tz
AG/hB4FC9dpar7RITmQCIBchJOcE4ywk4IY8AIniQFVfcpHlNAvc8FMQJWpEFDkT
-----END CERTIFICATE-----
"""
CERT_FP = "f9:b8:a5:f2:d8:50:85:5a:a3:ff:95:f4:55:31:5d:2f:a9:19:9e:94"

CREATE_KEYS = {"name", "public_key", "fingerprint", "user_id", "type", "private_key"}
SHOW_KEYS = {"public_key", "name", "fingerprint", "created_at", "deleted", "deleted_at", "id", "updated_at",
             "user_id", "type"}
LIST_KEYS = {"fingerprint", "name", "type", "public_key"}


def path(name: str) -> str:
    return f"{BASE}/{quote(name, safe='')}"




def imported(api: Api, name: str, key: str = ED25519, **extra) -> dict:
    r = api.post(BASE, {"keypair": {"name": name, "public_key": key, **extra}})
    assert r.status_code == 200, r.text
    return r.json()["keypair"]


def md5_fingerprint(line: str) -> str:
    digest = hashlib.md5(base64.b64decode(line.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def other_user(client, creds: dict, name: str = "alice") -> Api:
    """A second user in the same domain and project as the demo user, with its own token."""
    password = "Alice-Pass-12345"

    def make(conn):
        domain_id = conn.execute(select(users.c.domain_id).where(users.c.id == creds["user_id"])).scalar_one()
        user_id = identity.create_user(conn, domain_id, name, password)
        identity.add_member(conn, user_id, creds["project_id"])
        return user_id

    user_id = client.app.state.services.store.run_sync(make)
    return Api(client, {**creds, "user_name": name, "password": password, "user_id": user_id})


# --- create (generated key) ----------------------------------------------------------------------------

def test_create_returns_a_working_private_key_once(api, creds):
    r = api.post(BASE, {"keypair": {"name": "demo"}})
    assert r.status_code == 200, r.text
    kp = r.json()["keypair"]
    assert set(kp) == CREATE_KEYS
    assert kp["name"] == "demo" and kp["type"] == "ssh" and kp["user_id"] == creds["user_id"]
    assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----\n")

    private = serialization.load_pem_private_key(kp["private_key"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    derived = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode()
    assert kp["public_key"].split()[:2] == derived.split()
    assert kp["fingerprint"] == md5_fingerprint(kp["public_key"])

    # Never again: neither show nor list hands the private key out.
    shown = api.get(path("demo")).json()["keypair"]
    assert "private_key" not in shown and shown["public_key"] == kp["public_key"]
    listed = api.get(BASE).json()["keypairs"]
    assert [set(item["keypair"]) for item in listed] == [LIST_KEYS]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_generated_private_key_is_accepted_by_openssh(api, tmp_path):
    kp = api.keypair("for-ssh")
    key_file = tmp_path / "id_rsa"
    key_file.write_text(kp["private_key"])
    os.chmod(key_file, 0o600)
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == kp["public_key"].split()[:2]


def test_create_as_openstacksdk_does(api, creds):
    r = api.post(BASE, {"keypair": {"name": "sdk", "user_id": creds["user_id"], "type": "ssh"}},
                 headers={"OpenStack-API-Version": "compute 2.10", "X-OpenStack-Nova-API-Version": "2.10"})
    assert r.status_code == 200, r.text
    assert r.json()["keypair"]["private_key"]
    assert r.json()["keypair"]["user_id"] == creds["user_id"]


def test_create_x509_returns_certificate_and_matching_key(api):
    r = api.post(BASE, {"keypair": {"name": "win", "type": "x509"}})
    assert r.status_code == 200, r.text
    kp = r.json()["keypair"]
    assert kp["type"] == "x509"
    cert = x509.load_pem_x509_certificate(kp["public_key"].encode())
    private = serialization.load_pem_private_key(kp["private_key"].encode(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(*spki) == private.public_key().public_bytes(*spki)
    assert kp["fingerprint"] == cert.fingerprint(hashes.SHA1()).hex(":")
    assert api.get(path("win")).json()["keypair"]["type"] == "x509"


# --- import -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, fingerprint", [(ED25519, ED25519_FP), (RSA, RSA_FP), (ECDSA, ECDSA_FP)],
                         ids=["ed25519", "rsa", "ecdsa"])
def test_import_openssh_keys(api, creds, key, fingerprint):
    r = api.post(BASE, {"keypair": {"name": "imp", "public_key": key + "\n"}})
    assert r.status_code == 200, r.text
    kp = r.json()["keypair"]
    assert "private_key" not in kp
    assert set(kp) == CREATE_KEYS - {"private_key"}
    assert kp["fingerprint"] == fingerprint
    assert kp["public_key"] == key and kp["type"] == "ssh" and kp["user_id"] == creds["user_id"]
    shown = api.get(path("imp")).json()["keypair"]
    assert (shown["public_key"], shown["fingerprint"]) == (key, fingerprint)


def test_import_x509_certificate(api):
    kp = imported(api, "cert", CERT, type="x509")
    assert kp["fingerprint"] == CERT_FP and kp["type"] == "x509"
    assert x509.load_pem_x509_certificate(kp["public_key"].encode())


def test_public_key_size_limit_is_1024_bytes(api):
    fits = ED25519 + " " + "c" * (1024 - len(ED25519) - 1)
    assert len(fits.encode()) == 1024
    imported(api, "fits", fits)
    r = api.post(BASE, {"keypair": {"name": "too-big", "public_key": fits + "c"}})
    err = assert_error(r, 400, "Ecs.0005")
    assert "1024" in err["details"][0]["message"]
    assert api.get(path("too-big")).status_code == 404


# --- validation ---------------------------------------------------------------------------------------------

RSA_BLOB = RSA.split()[1]


@pytest.mark.parametrize("keypair", [
    {"name": "k", "public_key": "not a key"},
    {"name": "k", "public_key": "ssh-rsa AAAA!!!not-base64"},
    {"name": "k", "public_key": "ssh-rsa"},
    {"name": "k", "public_key": ""},
    {"name": "k", "public_key": "ssh-ed25519 " + RSA_BLOB},          # blob does not match the type
    {"name": "k", "public_key": "ssh-dss " + RSA_BLOB},              # key type not accepted
    {"name": "k", "public_key": ED25519 + "\n" + RSA},               # two keys: authorized_keys injection
    {"name": "k", "public_key": CERT},                                # a certificate is not an ssh key
    {"name": "k", "public_key": ED25519, "type": "x509"},            # an ssh key is not a certificate
    {"name": "k", "public_key": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "type": "x509"},
    {"name": "k", "public_key": 123},
    {"name": "k", "type": "rsa"},
    {"name": "k", "type": ""},
    {"name": "k", "type": 1},
    {"name": "k", "user_id": 5},
    {"name": "k", "colour": "blue"},
    {},
    {"public_key": ED25519},
    {"name": ""},
    {"name": "x" * 65},
    {"name": "a/b"},
    {"name": "dot.name"},
    {"name": " lead"},
    {"name": "trail "},
    {"name": "ünïcode"},
    {"name": "tab\there"},
    {"name": None},
    {"name": 123},
    {"name": ["k"]},
])
def test_invalid_keypair_is_400(api, keypair):
    r = api.post(BASE, {"keypair": keypair})
    assert_error(r, 400, "Ecs.0005")
    assert api.get(BASE).json()["keypairs"] == []


@pytest.mark.parametrize("body", [{}, {"keypair": "k"}, {"keypair": None}, [], "keypair", 7])
def test_malformed_body_is_400(api, body):
    assert_error(api.post(BASE, body), 400, "Ecs.0005")


def test_empty_and_non_json_bodies(api):
    assert_error(api.post(BASE, content=b""), 400, "Common.0002")
    assert_error(api.post(BASE, content=b"{keypair: name}",
                          headers={"Content-Type": "application/json"}), 400, "Ecs.0005")


def test_longest_allowed_name(api):
    name = "N" * 64
    kp = imported(api, name)
    assert api.get(path(name)).json()["keypair"]["name"] == kp["name"] == name


def test_duplicate_name_is_409_and_keeps_the_original(api):
    first = imported(api, "dup", ED25519)
    err = assert_error(api.post(BASE, {"keypair": {"name": "dup", "public_key": RSA}}), 409, "Ecs.0005")
    assert "dup" in err["details"][0]["message"]
    assert_error(api.post(BASE, {"keypair": {"name": "dup"}}), 409, "Ecs.0005")
    assert api.get(path("dup")).json()["keypair"]["fingerprint"] == first["fingerprint"] == ED25519_FP


def test_quota_of_100_key_pairs_per_user(api):
    for i in range(100):
        imported(api, f"q{i:03d}")
    assert_error(api.post(BASE, {"keypair": {"name": "one-more", "public_key": ED25519}}), 403, "Ecs.0001")
    assert_error(api.post(BASE, {"keypair": {"name": "one-more"}}), 403, "Ecs.0001")
    assert api.delete(path("q000")).status_code == 204
    imported(api, "one-more")
    assert len(api.get(BASE).json()["keypairs"]) == 100


# --- show, delete --------------------------------------------------------------------------------------------

def test_show_detail(api, creds):
    imported(api, "shown", RSA)
    r = api.get(path("shown"))
    assert r.status_code == 200, r.text
    kp = r.json()["keypair"]
    assert set(kp) == SHOW_KEYS
    assert kp["name"] == "shown" and kp["public_key"] == RSA and kp["fingerprint"] == RSA_FP
    assert kp["user_id"] == creds["user_id"] and kp["type"] == "ssh"
    assert kp["deleted"] is False and kp["deleted_at"] is None and kp["updated_at"] is None
    assert isinstance(kp["id"], int) and not isinstance(kp["id"], bool)
    # ISO 8601 in UTC without a zone suffix, as in the reference's example.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", kp["created_at"]), kp["created_at"]
    created = datetime.fromisoformat(kp["created_at"]).replace(tzinfo=UTC)
    assert abs(created.timestamp() - time.time()) < 60


def test_ids_are_distinct(api):
    ids = {api.get(path(imported(api, n)["name"])).json()["keypair"]["id"] for n in ("i1", "i2")}
    assert len(ids) == 2


def test_delete_then_404(api):
    imported(api, "gone")
    r = api.delete(path("gone"))
    assert r.status_code == 204 and r.content == b""
    assert_error(api.get(path("gone")), 404, "Ecs.0314")
    assert_error(api.delete(path("gone")), 404, "Ecs.0314")
    assert api.get(BASE).json()["keypairs"] == []
    imported(api, "gone")  # the name is free again


@pytest.mark.parametrize("headers, status", [
    ({}, 204),
    ({"OpenStack-API-Version": "compute 2.1"}, 202),
    ({"X-OpenStack-Nova-API-Version": "2.1"}, 202),
    ({"OpenStack-API-Version": "compute 2.2"}, 204),
    ({"X-OpenStack-Nova-API-Version": "2.10"}, 204),
    ({"OpenStack-API-Version": "volume 3.0, compute 2.1"}, 202),
    ({"OpenStack-API-Version": "compute 2.10", "X-OpenStack-Nova-API-Version": "2.1"}, 204),
    ({"OpenStack-API-Version": "compute latest"}, 204),
])
def test_delete_status_follows_microversion(api, headers, status):
    imported(api, "mv")
    r = api.delete(path("mv"), headers=headers)
    assert r.status_code == status, r.text
    assert api.get(path("mv")).status_code == 404


@pytest.mark.parametrize("raw", ["x" * 65, "x" * 300, "no.such", "a%2Fb", "%00"])
def test_unknown_or_impossible_names_in_path_are_404(api, raw):
    imported(api, "x" * 64)
    url = f"{BASE}/{raw}"
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    assert api.get(url).json()["error"]["code"] in ("Ecs.0314", "Common.0404")
    assert len(api.get(BASE).json()["keypairs"]) == 1


def test_names_with_spaces_round_trip(api):
    imported(api, "my key 1")
    imported(api, "under_score-and-dash")
    assert api.get(f"{BASE}/my%20key%201").json()["keypair"]["name"] == "my key 1"
    assert api.get(path("under_score-and-dash")).json()["keypair"]["name"] == "under_score-and-dash"
    assert api.get(f"{BASE}/my%20key").status_code == 404
    assert api.delete(f"{BASE}/my%20key%201").status_code == 204
    assert [k["keypair"]["name"] for k in api.get(BASE).json()["keypairs"]] == ["under_score-and-dash"]


def test_unsupported_method_is_405(api):
    assert_error(api.call("PUT", path("any"), {}), 405, "Common.0405")


# --- list and paging ----------------------------------------------------------------------------------------

NAMES = ["b", "a", "c d", "A", "e_1", "e-2", "Z9"]


def test_list_is_ordered_by_name(api):
    for n in NAMES:
        imported(api, n, RSA if n == "a" else ED25519)
    r = api.get(BASE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "keypairs_links" not in body
    items = [k["keypair"] for k in body["keypairs"]]
    assert [k["name"] for k in items] == sorted(NAMES)
    by_name = {k["name"]: k for k in items}
    assert by_name["a"] == {"fingerprint": RSA_FP, "name": "a", "type": "ssh", "public_key": RSA}


def test_paging_with_limit_and_marker(api):
    for n in NAMES:
        imported(api, n)
    seen: list[str] = []
    query = "limit=3"
    pages = 0
    while True:
        r = api.get(f"{BASE}?{query}")
        assert r.status_code == 200, r.text
        body = r.json()
        page = [k["keypair"]["name"] for k in body["keypairs"]]
        assert 0 < len(page) <= 3
        seen += page
        pages += 1
        links = body.get("keypairs_links")
        if not links:
            break
        assert links[0]["rel"] == "next"
        href = urlsplit(links[0]["href"])
        assert href.path == f"/v2.1/{api.pid}/os-keypairs"
        params = parse_qs(href.query)
        assert params["marker"] == [page[-1]] and params["limit"] == ["3"]
        query = href.query
    assert seen == sorted(NAMES) and pages == 3

    after = api.get(f"{BASE}?marker={quote('c d')}").json()["keypairs"]
    assert [k["keypair"]["name"] for k in after] == [n for n in sorted(NAMES) if n > "c d"]
    last = max(NAMES)
    assert api.get(f"{BASE}?marker={last}").json() == {"keypairs": []}
    exact = api.get(f"{BASE}?limit={len(NAMES)}").json()
    assert len(exact["keypairs"]) == len(NAMES) and "keypairs_links" not in exact


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "limit=0", "limit=1001", "limit=1.5",
                                   "marker=nope", "marker=", "marker=" + "m" * 70])
def test_bad_paging_parameters_are_400(api, query):
    imported(api, "only")
    assert_error(api.get(f"{BASE}?{query}"), 400, "Ecs.0005")


# --- per-user visibility and auth ---------------------------------------------------------------------------

def test_key_pairs_are_private_to_their_user(api, client, creds):
    imported(api, "mine", RSA)
    alice = other_user(client, creds)
    assert alice.pid == api.pid

    assert alice.get(BASE).json() == {"keypairs": []}
    assert_error(alice.get(path("mine")), 404, "Ecs.0314")
    assert_error(alice.delete(path("mine")), 404, "Ecs.0314")
    assert_error(alice.get(f"{BASE}?marker=mine"), 400, "Ecs.0005")

    # The same name is free for another user, and each sees only their own.
    theirs = imported(alice, "mine", ED25519)
    assert theirs["user_id"] == alice.creds["user_id"] != creds["user_id"]
    assert api.get(path("mine")).json()["keypair"]["fingerprint"] == RSA_FP
    assert alice.get(path("mine")).json()["keypair"]["fingerprint"] == ED25519_FP
    assert alice.delete(path("mine")).status_code == 204
    assert api.get(path("mine")).status_code == 200


def test_user_id_must_be_the_callers_own(api, client, creds):
    alice = other_user(client, creds)
    imported(alice, "hers")
    r = api.post(BASE, {"keypair": {"name": "planted", "public_key": ED25519, "user_id": alice.creds["user_id"]}})
    assert_error(r, 403, "Ecs.0003")
    assert alice.get(BASE).json()["keypairs"][0]["keypair"]["name"] == "hers"
    assert len(alice.get(BASE).json()["keypairs"]) == 1
    other = alice.creds["user_id"]
    assert_error(api.get(f"{BASE}?user_id={other}"), 403, "Ecs.0003")
    assert_error(api.get(f"{path('hers')}?user_id={other}"), 403, "Ecs.0003")
    assert_error(api.delete(f"{path('hers')}?user_id={other}"), 403, "Ecs.0003")
    assert alice.get(path("hers")).status_code == 200
    # Naming yourself is fine.
    assert imported(api, "own", user_id=creds["user_id"])["user_id"] == creds["user_id"]
    assert api.get(f"{BASE}?user_id={creds['user_id']}").json()["keypairs"][0]["keypair"]["name"] == "own"


def test_needs_a_token_and_the_token_project(api):
    assert_error(api.get(BASE, token=False), 401, "Common.0013")
    assert_error(api.post(BASE, {"keypair": {"name": "x"}}, token=False), 401, "Common.0013")
    wrong = BASE.replace("{pid}", "0" * 32)
    assert_error(api.get(wrong), 400, "Ecs.0023")
    assert_error(api.post(wrong, {"keypair": {"name": "x", "public_key": ED25519}}), 400, "Ecs.0023")
    assert api.get(BASE).json()["keypairs"] == []
