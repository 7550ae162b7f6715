"""openstacksdk and the ``openstack`` CLI, unchanged, against a real ``ecsd serve`` (token auth).

What is proven here, against one server process for the whole module:

* the keystone flow: ``GET /v3`` discovery, ``POST /v3/auth/tokens`` (201, ``X-Subject-Token``,
  catalog), ``GET /v2.1`` microversion discovery, ``X-Auth-Token`` on every call;
* Nova key pairs, flavors and servers and Glance images through ``conn.compute`` / ``conn.image``;
* the Nova server lifecycle: ``create_server(..., wait=True)``, ``set_server_metadata``,
  ``list_server_security_groups``, ``update_server``, ``delete_server(..., wait=True)``, and the
  ``openstack server create --wait`` / ``set`` / ``delete --wait`` commands;
* the ECS v1 API (create, change OS, jobs) through the token session, both as plain
  ``conn.session`` calls and as an otcextensions-style ``conn.ecs`` proxy (the catalog's ``ecs``
  entry, version discovery skipped as otcextensions does);
* error mapping (404 -> NotFoundException, 400 -> BadRequestException with the ECS message,
  409 -> ConflictException, request ids) and re-authentication after a 401;
* the ``openstack`` command (python-openstackclient) as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import httpx
import pytest

openstack = pytest.importorskip("openstack", reason="openstacksdk is not installed: pip install -e '.[test]'")

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions, proxy, service_description

from ecsd.domain.errors import EcsError
from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    # openstacksdk warns about its own internals (deprecations inside the library, not in this code)
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.LegacyAPIWarning"),   # the cloud layer's server['accessIPv4']
]

REGION = "eu-de"
INVALID_MESSAGE = EcsError("Ecs.0005").message   # the catalogue's text for every malformed parameter


# --- an otcextensions-style ``ecs`` service: the catalog URL as is, no version discovery --------------

class EcsProxy(proxy.Proxy):
    skip_discovery = True


class EcsService(service_description.ServiceDescription):
    supported_versions: ClassVar[dict] = {"1": EcsProxy}


# --- helpers and fixtures ------------------------------------------------------------------------------

def connect(base: str, creds: dict):
    conn = openstack.connect(
        auth_url=f"{base}/v3", username=creds["user_name"], password=creds["password"],
        project_name=creds["project_name"], user_domain_name=creds["domain_name"],
        project_domain_name=creds["domain_name"], region_name=REGION,
        load_yaml_config=False, load_envvars=False)
    conn.add_service(EcsService("ecs"))
    return conn


@pytest.fixture(scope="module")
def base(ecsd_server):  # noqa: F811
    return ecsd_server.base_url


@pytest.fixture(scope="module")
def creds(ecsd_server):  # noqa: F811
    return ecsd_server.creds


@pytest.fixture(scope="module")
def pid(creds):
    return creds["project_id"]


@pytest.fixture(scope="module")
def conn(base, creds):
    c = connect(base, creds)
    yield c
    c.close()


def wait_job(conn, base: str, pid: str, job_id: str, timeout: float = 20.0) -> dict:
    """Poll ``GET /v1/{pid}/jobs/{job_id}`` through the token session until SUCCESS or FAIL."""
    deadline = time.monotonic() + timeout
    while True:
        job = conn.session.get(f"{base}/v1/{pid}/jobs/{job_id}").json()
        if job["status"] in ("SUCCESS", "FAIL"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server_id(conn, base, pid):
    """A server created through the ECS v1 API (``POST /v1/{pid}/cloudservers``) with the SDK's token."""
    body = {"server": {"name": "sdk-srv", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}, "count": 1}}
    r = conn.session.post(f"{base}/v1/{pid}/cloudservers", json=body)
    assert r.status_code == 200, r.text
    job = wait_job(conn, base, pid, r.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
    assert r.json()["serverIds"] == [sid]
    return sid


# --- token flow ---------------------------------------------------------------------------------------------

def test_token_flow_and_catalog(conn, base, creds, pid):
    token = conn.authorize()
    assert token and token == conn.session.get_token()
    assert conn.current_project_id == pid
    assert conn.current_user_id == creds["user_id"]
    assert conn.session.get_endpoint(service_type="compute", interface="public") == f"{base}/v2.1/{pid}"
    assert conn.session.get_endpoint(service_type="ecs", interface="public") == f"{base}/v1/{pid}"
    assert conn.ecs.get_endpoint() == f"{base}/v1/{pid}"
    # the compute microversion range comes from GET /v2.1
    lo, hi = conn.compute.get_endpoint_data().min_microversion, conn.compute.get_endpoint_data().max_microversion
    assert lo == (2, 1) and hi >= (2, 54)
    # keystone token validation with the SDK's own session
    r = conn.session.get(f"{base}/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert r.status_code == 200 and r.json()["token"]["project"]["id"] == pid
    assert r.headers["X-Openstack-Request-Id"].startswith("req-")


# --- key pairs ---------------------------------------------------------------------------------------------

def test_keypair_lifecycle(conn):
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    created = conn.compute.create_keypair(name=name)
    assert created.name == name
    assert created.private_key and "PRIVATE KEY" in created.private_key
    assert created.public_key.startswith("ssh-")

    assert name in [k.name for k in conn.compute.keypairs()]
    shown = conn.compute.get_keypair(name)
    assert shown.fingerprint == created.fingerprint and shown.public_key == created.public_key
    assert shown.type == "ssh" and shown.private_key is None
    assert conn.compute.find_keypair(name).name == name

    conn.compute.delete_keypair(name, ignore_missing=False)
    assert name not in [k.name for k in conn.compute.keypairs()]
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.get_keypair(name)
    with pytest.raises(exceptions.ResourceNotFound):
        conn.compute.delete_keypair(name, ignore_missing=False)
    assert conn.compute.delete_keypair(name) is None   # ignore_missing defaults to True
    assert conn.compute.find_keypair(name) is None


def test_keypair_import_and_duplicate_is_conflict(conn):
    name = f"sdk-imp-{uuid.uuid4().hex[:6]}"
    first = conn.compute.create_keypair(name=name)
    try:
        again = f"{name}-2"
        imported = conn.compute.create_keypair(name=again, public_key=first.public_key)
        assert imported.fingerprint == first.fingerprint and imported.private_key is None
        conn.compute.delete_keypair(again)
        with pytest.raises(exceptions.ConflictException) as err:
            conn.compute.create_keypair(name=name)
        assert err.value.status_code == 409 and err.value.details
    finally:
        conn.compute.delete_keypair(name)


# --- flavors and images ------------------------------------------------------------------------------------

def test_flavors(conn):
    flavors = {f.name: f for f in conn.compute.flavors()}
    small = flavors["s3.small.1"]
    assert small.vcpus == 1 and small.ram == 1024 and small.is_public is True
    assert conn.compute.get_flavor("s3.small.1").id == "s3.small.1"
    assert conn.compute.find_flavor("s3.small.1").name == "s3.small.1"


def test_images(conn):
    images = {i.id: i for i in conn.image.images()}
    assert images[s.UBUNTU].name == "Standard_Ubuntu_22.04_latest"
    assert images[s.UBUNTU].status == "active" and images[s.UBUNTU].visibility == "public"
    # paging through Glance's "next" link gives the same set
    assert {i.id for i in conn.image.images(limit=3)} == set(images)
    assert conn.image.get_image(s.DEBIAN).name == "Standard_Debian_12_latest"
    assert conn.image.find_image("Standard_Debian_12_latest").id == s.DEBIAN


# --- servers (created and changed through the ECS v1 API, read through Nova) ----------------------------

def test_servers_list_and_get(conn, server_id):
    listed = {srv.id: srv for srv in conn.compute.servers()}
    assert listed[server_id].name == "sdk-srv" and listed[server_id].status == "ACTIVE"
    assert server_id in [srv.id for srv in conn.compute.servers(details=False)]
    srv = conn.compute.get_server(server_id)
    assert srv.status == "ACTIVE"
    assert srv.image.id == s.UBUNTU
    assert srv.flavor.name == "s3.small.1" and srv.flavor.vcpus == 1
    assert srv.project_id == conn.current_project_id
    assert srv.addresses


def test_server_metadata(conn, server_id):
    conn.compute.set_server_metadata(server_id, owner="team-a", env="dev")
    meta = conn.compute.get_server_metadata(server_id).metadata
    assert meta["owner"] == "team-a" and meta["env"] == "dev" and meta["image_name"]
    conn.compute.delete_server_metadata(server_id, ["env"])
    meta = conn.compute.get_server_metadata(server_id).metadata
    assert "env" not in meta and meta["owner"] == "team-a"


def test_limits(conn, server_id):
    limits = conn.compute.get_limits()
    assert limits.absolute.instances == 2048 and limits.absolute.instances_used >= 1
    assert limits.absolute.total_cores_used >= 1


def test_quota_sets(conn, pid):
    assert conn.compute.get_quota_set(pid).instances == 2048
    assert conn.compute.get_quota_set_defaults(pid).cores == 20480


def test_server_interfaces(conn, server_id):
    (nic,) = list(conn.compute.server_interfaces(server_id))
    assert nic.port_state == "ACTIVE" and nic.fixed_ips[0]["ip_address"]
    assert conn.compute.get_server_interface(nic.port_id, server=server_id).mac_addr == nic.mac_addr


def test_volume_attachments(conn, server_id):
    (disk,) = list(conn.compute.volume_attachments(server_id))
    assert disk.server_id == server_id and disk.device == "/dev/vda"


def test_availability_zones(conn):
    assert [z.name for z in conn.compute.availability_zones()] == ["eu-de-01", "eu-de-02", "eu-de-03"]


def test_change_os_through_the_ecs_api(conn, base, pid, server_id):
    # as with plain keystoneauth: the full URL on the SDK's token session
    r = conn.session.post(f"{base}/v1/{pid}/cloudservers/{server_id}/changeos",
                          json={"os-change": {"imageid": s.DEBIAN, "mode": "withStopServer"}})
    assert r.status_code == 200, r.text
    job = wait_job(conn, base, pid, r.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    srv = conn.compute.get_server(server_id)
    assert srv.image.id == s.DEBIAN and srv.status == "ACTIVE"

    # as an otcextensions user writes it: conn.ecs.post("/cloudservers/{id}/changeos", ...)
    r = conn.ecs.post(f"/cloudservers/{server_id}/changeos",
                      json={"os-change": {"imageid": s.UBUNTU, "mode": "withStopServer"}})
    assert r.status_code == 200, r.text
    assert r.url == f"{base}/v1/{pid}/cloudservers/{server_id}/changeos"
    job = conn.ecs.get(f"/jobs/{r.json()['job_id']}").json()
    job = wait_job(conn, base, pid, job["job_id"])
    assert job["status"] == "SUCCESS", job
    assert job["entities"]["server_id"] == server_id
    assert conn.compute.get_server(server_id).image.id == s.UBUNTU


# --- the Nova server lifecycle (issue 11): create, update, delete, security groups ------------------------

def test_create_server_wait_metadata_security_groups_and_delete(conn, pid):
    from openstack.network.v2.network import Network

    name = f"sdk-nova-{uuid.uuid4().hex[:6]}"
    # A Network object, not a name: ecsd's catalog has no network service to look names up in. auto_ip=False:
    # ecsd has no floating IPs, and without a network service openstacksdk would look for a nova-network pool.
    srv = conn.create_server(name, image=s.UBUNTU, flavor="s3.small.1", network=Network(id=s.SUBNET), wait=True,
                             auto_ip=False, timeout=60)
    assert srv.status == "ACTIVE" and srv.name == name
    assert srv.admin_password           # no key pair given: Nova's generated password, shown once
    ((_vpc, (address,)),) = srv.addresses.items()
    (nic,) = list(conn.compute.server_interfaces(srv.id))
    assert nic.net_id == s.SUBNET and nic.fixed_ips[0]["ip_address"] == address["addr"]
    assert nic.port_id == address["OS-EXT-IPS:port_id"]

    conn.set_server_metadata(srv.id, {"role": "web"})
    assert conn.compute.get_server_metadata(srv.id).metadata["role"] == "web"

    (group,) = conn.list_server_security_groups(srv.id)
    assert group["name"] == "default" and group["tenant_id"] == pid and len(group["rules"]) == 2
    fetched = conn.compute.fetch_server_security_groups(srv.id)
    assert [g["id"] for g in fetched.security_groups] == [group["id"]]
    assert conn.compute.get_server(srv.id).security_groups == [{"name": "default", "id": group["id"]}]

    renamed = conn.update_server(srv.id, name=f"{name}-b", description="set by openstacksdk")
    assert renamed.name == f"{name}-b" and renamed.description == "set by openstacksdk"

    assert conn.delete_server(srv.id, wait=True, timeout=60) is True
    assert conn.compute.find_server(srv.id) is None
    assert conn.delete_server(srv.id) is False      # already gone


def test_create_server_without_network_is_auto_and_with_a_key_pair(base, creds):
    # the cloud-wide way to say "no floating IPs here" (clouds.yaml: floating_ip_source: None)
    c = openstack.connect(
        auth_url=f"{base}/v3", username=creds["user_name"], password=creds["password"],
        project_name=creds["project_name"], user_domain_name=creds["domain_name"],
        project_domain_name=creds["domain_name"], region_name=REGION, floating_ip_source="None",
        load_yaml_config=False, load_envvars=False)
    kp = f"sdk-nova-kp-{uuid.uuid4().hex[:6]}"
    c.compute.create_keypair(name=kp)
    try:
        srv = c.create_server(f"sdk-auto-{uuid.uuid4().hex[:6]}", image=s.UBUNTU, flavor="s3.small.1",
                              key_name=kp, wait=True, timeout=60)     # openstacksdk sends networks: "auto"
        assert srv.status == "ACTIVE" and srv.key_name == kp and srv.admin_password is None
        assert len(srv.addresses) == 1
        assert c.delete_server(srv.id, wait=True, timeout=60)
    finally:
        c.compute.delete_keypair(kp)
        c.close()


def test_compute_create_server_counts_and_errors(conn):
    name = f"sdk-many-{uuid.uuid4().hex[:6]}"
    first = conn.compute.create_server(name=name, image_id=s.UBUNTU, flavor_id="s3.small.1",
                                       networks=[{"uuid": s.SUBNET}], min_count=2, max_count=2)
    made = [x for x in conn.compute.servers(name=name)]
    assert len(made) == 2 and first.id in {x.id for x in made}
    for x in made:
        conn.compute.wait_for_server(x, wait=60)
        conn.compute.delete_server(x)
    for x in made:
        conn.compute.wait_for_delete(x, wait=60)
    with pytest.raises(exceptions.BadRequestException) as err:
        conn.compute.create_server(name=name, image_id=s.UBUNTU, flavor_id="s3.small.1", networks="auto",
                                   security_groups=[{"name": "no-such-group"}])
    assert "security group" in err.value.details


# --- errors -------------------------------------------------------------------------------------------------

def test_not_found(conn, base, pid):
    missing = str(uuid.uuid4())
    with pytest.raises(exceptions.NotFoundException) as err:
        conn.compute.get_server(missing)
    assert isinstance(err.value, exceptions.ResourceNotFound)
    assert err.value.status_code == 404
    assert err.value.details and "does not exist" in err.value.details
    assert err.value.request_id and err.value.request_id.startswith("req-")
    assert conn.compute.find_server(missing) is None
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.get_flavor("no.such.flavor")
    with pytest.raises(exceptions.NotFoundException):
        conn.image.get_image(missing)
    # the ECS v1 API through the ecs proxy: the response mapped as openstacksdk maps it
    r = conn.ecs.get(f"/cloudservers/{missing}")
    with pytest.raises(exceptions.NotFoundException) as err:
        exceptions.raise_from_response(r)
    assert "does not exist" in err.value.details


def test_bad_request_carries_the_ecs_message(conn, base, pid, server_id):
    with pytest.raises(exceptions.BadRequestException) as err:
        conn.compute.create_keypair(name="no/slashes!")
    assert err.value.status_code == 400
    assert err.value.details.startswith(INVALID_MESSAGE)
    assert "keypair.name" in err.value.details  # the specific reason reaches openstacksdk users
    assert err.value.request_id.startswith("req-")

    body = {"os-change": {"imageid": "not-a-uuid"}}
    r = conn.ecs.post(f"/cloudservers/{server_id}/changeos", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "Ecs.0005"
    with pytest.raises(exceptions.BadRequestException) as err:
        exceptions.raise_from_response(r)
    assert err.value.details.startswith(INVALID_MESSAGE)

    # plain keystoneauth (conn.session) raises its own exception type, with the same message
    with pytest.raises(ks_exceptions.BadRequest) as ks_err:
        conn.session.post(f"{base}/v1/{pid}/cloudservers/{server_id}/changeos", json=body)
    assert ks_err.value.http_status == 400 and INVALID_MESSAGE in ks_err.value.message
    assert ks_err.value.request_id.startswith("req-")


def test_invalid_token_is_401_not_403(base, pid):
    r = httpx.get(f"{base}/v2.1/{pid}/os-keypairs", headers={"X-Auth-Token": "not-a-token"}, timeout=10)
    assert r.status_code == 401, r.text
    r = httpx.get(f"{base}/v1/{pid}/cloudservers/detail", timeout=10)
    assert r.status_code == 401, r.text


def test_revoked_token_is_renewed_on_401(base, creds, pid):
    c = connect(base, creds)
    try:
        old = c.authorize()
        list(c.compute.keypairs())   # the token works
        r = c.session.delete(f"{base}/v3/auth/tokens", headers={"X-Subject-Token": old})
        assert r.status_code == 204
        # the token is dead for everyone now ...
        dead = httpx.get(f"{base}/v2.1/{pid}/os-keypairs", headers={"X-Auth-Token": old}, timeout=10)
        assert dead.status_code == 401
        # ... and openstacksdk gets a 401, re-authenticates and retries, transparently
        c.compute.create_keypair(name="after-revoke")
        assert "after-revoke" in [k.name for k in c.compute.keypairs()]
        new = c.session.get_token()
        assert new and new != old
        r = c.ecs.get("/cloudservers/detail")   # the ECS API with the renewed token
        assert r.status_code == 200 and r.json()["count"] >= 0
        c.compute.delete_keypair("after-revoke", ignore_missing=False)
    finally:
        c.close()


# --- the openstack CLI ----------------------------------------------------------------------------------

def _openstack_bin() -> str:
    pytest.importorskip("openstackclient", reason="python-openstackclient is not installed: pip install -e '.[test]'")
    path = os.path.join(os.path.dirname(sys.executable), "openstack")
    if not os.path.exists(path):
        pytest.skip(f"python-openstackclient is installed but {path} is missing")
    return path


@pytest.fixture(scope="module")
def cli(base, creds):
    exe = _openstack_bin()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}   # no ambient cloud config
    auth = ["--os-auth-url", f"{base}/v3", "--os-username", creds["user_name"],
            "--os-password", creds["password"], "--os-project-name", creds["project_name"],
            "--os-user-domain-name", creds["domain_name"], "--os-project-domain-name", creds["domain_name"]]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([exe, *auth, *args], env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, check=False)
        if check:
            assert r.returncode == 0, f"openstack {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    return run


def _parallel(cli, *commands: tuple[str, ...], check: bool = True) -> list[subprocess.CompletedProcess]:
    """Run independent CLI commands side by side (each one costs the CLI's ~1.5 s start-up)."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: cli(*args, check=check), commands))


def test_cli_keypairs(cli, conn):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    created = cli("keypair", "create", name)
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in created.stdout
    listed, shown = _parallel(cli, ("keypair", "list", "-f", "json"), ("keypair", "show", name, "-f", "json"))
    assert name in [k["Name"] for k in json.loads(listed.stdout)]
    shown = json.loads(shown.stdout)
    assert shown["name"] == name and shown["type"] == "ssh"
    assert conn.compute.get_keypair(name).fingerprint == shown["fingerprint"]   # the same user's key pair
    cli("keypair", "delete", name)
    assert conn.compute.find_keypair(name) is None


def test_cli_lists_and_show(cli, server_id):
    servers, flavors, images, shown, missing = _parallel(
        cli, ("server", "list", "-f", "json"), ("flavor", "list", "-f", "json"), ("image", "list", "-f", "json"),
        ("server", "show", server_id, "-f", "json"), ("server", "show", str(uuid.uuid4())), check=False)
    for r in (servers, flavors, images, shown):
        assert r.returncode == 0, f"{r.args[-4:]} -> {r.returncode}\n{r.stdout}\n{r.stderr}"

    mine = [srv for srv in json.loads(servers.stdout) if srv["ID"] == server_id]
    assert len(mine) == 1 and mine[0]["Name"] == "sdk-srv" and mine[0]["Status"] == "ACTIVE"
    assert mine[0]["Flavor"] == "s3.small.1"

    small = next(f for f in json.loads(flavors.stdout) if f["ID"] == "s3.small.1")
    assert small["Name"] == "s3.small.1" and small["RAM"] == 1024 and small["VCPUs"] == 1

    assert {i["ID"]: i["Name"] for i in json.loads(images.stdout)}[s.UBUNTU] == "Standard_Ubuntu_22.04_latest"

    shown = json.loads(shown.stdout)
    assert shown["id"] == server_id and shown["status"] == "ACTIVE" and shown["key_name"] is None
    assert missing.returncode == 1 and "No Server found" in missing.stderr


def test_cli_server_create_wait_and_delete(cli, conn):
    name = f"cli-srv-{uuid.uuid4().hex[:6]}"
    created = cli("server", "create", "--image", s.UBUNTU, "--flavor", "s3.small.1", "--nic", "auto", "--wait",
                  "-f", "json", name)
    shown = json.loads(created.stdout)
    assert shown["name"] == name and shown["status"] == "ACTIVE" and shown["adminPass"]
    assert conn.compute.get_server(shown["id"]).status == "ACTIVE"
    cli("server", "set", "--name", f"{name}-b", shown["id"])
    assert conn.compute.get_server(shown["id"]).name == f"{name}-b"
    cli("server", "delete", "--wait", f"{name}-b")
    assert conn.compute.find_server(shown["id"]) is None
