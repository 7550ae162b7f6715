"""GET /openapi.json: a valid OpenAPI document, generated from the route table and the handlers'
declarations (src/ecsd/http/openapi.py), that cannot drift from what is served; and a bounded
property-based run of schemathesis against a real ``ecsd serve`` that holds the service to it."""

from __future__ import annotations

import os
import re
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route

import ecsd
from ecsd.app import create_app
from ecsd.config import Settings
from ecsd.http import nova, openapi
from ecsd.http.core import api_doc
from tests import support as s
from tests.procs import Client, Proc, read_json

BODY_METHODS = {"POST", "PUT", "PATCH"}
# The property-based run: examples per operation (half positive, half negative data), reproducible.
EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _app():
    return create_app(Settings(data_dir="/nonexistent-not-started"))


def _served(routes, prefix: str = "") -> set[tuple[str, str]]:
    """(METHOD, path) of every route, read from the route table itself (HEAD left out, as GET's twin)."""
    found = set()
    for route in routes:
        if isinstance(route, Mount):
            found |= _served(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            methods = set(getattr(route, "emulator_handlers", None) or route.methods or
                          {m for m in ("GET", "PUT", "POST", "DELETE", "PATCH") if hasattr(route.endpoint, m.lower())})
            path = re.sub(r"\{([^}:]+)(:[^}]+)?\}", r"{\1}", prefix + route.path)
            found |= {(m, path) for m in methods - {"HEAD"}}
    return found


# --- the document -----------------------------------------------------------------------------------------

def test_document_is_served_without_authentication_and_is_valid(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["version"] == ecsd.__version__
    schemathesis.openapi.from_dict(doc).validate()      # raises on anything the OpenAPI 3.1 schema refuses
    assert client.get("/openapi.json").content == r.content     # built once, served as built
    schemes = doc["components"]["securitySchemes"]
    assert schemes["iamToken"] == {**schemes["iamToken"], "in": "header", "name": "X-Auth-Token"}
    assert schemes["akSk"]["name"] == "Authorization" and "SDK-HMAC-SHA256" in schemes["akSk"]["description"]
    assert schemes["operatorToken"]["name"] == "X-Ecsd-Operator-Token"


def test_every_route_is_documented_and_every_operation_is_served():
    app = _app()
    doc = openapi.build(app.routes)
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    served = _served(app.routes)
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "operations in /openapi.json that no route serves"


def test_every_handler_declares_its_statuses_and_body():
    """A new handler without ``@endpoint(ok=..., body=...)`` (or ``@documented``) fails here."""
    problems = []
    for method, path, handler in openapi.operations(_app().routes):
        doc = api_doc(handler)
        where = f"{method} {path} ({getattr(handler, '__module__', '?')}.{getattr(handler, '__name__', '?')})"
        if doc is None or doc.ok is None:
            problems.append(f"{where}: no declaration (http/core.py: endpoint(ok=...) or documented(ok=...))")
            continue
        if method in BODY_METHODS and doc.body is None:
            problems.append(f"{where}: declares no body=Model (or body=NO_BODY when it reads none)")
        if not all(100 <= c < 600 for c in doc.ok) or not all(400 <= c < 600 for c in doc.errors):
            problems.append(f"{where}: not HTTP statuses, or errors that are not 4xx-5xx: {doc.ok}, {doc.errors}")
        if set(doc.empty) - set(doc.ok):
            problems.append(f"{where}: empty={doc.empty} names statuses that are not among ok={doc.ok}")
    assert problems == [], "\n".join(problems)


def test_declared_bodies_and_parameters_reach_the_document():
    doc = openapi.build(_app().routes)
    paths = doc["paths"]
    create = paths["/v2.1/{project_id}/os-keypairs"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/CreateKeypair"
    keypair = doc["components"]["schemas"]["CreateKeypair"]["properties"]["keypair"]["$ref"].rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][keypair]["properties"]) == {"name", "public_key", "type", "user_id"}
    assert set(create["responses"]) >= {"200", "400", "401", "403", "409", "503"}
    delete = paths["/v2.1/{project_id}/os-keypairs/{keypair_name}"]["delete"]
    assert "content" not in delete["responses"]["204"] and "content" not in delete["responses"]["202"]
    assert [p["name"] for p in delete["parameters"] if p["in"] == "path"] == ["project_id", "keypair_name"]
    change = paths["/v2/{project_id}/cloudservers/{server_id}/changeos"]["post"]
    assert change["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChangeBodyV2")
    assert change["security"] == [{"iamToken": []}, {"akSk": []}]
    assert set(paths["/v2.1/{project_id}/servers"]["post"]["responses"]) & {"200", "201"} == set()
    token = paths["/v3/auth/tokens"]["post"]
    assert "security" not in token and {"201", "401", "429"} <= set(token["responses"])
    assert paths["/openapi.json"]["get"]["responses"]["200"]["content"] == {"application/json": {}}
    errors = doc["components"]["responses"]
    assert errors["Error404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/EcsError"}
    listing = {p["name"]: p["schema"]["type"] for p in paths["/v1/{project_id}/cloudservers/detail"]["get"]["parameters"]
               if p["in"] == "query"}
    assert listing["limit"] == "integer" and listing["not-tags"] == "string"


def test_a_method_a_path_does_not_serve_is_405_naming_the_documented_ones(client):
    doc = client.get("/openapi.json").json()
    wrong = []
    for path, item in doc["paths"].items():
        if path.startswith("/_ecsd/"):
            continue        # without the operator token every method there is 404
        r = client.request("PATCH", re.sub(r"\{[^}]+\}", "x", path))
        allowed = set(r.headers.get("allow", "").split(", "))
        if r.status_code != 405 or r.json()["error"]["code"] != "Common.0405" or not {m.upper() for m in item} <= allowed:
            wrong.append(f"PATCH {path}: {r.status_code} Allow: {r.headers.get('allow')}, documented {sorted(item)}")
    assert wrong == [], "\n".join(wrong)


def test_every_nova_action_has_its_arguments_documented():
    assert set(nova.ACTION_ARGS) == set(nova.ACTIONS)


def test_emulator_routes_are_tagged_and_secured_by_the_operator_token():
    doc = openapi.build(_app().routes)
    ops = [op for path, item in doc["paths"].items() if path.startswith("/_ecsd/") for op in item.values()]
    if not ops:
        pytest.skip("no emulator routes in this build")
    for op in ops:
        assert op["tags"] == ["emulator"]
        assert {"operatorToken": []} in op["security"]
        assert "404" in op["responses"]


def test_routes_without_declarations_still_make_a_valid_document():
    """A handler nobody declared (here: a plain function, a class endpoint, a mounted route, a
    dispatcher naming its per-method handlers) gets a generic operation, not a crash."""
    from starlette.endpoints import HTTPEndpoint
    from starlette.responses import PlainTextResponse

    async def plain(request):
        return PlainTextResponse("x")

    class Things(HTTPEndpoint):
        async def get(self, request):
            return PlainTextResponse("x")

        async def post(self, request):
            return PlainTextResponse("x")

    dispatcher = Route("/_ecsd/things/{name}", plain, methods=["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
    dispatcher.emulator_handlers = {"PUT": plain, "DELETE": plain}
    routes = [Route("/plain/{n:int}", plain, methods=["GET"]), Route("/things", Things),
              Mount("/mounted", routes=[Route("/{rest:path}", plain, methods=["POST"])]), dispatcher]
    doc = openapi.build(routes)
    schemathesis.openapi.from_dict(doc).validate()
    assert {(m.upper(), p) for p, item in doc["paths"].items() for m in item} == _served(routes) == {
        ("GET", "/plain/{n}"), ("GET", "/things"), ("POST", "/things"), ("POST", "/mounted/{rest}"),
        ("PUT", "/_ecsd/things/{name}"), ("DELETE", "/_ecsd/things/{name}")}
    assert doc["paths"]["/plain/{n}"]["get"]["parameters"][0]["schema"] == {"type": "integer"}
    assert "default" in doc["paths"]["/mounted/{rest}"]["post"]["responses"]
    assert doc["paths"]["/_ecsd/things/{name}"]["put"]["tags"] == ["emulator"]


# --- the property-based run ---------------------------------------------------------------------------------

def run_operations(schema, base: str, headers: dict[str, str], fixed: dict[str, str], examples: int,
                   failures: dict[tuple[str, str], str], only_with: set[str] | None = None) -> int:
    """``examples`` generated requests (derandomized: the same ones on every run) for every operation of
    ``schema`` (with ``only_with``: those with one of these path parameters), the path parameters in
    ``fixed`` set; each failure is added to ``failures`` once per operation and kind. Returns the number
    of requests sent."""
    sent = 0
    session = requests.Session()
    # Deletes last, so that the operations on an existing resource meet it before it is gone.
    ordered = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.method == "delete")
    for operation in ordered:
        params = {name: value for name, value in fixed.items() if "{" + name + "}" in operation.path}
        if only_with is not None and not only_with & set(params):
            continue
        strategy = st.one_of(*(operation.as_strategy(mode, path_parameters=params) for mode in GenerationMode))

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def one(case):
            nonlocal sent
            response = case.call(base_url=base, session=session, headers=headers, timeout=30)
            sent += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (FailureGroup, Failure) as exc:
                for failure in getattr(exc, "exceptions", [exc]):
                    key = (case.operation.label, failure.title)
                    if key not in failures:
                        curl = case.as_curl_command(headers=headers)
                        failures[key] = (f"{case.operation.label}: {failure.title} ({response.status_code}): "
                                         f"{failure.message.splitlines()[0] if failure.message else ''}\n    {curl}")

        one()
    return sent


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A real ``ecsd serve`` on its own data directory (seeded by its first start), a token of the
    demo project, and the ids of resources that exist in it (a server with its disk and NIC, a key
    pair, an image, a flavor).

    A live process rather than ``from_asgi``: the requests go through uvicorn and ecsd's HTTP server
    (http/server.py), the lifespan and the job worker as in production, the statuses and headers are
    what a client really gets (no TestClient re-raising or re-shaping), and a crash or a hang of the
    process fails the run instead of being absorbed by the test's event loop."""
    data = str(tmp_path_factory.mktemp("openapi") / "data")
    proc = Proc.serve(data, env={"ECSD_SIM_DELAY": "0"})
    try:
        creds = read_json(os.path.join(data, "credentials.json"))
        client = Client(proc.base, creds)
        server_id = client.create()[0]
        assert client.post("/v2.1/{pid}/os-keypairs", {"keypair": {"name": "kp"}}).status_code == 200
        server = client.get(f"/v1/{{pid}}/cloudservers/{server_id}").json()["server"]
        nic = client.get(f"/v2.1/{{pid}}/servers/{server_id}/os-interface").json()["interfaceAttachments"][0]
        existing = {"server_id": server_id, "volume_id": server["os-extended-volumes:volumes_attached"][0]["id"],
                    "port_id": nic["port_id"], "network": next(iter(server["addresses"])), "keypair_name": "kp",
                    "image_id": s.UBUNTU, "flavor_id": "s3.small.1", "ref": creds["project_id"]}
        yield proc, creds, client.http.headers["X-Auth-Token"], existing
    finally:
        proc.stop()


@pytest.mark.slow
def test_the_service_keeps_to_its_document(live):
    """No 5xx, and every status, content type and error body as /openapi.json documents it, for
    ``EXAMPLES`` generated requests (valid and invalid data) per operation, with a valid token and
    the demo project in the path (so that requests get past authentication and the project check).

    Then once more for the operations on one resource, with the ids of resources that exist: random
    ids stop at 404, these reach the handlers' own answers (a delete among them may remove its
    resource; what follows then answers 404, which is documented too)."""
    proc, creds, token, existing = live
    schema = schemathesis.openapi.from_url(proc.base + "/openapi.json")
    schema.validate()
    started = time.monotonic()
    project = {"project_id": creds["project_id"], "tenant_id": creds["project_id"]}
    headers = {"X-Auth-Token": token}
    failures: dict[tuple[str, str], str] = {}
    sent = run_operations(schema, proc.base, headers, project, EXAMPLES, failures)
    sent += run_operations(schema, proc.base, headers, {**project, **existing}, EXAMPLES, failures, set(existing))
    elapsed = time.monotonic() - started
    report = "\n".join(failures.values())
    assert not failures, f"{len(failures)} failure(s) in {sent} requests ({elapsed:.1f} s):\n{report}"
    assert proc.alive


@pytest.mark.slow
def test_documented_security_is_what_the_service_enforces(live):
    """Each operation documented with the IAM token answers 401 Common.0013 without credentials; an
    operation documented without security answers something else."""
    proc, creds, _token, _existing = live
    doc = requests.get(proc.base + "/openapi.json", timeout=30).json()
    wrong = []
    for path, item in doc["paths"].items():
        url = proc.base + re.sub(r"\{[^}]+\}", "x", path.replace("{project_id}", creds["project_id"]))
        for method, op in item.items():
            if path.startswith("/_ecsd/"):
                continue        # the operator token: tests/test_emulator.py
            r = requests.request(method.upper(), url, timeout=30)
            secured = {"iamToken": []} in op.get("security", [])
            refused = r.status_code == 401 and r.json()["error"]["code"] == "Common.0013"
            if secured != refused:
                wrong.append(f"{method.upper()} {path}: {r.status_code} without credentials; documented "
                             f"security {op.get('security')}")
    assert wrong == [], "\n".join(wrong)
