"""A bounded fuzz run: malformed and hostile requests over every route, token and AK/SK, raw sockets too.

    .venv/bin/python bench/fuzz.py                                  # 20,000 cases, at most 300 s, seed 1
    .venv/bin/python bench/fuzz.py --requests 50000 --seconds 600 --seed 7 --json /tmp/fuzz.json
    .venv/bin/python bench/fuzz.py --src /tmp/ecsd-head/src         # the server from another tree's src/

Starts its own `ecsd serve` (SQLite, simulated driver, ECSD_SIM_DELAY=0, temporary data directory, a
free port of 127.0.0.1), reads DATA_DIR/credentials.json, takes a token, creates servers, key pairs and
metadata through the API, then sends ``--requests`` cases (or stops after ``--seconds``) over
``--concurrency`` connections at a time, one connection per case. The cases come from one RNG seeded
with ``--seed`` (the same seed gives the same cases; only the ids the server chose differ):

* route cases, over the routes of ``ecsd.app.create_app(...).routes`` walked at run time (each route
  twice with a token and twice signed before any random pick): the route's method or another one,
  path parameters filled with real ids or garbage (invalid UTF-8, percent noise, 9 KB), absurd query
  strings, bodies mutated from a valid template per route (a wrong type for any field, a field
  dropped or added, deep JSON, huge numbers and strings, duplicate keys, invalid UTF-8, truncated
  JSON), authenticated by token, by a valid SDK-HMAC-SHA256 signature over exactly the bytes sent
  (``ecsd.http.signing``), by broken credentials, or not at all;
* raw cases (``--raw-share``): broken request lines and header syntax, headers of 1-4 MB, bad
  Content-Length, chunked garbage, bodies cut short then a disconnect, slow senders, pipelined
  garbage, invalid bytes in paths and queries, protocol upgrades.

Meanwhile a prober process (bench/harness.py, from 127.0.0.2) opens /readyz and /healthz every
0.1 s with a 5 s timeout; an answer slower than 1 s (or none) is a stall. Counted: statuses by class;
every status >= 500 with the request that caused it (the JSON report's ``findings``); responses without
X-Request-Id; status >= 400 without the ECS ``{"error": {"code", "message"}}`` body (uvicorn's own
plain-text "Invalid HTTP request received." apart); cases without any response, those the server may
close or leave waiting (a broken request line, a Content-Length it still waits for) apart from the
others; ERROR lines and tracebacks in the server's log. Exit status 0 only when there were 0
responses >= 500, 0 stalls over 1 s, 0 responses without X-Request-Id and the server is still alive
(``--strict`` adds: no unexpected missing response, no non-ECS error body, no ERROR line).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import os
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as h

PASS = "Fuzz-Passw0rd-9x!"
UVICORN_400 = b"Invalid HTTP request received."
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDw0Pq0ZJmdPwn8m6k4lGO5M7qNpMPgBvr0q3qkRMfuM fuzz@bench"


@dataclass
class Case:
    label: str                  # "METHOD /route/{template}" or "raw:<kind>"
    data: bytes | list          # what goes on the wire, or (piece, pause) pairs for a slow sender
    expect: str = "response"    # response | maybe (the server may close, or wait) | none (the client aborts)
    head: bool = False
    responses: int = 1          # > 1: pipelined requests
    abort_after: float | None = None
    auth: str = ""              # token | aksk | aksk-bad | token-bad | none, "/" the body mutation


# --- the world: credentials and real ids the cases draw from ----------------------------------------------

class World:
    def __init__(self, srv: h.Server) -> None:
        self.port, c = srv.port, srv.creds
        self.ready = b"/readyz"          # /healthz when --exclude covers readyz (raw cases follow it)
        self.creds, self.pid, self.ak, self.sk = c, c["project_id"], c.get("ak", ""), c.get("sk", "")
        with h.api(self.port, c) as (x, self.token):
            # What X-Subject-Token carries (DELETE /v3/auth/tokens revokes it): never the run's own token.
            r = x.post("/v3/auth/tokens", json=h.token_body(c, c["password"]))
            self.spare = r.headers["X-Subject-Token"]
            self.images = {i["name"]: i["id"] for i in x.get("/v2/cloudimages").json()["images"]}
            self.image_ids = sorted(self.images.values())
            flavors = x.get(f"/v1/{self.pid}/cloudservers/flavors").json()["flavors"]
            self.flavors = [f["id"] for f in flavors][:8]
            job_id, ids = h.create_servers(x, self.pid, self.images["Standard_Ubuntu_22.04_latest"], 16)
            self.servers, self.victims = ids[:12], ids[12:]     # victims: the delete route's real ids
            stop = {"os-stop": {"servers": [{"id": i} for i in ids[:4]]}}
            r = x.post(f"/v1/{self.pid}/cloudservers/action", json=stop)
            self.job_ids = [job_id, h.wait_job(x, self.pid, r.json()["job_id"])["job_id"]]
            self.keypairs = ["fuzz-kp", "fuzz-kp2"]
            for name in self.keypairs:
                x.post(f"/v2.1/{self.pid}/os-keypairs", json={"keypair": {"name": name}})
            self.meta_keys = ["fuzz", "k2"]
            for sid in ids[:8]:
                x.post(f"/v1/{self.pid}/cloudservers/{sid}/metadata", json={"metadata": {"fuzz": "1", "k2": "v"}})
            srv_path = f"/v1/{self.pid}/cloudservers/{ids[0]}"
            disks = x.get(srv_path + "/block_device").json().get("volumeAttachments", [])
            self.volumes = [v.get("volumeId") or v.get("id") for v in disks] or [str(uuid.uuid4())]
            nics = x.get(srv_path + "/os-interface").json().get("interfaceAttachments", [])
            self.ports = [i.get("port_id", "") for i in nics] or [str(uuid.uuid4())]
            ips = x.get(f"/v2.1/{self.pid}/servers/{ids[0]}/ips").json().get("addresses", {})
            self.networks = list(ips) or ["net"]

    def real(self, param: str, rng: random.Random) -> str:
        pools = {"project_id": [self.pid], "tenant_id": [self.pid], "ref": [self.pid, self.creds["project_name"]],
                 "server_id": self.servers, "image_id": self.image_ids, "flavor_id": self.flavors,
                 "keypair_name": self.keypairs, "volume_id": self.volumes, "job_id": self.job_ids,
                 "key": self.meta_keys, "port_id": self.ports, "network": self.networks}
        return rng.choice(pools.get(param) or [self.pid])


# --- hostile values ---------------------------------------------------------------------------------------

GARBAGE_PARAMS = [
    b"", b"x", b"0", b"-1", b"null", b"..", b"%2e%2e", b"%2F", b"%00", b"%ff%fe", b"\xff\xfe", b"\xc0\xaf",
    b"a" * 300, b"a" * 9000, b"{project_id}", b"%7Bproject_id%7D", b"%", b"%zz", b"%E2%82%AC", b"%F0%9F%98%80",
    b"%27%3B%20DROP%20TABLE%20servers%3B--", b"..%2F..%2Fetc%2Fpasswd", b"detail", b"action", b"delete",
    b"limits", b"%20", b"~", b"00000000-0000-0000-0000-000000000000"]
QUERY_NAMES = [
    "limit", "offset", "marker", "name", "status", "flavor", "image", "ip", "ip_eq", "server_id", "reservation_id",
    "tags", "not-tags", "changes-since", "availability_zone", "enabled", "user_id", "minDisk", "minRam", "min_disk",
    "min_ram", "__platform", "__imagetype", "id", "sort_key", "sort_dir", "visibility", "__os_type", "not-a-param"]
QUERY_VALUES = [
    b"", b"-1", b"0", b"1", b"1001", b"99999999999999999999999999", b"1e9", b"1.5", b"NaN", b"0x10", b"%ff", b"%",
    b"%zz", b"%00", b"true", b"a" * 5000, b"%E2%80%AE", b"2024-13-45T99:99:99Z", b"'%20OR%201=1", b"ACTIVE",
    b"SHUTOFF", b"%5B%5D", b"[]", b"\xff"]
SCALARS = [None, True, False, 0, -1, 1.5, 2**63, -2**63 - 1, 10**30, 1e308, "", " ", "\u0000", "\ud83d\ude00" * 3,
           "../../etc", "' OR 1=1 --", [], [None], {}, {"a": {"b": []}}, "1"]


def hostile_value(rng: random.Random, w: World) -> Any:
    pick = rng.randrange(len(SCALARS) + 3)
    if pick < len(SCALARS):
        return copy.deepcopy(SCALARS[pick])          # a fresh one: mutations may add to it later
    return ["x" * rng.choice((65, 300, 70_000)), str(uuid.UUID(int=rng.getrandbits(128))),
            rng.choice(w.servers + w.image_ids)][pick - len(SCALARS)]


def templates(method: str, path: str, w: World, rng: random.Random) -> Any:
    """A valid body for the POST/PUT routes that take one (None: no template, a generic dict is used)."""
    img = rng.choice(w.image_ids)
    refs = [{"id": i} for i in rng.sample(w.servers, rng.randint(1, 3))]
    ud = base64.b64encode(b"#!/bin/sh\necho fuzz\n").decode()
    if path == "/v3/auth/tokens":
        return h.token_body(w.creds, rng.choice((w.creds["password"], "wrong-password")))
    if path.endswith("/cloudservers") and method == "POST":
        return {"server": {"name": "fz", "imageRef": img, "flavorRef": rng.choice(w.flavors), "vpcid": h.VPC,
                           "nics": [{"subnet_id": h.SUBNET, "ip_address": ""}],
                           "root_volume": {"volumetype": "SSD", "size": 40},
                           "data_volumes": [{"volumetype": "SSD", "size": 10}], "key_name": "fuzz-kp",
                           "adminPass": PASS, "user_data": ud, "count": 1, "availability_zone": "eu-de-01",
                           "metadata": {"a": "b"}, "description": "d"}, "dry_run": rng.random() < 0.5}
    if path.endswith("/cloudservers/delete"):
        return {"servers": [{"id": rng.choice(w.victims)}], "delete_publicip": False, "delete_volume": True}
    if path.endswith("/cloudservers/action"):
        kind = rng.choice(("os-start", "os-stop", "reboot"))
        return {kind: {"servers": refs, **({} if kind == "os-start" else {"type": "SOFT"})}}
    if path.endswith("/server-name"):
        return {"name": "fz-batch", "dry_run": False, "servers": refs}
    if path.endswith("/cloudservers/{server_id}") and method == "PUT":
        return {"server": {"name": "fz2", "description": "d", "hostname": "h"}}
    if path.endswith(("/changeos", "/reinstallos")):
        meta = {"BYOL": "false", "__system__encrypted": "0"}
        if path.startswith("/v2/"):
            meta["user_data"] = ud
        body = {"keyname": "fuzz-kp", "userid": w.creds.get("user_id"), "mode": "withStopServer", "metadata": meta}
        if rng.random() < 0.5:
            body = {"adminpass": PASS, "mode": "withStopServer", "metadata": meta}
        return {"os-change": dict(body, imageid=img)} if path.endswith("/changeos") else {"os-reinstall": body}
    if path.endswith(("/metadata", "/metadata/{key}")):
        return {"meta": {"fuzz": "v"}} if path.endswith("{key}") else {"metadata": {"fuzz": "2", "x-y": "z"}}
    if path.endswith("/os-keypairs"):
        return {"keypair": {"name": f"fz{rng.randrange(10**6)}", "type": "ssh",
                            **({"public_key": PUBKEY} if rng.random() < 0.5 else {})}}
    if path.endswith("/servers/{server_id}/action"):
        return rng.choices([{"os-start": None}, {"os-stop": None}, {"reboot": {"type": "SOFT"}}, {"lock": None},
                            {"unlock": None}, {"rebuild": {"imageRef": img, "adminPass": PASS, "name": "rb"}}],
                           [3, 3, 2, 1, 4, 3])[0]
    return None


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    return [prefix] + [p for k, v in items for p in _paths(v, (*prefix, k))]


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def mutate_body(doc: Any, rng: random.Random, w: World) -> tuple[bytes, str]:
    """A mutated body and the mutation's name: structural (on the JSON value) or textual (on its bytes)."""
    doc = json.loads(json.dumps(doc)) if doc is not None else {"x": 1}
    kind = rng.choices(["valid", "type", "drop", "unknown", "huge", "deep", "biglist", "text"],
                       [15, 32, 10, 8, 5, 5, 4, 21])[0]
    paths = _paths(doc)
    if kind == "type":
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            doc = _set(doc, rng.choice(paths), hostile_value(rng, w))
            paths = _paths(doc)
    elif kind == "drop" and len(paths) > 1:
        doc = _set(doc, rng.choice(paths[1:]), None, delete=True)
    elif kind == "unknown":
        dicts = [p for p in paths if isinstance(_get(doc, p), dict)]
        if dicts:
            _get(doc, rng.choice(dicts))[rng.choice(("zz", "__proto__", "", "id", "count"))] = hostile_value(rng, w)
    elif kind == "huge":
        doc = _set(doc, rng.choice(paths), "A" * rng.choice((70_000, 200_000, 300_000)))
    elif kind == "deep":
        n = rng.choice((50, 200, 1000, 5000, 100_000))
        raw = json.dumps(doc).replace("1", "[" * n + "]" * n, 1) if rng.random() < 0.3 else "[" * n + "]" * n
        return raw.encode(), f"deep{n}"
    elif kind == "biglist":
        doc = _set(doc, rng.choice(paths), [{"id": rng.choice(w.servers)}] * rng.choice((101, 1000, 8000)))
    elif kind == "text":
        return textual(json.dumps(doc).encode(), rng), "text"
    return json.dumps(doc).encode(), kind


NUMBERS = [b"1" + b"0" * 400, b"1e999", b"-1e999", b"NaN", b"Infinity", b"-0", b"0.0000000000000000001",
           b"123456789012345678901234567890"]


def textual(raw: bytes, rng: random.Random) -> bytes:
    k = rng.randrange(14)
    if k == 8:      # huge or non-JSON numbers in place of the first few values
        return re.sub(rb"(: )(\"[^\"]*\"|\d+|true|false|null)", lambda m: m.group(1) + rng.choice(NUMBERS), raw,
                      count=3)
    return [raw[:rng.randrange(len(raw) + 1)], b"", b"   ", b"\xef\xbb\xbf" + raw, raw + b"garbage",
            raw.replace(b'"', b'"\xff', 1), raw.replace(b":", b': "\\ud800",', 1), b'{"a":1,"a":2,' + raw[1:], b"",
            b"\x00" * 16, b"<xml/>", b"a=1&b=2", raw.replace(b",", b",,", 1), b"[" + raw + b"]"][k]


# --- route cases ------------------------------------------------------------------------------------------

def fill(template: str, w: World, rng: random.Random) -> bytes:
    def one(m: re.Match) -> bytes:
        name = m.group(1).decode()
        if rng.random() < (0.9 if name == "project_id" else 0.6):
            v = w.real(name, rng).encode()
            return v.upper() if rng.random() < 0.03 else v
        return rng.choice(GARBAGE_PARAMS)
    return re.sub(rb"\{(\w+)\}", one, template.encode())


def query(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.45:
        return b""
    if r < 0.5:
        return b"?" + b"&".join(b"limit=%d" % i for i in range(rng.choice((1000, 5000))))
    if r < 0.53:
        return b"?name=" + b"x" * rng.choice((50_000, 60_000, 500_000))
    if r < 0.56:
        return rng.choice((b"?", b"?&&&", b"?=", b"?%", b"?a=%zz", b"?%ff=%fe", b"?a=1&a=2&a=", b"?#frag"))
    pairs = [rng.choice(QUERY_NAMES).encode() + b"=" + rng.choice(QUERY_VALUES) for _ in range(rng.randint(1, 4))]
    return b"?" + b"&".join(pairs)


def bad_auth(w: World, rng: random.Random, kind: str) -> list:
    if kind == "token-bad":
        return [("X-Auth-Token", rng.choice([b"x", b"ecsd_" + b"A" * 64, b"A" * 20_000, b"\xff\xfe", b"null",
                                             w.token.encode()[:-1], w.token.encode() + b" "]))]
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + rng.choice((0, -3600, 3600))))
    sig = f"{rng.getrandbits(256):064x}"
    auths = [f"SDK-HMAC-SHA256 Access={w.ak}, SignedHeaders=host;x-sdk-date, Signature={sig}",
             f"SDK-HMAC-SHA256 Access=NOPE, SignedHeaders=host;x-sdk-date, Signature={sig}", "SDK-HMAC-SHA256",
             "SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature=", f"SDK-HMAC-SM3 Access={w.ak}, Signature={sig}",
             f"SDK-HMAC-SHA256 Access={w.ak}, SignedHeaders=HOST;;X, Signature=zz", "Basic Zm9vOmJhcg==",
             "SDK-HMAC-SHA256 " + "Access=a," * 5000, f"SDK-HMAC-SHA256 Access={w.ak},,Access={w.ak}"]
    hs = [("X-Sdk-Date", rng.choice((date, "yesterday", "20241345T999999Z", ""))),
          ("Authorization", rng.choice(auths))]
    return hs + ([("X-Security-Token", "t")] if rng.random() < 0.2 else [])


API_VERSIONS = ["compute 2.99999999999999999999", "compute x.y", "compute latest", "compute",
                "compute 2.1, compute 3"]


def route_case(w: World, routes: list, rng: random.Random, n: int) -> Case:
    method, template = routes[n % len(routes)] if n < 4 * len(routes) else rng.choice(routes)
    label = f"{method} {template}"
    r = rng.random()
    if r < 0.06:
        method = rng.choice(("PATCH", "DELETE", "PUT", "POST", "GET", "OPTIONS", "TRACE"))
    elif r < 0.09:
        method = "HEAD"
    target = fill(template, w, rng) + query(rng)
    headers: list = []
    body, mutation = b"", ""
    if method in ("POST", "PUT", "PATCH") or rng.random() < 0.05:
        body, mutation = mutate_body(templates(method, template, w, rng), rng, w)
        ctype = rng.choice(["application/json"] * 8 + ["text/plain", "application/json; charset=latin-1"])
        headers.append(("Content-Type", ctype))
    extra = rng.random()
    if extra < 0.05:
        token = rng.choice(["", "a" * 300, "\u00e9", "x" * 64, str(uuid.uuid4())])
        headers.append(("X-Client-Token", token.encode()))
    elif extra < 0.1:
        headers.append(("OpenStack-API-Version", rng.choice(API_VERSIONS)))
    elif extra < 0.12 or template == "/v3/auth/tokens" and extra < 0.8:
        headers.append(("X-Subject-Token", rng.choice([w.spare, w.spare, "x", "A" * 20_000, "\u00e9"]).encode()))
    elif extra < 0.13:
        headers.append(("X-Big", "b" * rng.choice((60_000, 300_000))))
    if n < 4 * len(routes):
        kind = "token" if n < 2 * len(routes) else "aksk"
    else:
        kind = rng.choices(["token", "aksk", "aksk-bad", "token-bad", "none"], [35, 35, 10, 10, 10])[0]
    if kind == "token":
        headers.append(("X-Auth-Token", w.token))
    elif kind == "aksk":
        headers = h.signed(w.port, w.ak, w.sk, w.pid, method, target, headers, body)
    elif kind != "none":
        headers += bad_auth(w, rng, kind)
    weird = any(b > 0x7e or b < 0x21 for b in target)      # bytes a parser may refuse: it may also close
    return Case(label, h.request_bytes(method, target, headers, body, port=w.port), head=method == "HEAD",
                expect="maybe" if weird else "response", auth=f"{kind}{'/' + mutation if mutation else ''}")


# --- raw cases --------------------------------------------------------------------------------------------

BAD_LINES = [b"GARBAGE", b"GET", b"GET / HTTP/1.1 extra", b"GET / HTTP/9.9", b"", b"GET /\x00 HTTP/1.1",
             b"PRI * HTTP/2.0\r\n\r\nSM", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"get /healthz HTTP/1.1",
             b"FOO /healthz HTTP/1.1", b"GET http://evil.example/healthz HTTP/1.1", b"OPTIONS * HTTP/1.1",
             b"CONNECT 127.0.0.1:1 HTTP/1.1", b"G" * 70_000 + b" / HTTP/1.1", b"GET / HTTP/1.0"]
BAD_HEADERS = [b"NoColon\r\n", b"Host : x\r\n", b"X(y): 1\r\n", b"X-A: 1\r\n folded\r\n", b"X-N: a\x00b\r\n",
               b"X-C: a\rb\r\n", b"".join(b"X-%d: 1\r\n" % i for i in range(10_000)), b"Host: other\r\n",
               b"\xff\xfe: \xff\r\n", b": empty-name\r\n", b"X-Auth-Token: a\r\nX-Auth-Token: b\r\n"]
UPGRADES = [(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n"),
            b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n",
            b"Expect: 100-continue\r\n"]
RAW_KINDS = {"line": 16, "header": 16, "huge": 2, "length": 14, "chunked": 12, "truncated": 8, "slow": 3,
             "pipeline": 12, "path": 12, "upgrade": 5}


def raw_case(w: World, rng: random.Random, budget: dict) -> Case:
    host = f"Host: {h.HOST}:{w.port}\r\n".encode()
    tok = f"X-Auth-Token: {w.token}\r\n".encode()
    pid = w.pid.encode()
    meta_path = f"/v1/{w.pid}/cloudservers/{rng.choice(w.servers)}/metadata".encode()
    body = b'{"metadata": {"raw": "1"}}'
    post = b"POST " + meta_path + b" HTTP/1.1\r\n" + host + tok + b"Content-Type: application/json\r\n"
    full = post + b"Content-Length: %d\r\n\r\n" % len(body) + body
    kind = rng.choices(list(RAW_KINDS), list(RAW_KINDS.values()))[0]
    if kind in ("huge", "slow") and budget[kind] <= 0:        # the costly ones are capped per run
        kind = "header"
    if kind == "line":
        line = rng.choice([*BAD_LINES, bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2048)))])
        return Case("raw:line", line + b"\r\n" + host + b"\r\n", expect="maybe")
    if kind == "header":
        first = rng.choice([b"GET /healthz", b"GET /v1/" + pid + b"/cloudservers/detail"]) + b" HTTP/1.1\r\n"
        data = first + (b"" if rng.random() < 0.2 else host) + tok + rng.choice(BAD_HEADERS) + b"\r\n"
        return Case("raw:header", data, expect="maybe")
    if kind == "huge":
        budget["huge"] -= 1
        size = rng.choice((1, 2, 4)) * 2**20
        hdr = b"X-Huge: " + b"h" * size + b"\r\n" if rng.random() < 0.5 else b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(size // 1000))
        return Case("raw:huge-headers", b"GET /healthz HTTP/1.1\r\n" + host + hdr + b"\r\n", expect="maybe")
    if kind == "length":
        cl = rng.choice([b"-1", b"abc", b"1e3", b"99999999999999999999", b" 5", b"0x10", b"", b"5, 6"])
        data, expect, abort = rng.choice([
            (post + b"Content-Length: " + cl + b"\r\n\r\n" + body, "maybe", None),
            (post + b"Content-Length: 5\r\nContent-Length: 26\r\n\r\n" + body, "maybe", None),
            (post + b"Content-Length: 26\r\nTransfer-Encoding: chunked\r\n\r\n" + body, "maybe", None),
            (post + b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body, "none", 0.3),   # then we leave
            (post + b"Content-Length: 5\r\n\r\n" + body, "maybe", None),
            (post + b"Content-Length: 300000000\r\n\r\n" + body, "maybe", None)])
        return Case("raw:content-length", data, expect=expect, abort_after=abort,
                    responses=2 if expect == "maybe" else 1)
    if kind == "chunked":
        chunks = rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffffff\r\n", b'5;ext=1\r\n{"a":\r\n0\r\n\r\n',
                             b"1a\r\n" + body + b"\r\n0\r\nX-Trailer: \xff\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n",
                             b"1a\r\n" + body + b"\r\n0\r\n\r\n", b"-1\r\n\r\n"])
        te = rng.choice([b"chunked", b"gzip, chunked", b"chunked, chunked", b"xchunked", b"CHUNKED"])
        return Case("raw:chunked", post + b"Transfer-Encoding: " + te + b"\r\n\r\n" + chunks, expect="maybe")
    if kind == "truncated":
        return Case("raw:truncated", full[:rng.randrange(len(full) - 1)], expect="none",
                    abort_after=rng.choice((0, 0.05)))
    if kind == "slow":
        budget["slow"] -= 1
        step = max(1, len(full) // 8)
        return Case("raw:slow", [(full[i:i + step], 0.25) for i in range(0, len(full), step)])
    if kind == "pipeline":
        good = b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n"
        choices = [good, good, b"GET " + w.ready + b" HTTP/1.1\r\n" + host + b"\r\n", full, b"GARBAGE\r\n\r\n",
                   b"\r\n", b"GET / HTTP/1.1\r\n\r\n"]
        parts = [rng.choice(choices) for _ in range(rng.randint(2, 6))]
        return Case("raw:pipeline", b"".join(parts), expect="maybe", responses=len(parts))
    if kind == "path":
        p = rng.choice([b"/v1/\xff\xfe/cloudservers", b"/healthz%", b"/%zz", b"/v1/%c0%af",
                        b"/v2/cloudimages?%ff=%fe&&=",
                        b"/v1/" + pid + b"/cloudservers/\xe2\x82/metadata", b"//healthz", b"/healthz/.." + w.ready,
                        b"/" + b"a/" * 20_000, b"*", b"/v2.1/" + pid + b"/servers?limit=\xff"])
        return Case("raw:path", b"GET " + p + b" HTTP/1.1\r\n" + host + tok + b"\r\n", expect="maybe")
    path = rng.choice([b"/healthz", b"/v1/" + pid + b"/cloudservers/detail", meta_path])
    return Case("raw:upgrade", b"GET " + path + b" HTTP/1.1\r\n" + host + tok + rng.choice(UPGRADES) + b"\r\n",
                expect="maybe")


def cases(w: World, routes: list, rng: random.Random, raw_share: float):
    budget = {"huge": 24, "slow": 40}
    n = 0
    while True:
        raw = n >= 4 * len(routes) and rng.random() < raw_share
        yield n, raw_case(w, rng, budget) if raw else route_case(w, routes, rng, n)
        n += 1


# --- running and counting ---------------------------------------------------------------------------------

def _bump(d: dict, key: str, by: int = 1) -> None:
    d[key] = d.get(key, 0) + by


class Tally:
    COUNTS = ("sent", "classes", "statuses", "fivexx", "missing_rid", "missing_rid_uvicorn", "uvicorn_400",
              "non_ecs", "no_response_entitled", "no_response_unexpected", "aborted", "slow")

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.sent = self.fivexx = self.missing_rid = self.missing_rid_uvicorn = self.uvicorn_400 = 0
        self.aborted = self.slow = 0
        self.classes: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.non_ecs: dict[str, int] = {}            # >= 400 without the ECS error body (uvicorn's 400 apart)
        self.no_response_entitled: dict[str, int] = {}
        self.no_response_unexpected: dict[str, int] = {}
        self.routes: dict[str, dict[str, int]] = {}
        self.findings: list[dict] = []               # every status >= 500 (the first 200)
        self.examples: dict[str, list] = {k: [] for k in (
            "missing_request_id", "non_ecs_body", "no_response_entitled", "no_response_unexpected", "slow")}

    def _req(self, case: Case, n: int) -> dict:
        data = case.data if isinstance(case.data, bytes) else b"".join(p for p, _ in case.data)
        return {"n": n, "label": case.label, "auth": case.auth, "bytes": len(data),
                "request": h.excerpt(data.replace(self.token, b"<token>"), 700)}

    def _example(self, key: str, case: Case, n: int, **more: Any) -> None:
        if len(self.examples[key]) < 15:
            self.examples[key].append({**self._req(case, n), **more})

    def record(self, n: int, case: Case, rep: h.Reply) -> None:
        self.sent += 1
        route = self.routes.setdefault(case.label, {})
        if rep.status is None:
            key = rep.error or "error"
            _bump(route, key)
            if case.expect == "none":
                self.aborted += 1
            elif case.expect == "maybe":
                _bump(self.no_response_entitled, key)
                self._example("no_response_entitled", case, n, error=key)
            else:
                _bump(self.no_response_unexpected, key)
                self._example("no_response_unexpected", case, n, error=key)
            return
        statuses = [rep.status, *rep.extra]
        for status in statuses:
            _bump(self.classes, f"{status // 100}xx")
            _bump(self.statuses, str(status))
        _bump(route, str(rep.status))
        rid = rep.header("x-request-id")
        if any(s >= 500 for s in statuses):
            self.fivexx += sum(1 for s in statuses if s >= 500)
            if len(self.findings) < 200:
                self.findings.append({**self._req(case, n), "status": rep.status, "pipelined_statuses": rep.extra,
                                      "response": h.excerpt(rep.body, 400), "request_id": rid})
        plain = (rep.header("content-type") or "").startswith("text/plain")
        uvicorn = rep.status == 400 and not rid and (rep.body.strip() == UVICORN_400 or (case.head and plain))
        self.uvicorn_400 += uvicorn
        if not rid:
            self.missing_rid += 1
            self.missing_rid_uvicorn += uvicorn
            if not uvicorn:
                self._example("missing_request_id", case, n, status=rep.status, response=h.excerpt(rep.body, 200))
        if rep.status >= 400 and not uvicorn and not case.head and not h.is_ecs_error(rep.body):
            _bump(self.non_ecs, str(rep.status))
            self._example("non_ecs_body", case, n, status=rep.status, response=h.excerpt(rep.body, 200))
        if rep.seconds > 1.0 and case.label != "raw:slow":
            self.slow += 1
            self._example("slow", case, n, status=rep.status, seconds=round(rep.seconds, 3))


async def run_cases(w: World, routes: list, a: argparse.Namespace, tally: Tally) -> float:
    gen = cases(w, routes, random.Random(a.seed), a.raw_share)
    start = time.monotonic()

    async def worker() -> None:
        while time.monotonic() < start + a.seconds:
            n, case = next(gen)
            if n >= a.requests:
                return
            timeout = a.timeout if case.expect == "response" else min(a.timeout, 3.0)
            rep = await h.exchange(w.port, case.data, timeout, head=case.head, read=case.expect != "none",
                                   responses=case.responses, abort_after=case.abort_after)
            tally.record(n, case, rep)

    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    return time.monotonic() - start


def final_checks(w: World) -> dict[str, Any]:
    """After the run: still ready, and the run's token still reads a server."""
    try:
        with httpx.Client(base_url=f"http://{h.HOST}:{w.port}", timeout=10) as x:
            return {"readyz": x.get("/readyz").status_code, "token_get": x.get(
                f"/v1/{w.pid}/cloudservers/{w.servers[0]}", headers={"X-Auth-Token": w.token}).status_code}
    except httpx.HTTPError as exc:
        return {"error": repr(exc)}


def print_report(r: dict[str, Any]) -> None:
    t = r["counts"]
    print(f"\nfuzz: {t['sent']:,} cases in {r['seconds']:.0f} s ({t['sent'] / max(r['seconds'], 1e-9):,.0f}/s), "
          f"seed {r['seed']}, {r['routes_covered']}/{r['routes_total']} routes, concurrency {r['concurrency']}")
    log = r["log"]

    def total(d: dict) -> str:
        return f"{sum(d.values())} {d or ''}"

    rows = [("responses by class", " ".join(f"{k}:{v:,}" for k, v in sorted(t["classes"].items()))),
            ("status >= 500", t["fivexx"]),
            ("missing X-Request-Id", f"{t['missing_rid']} (uvicorn's 400 among them: {t['missing_rid_uvicorn']})"),
            ("uvicorn plain-text 400", t["uvicorn_400"]),
            (">= 400 without ECS error body", total(t["non_ecs"])),
            ("no response, server entitled", total(t["no_response_entitled"])),
            ("no response, unexpected", total(t["no_response_unexpected"])),
            ("aborted by the client (by design)", t["aborted"]),
            ("answers slower than 1 s", t["slow"])]
    for path, p in r["probes"].items():
        rows.append((f"probe {path}", (f"n={p['n']} p50={h.ms(p['p50_ms'], 5)} ms p99={h.ms(p['p99_ms'], 5)} ms "
                                       f"max={h.ms(p['max_ms'], 5)} ms stalls>1s={p['stalls_over_1s']} "
                                       f"{p['statuses']}")))
    rows += [("server log", (f"{log['error_lines']} ERROR lines, {log['tracebacks']} tracebacks "
                             f"{log['exceptions']}")),
             ("server alive at the end", f"{r['server_alive']} {r['final']}"),
             ("other processes' CPU (cores)", r["cpu"]["foreign_cores"])]
    for k, v in rows:
        print(f"  {k:<36} {v}")
    seen = set()
    for f in r["findings"]:
        if (f["label"], f["status"]) not in seen:          # one line per route and status
            seen.add((f["label"], f["status"]))
            print(f"  5xx case {f['n']} {f['label']} [{f['auth']}] -> {f['status']} {f['response'][:100]}")
    print("PASS" if r["passed"] else "FAIL: " + "; ".join(r["failed"]))


def verdict(report: dict[str, Any], strict: bool) -> list[str]:
    c = report["counts"]
    stalls = sum(p["stalls_over_1s"] for p in report["probes"].values())
    checks = [(c["fivexx"], f"{c['fivexx']} responses >= 500"), (stalls, f"{stalls} probe stalls over 1 s"),
              (c["missing_rid"], f"{c['missing_rid']} responses without X-Request-Id"),
              (not report["server_alive"], "the server died")]
    if strict:
        unexpected, non_ecs = sum(c["no_response_unexpected"].values()), sum(c["non_ecs"].values())
        checks += [(unexpected, f"{unexpected} cases without a response"),
                   (non_ecs, f"{non_ecs} errors without the ECS body"),
                   (report["log"]["error_lines"], f"{report['log']['error_lines']} ERROR lines in the log")]
    return [message for bad, message in checks if bad]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000, help="cases to send (a pipelined case is one)")
    ap.add_argument("--seconds", type=float, default=300.0, help="stop sending after this long (max 3600)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--timeout", type=float, default=10.0, help="client timeout of a case that must be answered")
    ap.add_argument("--raw-share", type=float, default=0.15, help="share of raw-socket cases")
    ap.add_argument("--exclude", help="skip routes whose 'METHOD /path' matches this regular expression")
    ap.add_argument("--probe", action="append", help="a path the prober opens (default /readyz and /healthz)")
    ap.add_argument("--strict", action="store_true", help="also fail on missing responses, non-ECS error "
                                                          "bodies and ERROR lines in the server log")
    ap.add_argument("--src", help="run the server (and read the routes) from this src/ directory")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the server to core 0 and clients to core 1")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--log", help="keep the server's log here")
    a = ap.parse_args()
    a.seconds = min(max(a.seconds, 1.0), 3600.0)
    a.concurrency = max(1, min(a.concurrency, 64))
    if a.src:
        sys.path.insert(0, os.path.abspath(a.src))
    h.overall_alarm(a.seconds + 240)
    server_cpus, client_cpus = h.cores(not a.no_pin)
    srv = h.Server({}, cpus=server_cpus, label="fuzz", src=a.src)
    prober = None
    report: dict[str, Any] = {"seed": a.seed, "concurrency": a.concurrency, "requested": a.requests,
                              "exclude": a.exclude, "src": a.src}
    try:
        srv.wait_ready()
        routes = [r for r in h.routes() if not (a.exclude and re.search(a.exclude, f"{r[0]} {r[1]}"))]
        w = World(srv)
        if a.exclude and re.search(a.exclude, "GET /readyz"):
            w.ready = b"/healthz"
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        prober = h.Prober(srv.port, a.seconds + 60, 0.1, 5.0, paths=tuple(a.probe or ("/readyz", "/healthz")),
                          cpus=client_cpus)
        tally, watch = Tally(w.token), h.CpuWatch(srv.proc.pid)
        report["seconds"] = asyncio.run(run_cases(w, routes, a, tally))
        report["probes"] = {p: h.probe_summary(s, 5.0) for p, s in prober.finish(wait=0).items()}
        prober = None
        report["cpu"] = watch.stop()
        report["server_alive"] = srv.alive
        report["final"] = final_checks(w) if srv.alive else {}
        report["routes_total"] = len(routes)
        report["routes_covered"] = sum(1 for m, p in routes if f"{m} {p}" in tally.routes)
        report["counts"] = {k: getattr(tally, k) for k in Tally.COUNTS}
        report["findings"], report["examples"], report["per_route"] = tally.findings, tally.examples, tally.routes
    except Exception as exc:  # noqa: BLE001 - a server that does not start (or a broken setup) ends the run
        report["error"] = repr(exc)
    finally:
        if prober is not None:
            prober.finish(wait=0)
        srv.stop()
        report["log"] = h.scan_log(srv.log_path)
        srv.remove(keep_log_to=a.log)
    if "error" in report:
        print(f"fuzz run failed: {report['error']} (server log: {report['log']})", file=sys.stderr)
        return 2
    report["failed"] = verdict(report, a.strict)
    report["passed"] = not report["failed"]
    print_report(report)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (h.RunTimeout, KeyboardInterrupt) as exc:
        print(f"stopped: {exc or 'interrupted'}", file=sys.stderr)
        raise SystemExit(2) from None
