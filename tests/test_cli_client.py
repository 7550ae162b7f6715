"""The client CLI (`ecsd server|job|image|keypair`, src/ecsd/cli/client/) against a real `ecsd serve`,
plus a few checks of its HTTP client on a fake transport (retries, error bodies, time-outs)."""

from __future__ import annotations

import ast
import base64
import json
import os
import pathlib
import stat
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from ecsd.cli import main
from ecsd.cli.client import http, progress, session
from tests import support as s
from tests.procs import Proc, free_port, read_json

pytestmark = pytest.mark.slow  # starts an `ecsd serve` process
CLIENT_DIR = pathlib.Path(session.__file__).parent
SERVER_PACKAGES = ("ecsd.domain", "ecsd.store", "ecsd.engine", "ecsd.drivers", "ecsd.config")
PASSWORD = "Cli-Passw0rd!"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("cli-client"))
    proc = Proc.serve(data_dir, env={"ECSD_SIM_DELAY": "0.05", "ECSD_FAULT_IMAGES": "1"})
    try:
        path = os.path.join(data_dir, "credentials.json")
        yield {"data_dir": data_dir, "path": path, "creds": read_json(path), "base": proc.base}
    finally:
        proc.stop()


def run(cloud, *args: str, input: str | None = None, env: dict | None = None, ok: bool = True):
    """`ecsd ARGS` in-process, with the module's credentials file; asserts exit 0 unless ok=False."""
    full = {"ECSD_CREDENTIALS": cloud["path"], "ECSD_ENDPOINT": None, "ECSD_DATA_DIR": None, **(env or {})}
    result = CliRunner().invoke(main, list(args), input=input, env=full)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if ok:
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def jrun(cloud, *args: str, **kw):
    """Run with -o json: stdout must be JSON and nothing else."""
    return json.loads(run(cloud, *args, "-o", "json", **kw).stdout)


def api(cloud) -> httpx.Client:
    client = httpx.Client(base_url=cloud["base"], timeout=10)
    r = client.post("/v3/auth/tokens", json=s.token_request(cloud["creds"]))
    client.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]
    return client


def create(cloud, name: str, count: int = 1) -> list[str]:
    job = jrun(cloud, "server", "create", "--name", name, "--image", "Standard_Ubuntu_22.04_latest", "--flavor",
               "s3.small.1", "--count", str(count), "--vpc", s.VPC, "--subnet", s.SUBNET, "--wait")
    assert job["status"] == "SUCCESS"
    return [sub["entities"]["server_id"] for sub in job["entities"]["sub_jobs"]]


@pytest.fixture(scope="module")
def pair(cloud):
    """Two servers named cli-0001 and cli-0002, made through the CLI."""
    return create(cloud, "cli", count=2)


# --- no server code in the client ------------------------------------------------------------------

def test_the_client_imports_no_server_package():
    for path in CLIENT_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("ecsd.") or name.startswith("ecsd.cli.client"), (path.name, name)
    # and at run time, with the package loaded on its own (ecsd/cli/__init__.py registers the admin CLI too)
    probe = f"""
import sys, types
import ecsd
pkg = types.ModuleType("ecsd.cli"); pkg.__path__ = [{str(CLIENT_DIR.parent)!r}]
sys.modules["ecsd.cli"] = ecsd.cli = pkg
import ecsd.cli.client
from click.testing import CliRunner
r = CliRunner().invoke(ecsd.cli.client.server, ["list", "--credentials", "/nonexistent"])
assert r.exit_code == 2, r.output
print(sorted(m for m in sys.modules if m.startswith({SERVER_PACKAGES!r})))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_default_credentials_follow_the_server_data_dir(cloud, monkeypatch, tmp_path):
    from ecsd.config import default_data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("ECSD_DATA_DIR", raising=False)
    assert session.credentials_path(None) == os.path.join(default_data_dir(), "credentials.json")
    # ECSD_DATA_DIR (as `ecsd serve` honours it) names where credentials.json is
    out = run(cloud, "keypair", "list", env={"ECSD_CREDENTIALS": None, "ECSD_DATA_DIR": cloud["data_dir"]})
    assert out.stdout.startswith("name")


# --- servers ---------------------------------------------------------------------------------------

def test_server_list_and_show(cloud, pair):
    table = run(cloud, "server", "list", "--name", "cli-").stdout.splitlines()
    assert table[0].split() == ["id", "name", "status", "flavor", "image", "created"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(pair) <= set(rows)
    assert rows[pair[0]][1:5] == ["cli-0001", "ACTIVE", "s3.small.1", "Standard_Ubuntu_22.04_latest"]

    listed = jrun(cloud, "server", "list", "--status", "ACTIVE", "--limit", "1")
    assert listed["count"] >= 2 and len(listed["servers"]) == 1

    shown = jrun(cloud, "server", "show", pair[1])
    assert shown == api(cloud).get(f"/v1/{cloud['creds']['project_id']}/cloudservers/{pair[1]}").json()
    by_name = run(cloud, "server", "show", "cli-0002").stdout
    assert f"id:        {pair[1]}" in by_name and "status:    ACTIVE" in by_name


def test_server_show_refuses_an_ambiguous_name(cloud, pair):   # pair: a network to reuse
    ids = [sid for _ in range(2) for sid in jrun(cloud, "server", "create", "--name", "twin", "--image", s.UBUNTU,
                                                 "--flavor", "s3.small.1")["serverIds"]]
    out = run(cloud, "server", "show", "twin", ok=False)
    assert out.exit_code == 3
    assert "2 servers have the id or name 'twin'" in out.stderr and all(i in out.stderr for i in ids)


def test_create_takes_the_network_of_an_existing_server(cloud, pair):
    out = run(cloud, "server", "create", "--name", "solo", "--image", s.DEBIAN, "--flavor", "s3.small.1",
              "--password-stdin", "--wait", input=PASSWORD + "\n")
    assert "status:      SUCCESS" in out.stdout
    assert "createServer SUCCESS" in out.stderr           # the step lines, on stderr only
    sid = out.stdout.split("SUCCESS  ")[-1].split()[0]
    srv = jrun(cloud, "server", "show", sid)["server"]
    assert srv["metadata"]["vpc_id"] == s.VPC and srv["image"]["id"] == s.DEBIAN


def test_change_os_waits_through_the_steps(cloud, pair):
    job = jrun(cloud, "server", "change-os", "cli-0001", "--image", "Standard_Debian_12_latest", "--password-stdin",
               "--wait", input=PASSWORD + "\n")
    assert job["status"] == "SUCCESS" and job["job_type"] == "changeOS"
    assert jrun(cloud, "server", "show", pair[0])["server"]["image"]["id"] == s.DEBIAN


def test_change_os_user_data_goes_to_the_v2_api(cloud, pair, tmp_path):
    script = tmp_path / "init.sh"
    script.write_bytes(b"#!/bin/sh\necho hello\n")
    out = run(cloud, "server", "change-os", pair[1], "--image", "Standard_Ubuntu_22.04_latest", "--password-stdin",
              "--user-data", str(script), "--wait", input=PASSWORD + "\n")
    assert "changeOS SUCCESS" in out.stderr
    srv = jrun(cloud, "server", "show", pair[1])["server"]
    assert srv["OS-EXT-SRV-ATTR:user_data"] == base64.b64encode(script.read_bytes()).decode()


def test_a_failing_change_os_exits_1_with_the_code(cloud, pair):
    assert jrun(cloud, "image", "list", "--name", "Test_Faulty_Image_boot")["images"], "no fault image"
    out = run(cloud, "server", "change-os", pair[1], "--image", "Test_Faulty_Image_boot", "--password-stdin",
              "--wait", "-o", "json", input=PASSWORD + "\n", ok=False)
    assert out.exit_code == 1
    assert json.loads(out.stdout)["status"] == "FAIL"
    assert "Ecs.0226" in out.stderr and "failed" in out.stderr
    assert out.stderr.rstrip().endswith("Error: job " + json.loads(out.stdout)["job_id"] + " (changeOS) failed: "
                                        "Ecs.0226: " + json.loads(out.stdout)["fail_reason"])


def test_reinstall_os_with_a_key_pair(cloud, pair):
    assert jrun(cloud, "keypair", "create", "ops")["keypair"]["private_key"].startswith("-----BEGIN")
    out = run(cloud, "server", "reinstall-os", "cli-0001", "--key-pair", "ops", "--wait")
    assert "status:      SUCCESS" in out.stdout
    assert jrun(cloud, "server", "show", pair[0])["server"]["key_name"] == "ops"


def test_change_os_needs_one_credential(cloud, pair):
    out = run(cloud, "server", "change-os", pair[0], "--image", s.DEBIAN, ok=False)
    assert out.exit_code == 2 and "--key-pair NAME or --password-stdin" in out.stderr
    out = run(cloud, "server", "change-os", pair[0], "--image", s.DEBIAN, "--password-stdin", input="\n", ok=False)
    assert out.exit_code == 2 and "stdin gave no password" in out.stderr
    out = run(cloud, "server", "change-os", pair[0], "--image", "No_Such_Image", "--password-stdin",
              input=PASSWORD + "\n", ok=False)
    assert out.exit_code == 3 and "no image has the name 'No_Such_Image'" in out.stderr


# --- jobs ------------------------------------------------------------------------------------------

def test_job_show_and_wait(cloud, pair):
    accepted = jrun(cloud, "server", "reinstall-os", pair[0], "--password-stdin", input=PASSWORD + "\n")
    job_id = accepted["job_id"]
    assert set(accepted) == {"job_id"}
    ended = jrun(cloud, "job", "wait", job_id)
    assert ended["status"] == "SUCCESS" and ended["entities"]["server_id"] == pair[0]
    assert jrun(cloud, "job", "show", job_id) == ended
    table = run(cloud, "job", "show", job_id).stdout
    assert f"job:         {job_id}" in table and "reinstallOS" in table and "SUCCESS" in table

    out = run(cloud, "job", "wait", "0" * 32, ok=False)
    assert out.exit_code == 3 and "Common.0011" in out.stderr


# --- images and key pairs ----------------------------------------------------------------------------

def test_image_list_with_filters(cloud):
    table = run(cloud, "image", "list", "--platform", "Ubuntu").stdout.splitlines()
    assert table[0].split() == ["id", "name", "status", "os", "min", "disk"]
    names = sorted(line.split()[1] for line in table[1:])
    assert names == ["Standard_Ubuntu_22.04_UEFI", "Standard_Ubuntu_22.04_latest"]
    images = jrun(cloud, "image", "list", "--visibility", "public", "--platform", "CentOS")["images"]
    assert [i["name"] for i in images] == ["Standard_CentOS_7_latest"]
    assert run(cloud, "image", "list", "--visibility", "private").stdout.splitlines()[1] == "(none)"


def test_keypair_create_and_list(cloud, tmp_path):
    key_file = tmp_path / "k1.pem"
    made = jrun(cloud, "keypair", "create", "k1", "--private-key-file", str(key_file))
    assert "private_key" not in made["keypair"] and made["keypair"]["name"] == "k1"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("-----BEGIN")
    # an existing file is never replaced, and then no key pair is made
    out = run(cloud, "keypair", "create", "k2", "--private-key-file", str(key_file), ok=False)
    assert out.exit_code == 2 and "exists" in out.stderr
    printed = run(cloud, "keypair", "create", "k3").stdout
    assert "PRIVATE KEY-----" in printed and "shown this once" in printed
    public = tmp_path / "k4.pub"
    public.write_text(api(cloud).get(f"/v2.1/{cloud['creds']['project_id']}/os-keypairs/k3")
                      .json()["keypair"]["public_key"] + "\n")
    imported = jrun(cloud, "keypair", "create", "k4", "--public-key", str(public))["keypair"]
    assert imported["public_key"] == public.read_text().strip() and "private_key" not in imported

    names = [line.split()[0] for line in run(cloud, "keypair", "list").stdout.splitlines()[1:]]
    assert {"k1", "k3", "k4"} <= set(names) and "k2" not in names
    assert {k["keypair"]["name"] for k in jrun(cloud, "keypair", "list")["keypairs"]} >= {"k1", "k3", "k4"}


# --- errors ------------------------------------------------------------------------------------------

def test_api_errors_are_one_line_with_their_code(cloud):
    out = run(cloud, "server", "show", "6a1c1f8e-1111-4222-8333-944445555666", ok=False)
    assert out.exit_code == 3 and out.stdout == ""
    assert out.stderr.startswith("Error: Ecs.0114: ") and out.stderr.count("\n") == 1
    out = run(cloud, "server", "show", "no-such-server", ok=False)
    assert out.exit_code == 3 and "no server has the id or name 'no-such-server'" in out.stderr


def test_bad_credentials(cloud, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**cloud["creds"], "password": "Wrong-Passw0rd"}))
    out = run(cloud, "server", "list", "--credentials", str(bad), ok=False)
    assert out.exit_code == 3 and "Common.0013" in out.stderr
    out = run(cloud, "server", "list", "--credentials", str(tmp_path / "missing.json"), ok=False)
    assert out.exit_code == 2 and "no credentials file" in out.stderr
    bad.write_text("{not json")
    out = run(cloud, "server", "list", "--credentials", str(bad), ok=False)
    assert out.exit_code == 2 and "cannot read the credentials file" in out.stderr


def test_endpoint_down_or_malformed(cloud):
    down = f"http://127.0.0.1:{free_port()}"
    out = run(cloud, "image", "list", "--endpoint", down, ok=False)
    assert out.exit_code == 4 and out.stderr == f"Error: cannot connect to {down}: connection refused " \
                                                 "(is ecsd running there?)\n"
    out = run(cloud, "image", "list", ok=False, env={"ECSD_ENDPOINT": "localhost:8080"})
    assert out.exit_code == 2 and "not an http:// or https:// URL" in out.stderr


# --- the HTTP client on a fake transport --------------------------------------------------------------

def fake(handler) -> tuple[http.Client, list[float]]:
    slept: list[float] = []
    client = http.Client("http://ecsd.test", transport=httpx.MockTransport(handler), sleep=slept.append)
    client.project_id = "p"
    return client, slept


def test_retry_after_is_honoured_on_429_and_503():
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"code": "APIGW.0308"}}),
                    httpx.Response(503, json={"error": {"code": "Common.1503", "message": "busy"}}),
                    httpx.Response(200, json={"status": "SUCCESS"})])
    client, slept = fake(lambda request: next(answers))
    assert client.get("/v1/p/jobs/x") == {"status": "SUCCESS"}
    assert slept == [2.0, 1.0]
    # a POST that is not safe to repeat is not retried
    client, slept = fake(lambda request: httpx.Response(503, json={"error": {"code": "Common.1503",
                                                                             "message": "busy"}}))
    with pytest.raises(http.ApiError, match="Common.1503: busy"):
        client.post("/v1/p/cloudservers/x/changeos", {})
    assert slept == []


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": {"code": "Ecs.0114", "message": "The ECS does not exist."}}, "Ecs.0114: The ECS does not exist."),
    ({"error_code": "APIGW.0101", "error_msg": "The API does not exist"}, "APIGW.0101: The API does not exist"),
    ({"itemNotFound": {"code": 404, "message": "Flavor x could not be found."}}, "Flavor x could not be found."),
    ({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires auth"}},
     "The request you have made requires auth"),
    ("<html>gateway</html>", "Not Found: <html>gateway</html>"),
])
def test_error_bodies_of_every_dialect(body, expected):
    def handler(request):
        if isinstance(body, str):
            return httpx.Response(404, text=body, headers={"X-Request-Id": "r1"})
        return httpx.Response(404, json=body, headers={"X-Request-Id": "r1"})

    client, _ = fake(handler)
    with pytest.raises(http.ApiError) as info:
        client.get("/x")
    assert str(info.value) == f"{expected} (HTTP 404, request r1)"


def test_the_display_shows_each_step_once():
    server = {"status": "REBUILD", "OS-EXT-STS:task_state": "rebuilding"}
    answers = iter([{"status": "RUNNING", "job_type": "changeOS", "entities": {"server_id": "s"}},
                    {"server": {"status": "ACTIVE", "OS-EXT-STS:task_state": "powering-off"}},
                    {"status": "RUNNING", "job_type": "changeOS", "entities": {"server_id": "s"}},
                    {"server": server},
                    {"status": "RUNNING", "job_type": "changeOS", "entities": {"server_id": "s"}},
                    {"server": server},
                    {"status": "SUCCESS", "job_type": "changeOS", "entities": {"server_id": "s"}}])
    client, _ = fake(lambda request: httpx.Response(200, json=next(answers)))
    runner = CliRunner()
    with runner.isolation() as (_out, err, _):
        job = progress.wait_for_job(client, "j", timeout=5, interval=0.01)
        lines = [line.split("s  ", 1)[1] for line in err.getvalue().decode().splitlines()]
    assert job["status"] == "SUCCESS"
    assert lines == ["changeOS RUNNING  server ACTIVE: stopping the server",
                     "changeOS RUNNING  server REBUILD: creating the new system disk", "changeOS SUCCESS"]


def test_wait_gives_up_after_the_timeout():
    client, _ = fake(lambda request: httpx.Response(200, json={"status": "RUNNING", "job_type": "changeOS",
                                                               "entities": {}, "job_id": "j"}))
    with pytest.raises(progress.WaitTimeout) as info:
        progress.wait_for_job(client, "j", timeout=0.05, interval=0.01, animate=False)
    assert info.value.exit_code == 5 and "still RUNNING" in str(info.value)


def test_which_change_os_api(monkeypatch, tmp_path):
    """v2 for an image with Cloud-Init or when user data is given, else v1; withStopServer by default."""
    images = {"cloudy": {"id": s.UBUNTU, "name": "cloudy", "__support_cloudinit": "true"},
              "plain": {"id": s.CENTOS, "name": "plain", "__support_cloudinit": "false"}}
    calls: list[tuple[str, dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            return httpx.Response(201, headers={"X-Subject-Token": "t"}, json={})
        if request.url.path == "/v2/cloudimages":
            name = request.url.params.get("name")
            return httpx.Response(200, json={"images": [images[name]] if name in images else []})
        if request.method == "GET":
            return httpx.Response(200, json={"server": {"id": s.VPC, "name": "x", "image": {"id": s.UBUNTU}}})
        calls.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"job_id": "j"})

    real = http.Client
    monkeypatch.setattr(session, "Client", lambda endpoint: real(endpoint, transport=httpx.MockTransport(handler)))
    creds = tmp_path / "c.json"
    creds.write_text(json.dumps({"domain_name": "d", "user_name": "u", "password": "p", "project_id": "p",
                                 "endpoint": "http://fake"}))
    user_data = tmp_path / "ud"
    user_data.write_text("#cloud-config\n")
    base = ["server", "change-os", s.VPC, "--credentials", str(creds), "--key-pair", "k", "--image"]
    for args in (["cloudy"], ["plain"], ["plain", "--user-data", str(user_data), "--no-stop"]):
        result = CliRunner().invoke(main, base + args)
        assert result.exit_code == 0, result.output
    assert [path for path, _ in calls] == [f"/{v}/p/cloudservers/{s.VPC}/changeos" for v in ("v2", "v1", "v2")]
    assert calls[1][1] == {"os-change": {"keyname": "k", "imageid": s.CENTOS, "mode": "withStopServer"}}
    assert calls[2][1] == {"os-change": {"keyname": "k", "imageid": s.CENTOS,
                                         "metadata": {"user_data": base64.b64encode(b"#cloud-config\n").decode()}}}
