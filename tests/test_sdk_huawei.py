"""The official Huawei Cloud Python SDK, unchanged, against a real ``ecsd serve`` (AK/SK signing).

Every call goes through the SDK's own client classes (``EcsClient``, ``ImsClient``, ``IamClient``)
built with ``BasicCredentials(ak, sk, project_id)`` / ``GlobalCredentials`` and
``.with_endpoint(base_url)``, so each request is ``SDK-HMAC-SHA256``-signed by the SDK's signer and
verified by the server. What is proven, against one server process for the whole module:

* IAM: a password token through ``IamClient`` (``x_subject_token``), project listings, and the
  SDK's own project lookup (``GET /v3/projects?name=eu-de``) when the credentials carry no
  project id but a region;
* ECS: Nova key pairs, flavors, create (``serverIds``, jobs), show, list with query parameters,
  batch stop/start, change OS without and with Cloud-Init, reinstall, a failing change OS
  (fault-injection image), delete;
* IMS: ``list_images`` with ``__os_type``/``__platform``/``limit``, scoped by the signed
  ``X-Project-Id`` alone;
* errors as the SDK surfaces them (``ClientRequestException`` with ``status_code``,
  ``error_code``, ``request_id``): unknown server, invalid body, wrong SK, foreign project,
  revoked access key.

A response field the SDK cannot convert to its model's type is a failure here
(``TypeConversionWarning`` is turned into an error), so the typed views are checked too.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

pytest.importorskip("huaweicloudsdkcore", reason="the Huawei Cloud SDK is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkecs", reason="huaweicloudsdkecs is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkims", reason="huaweicloudsdkims is not installed: pip install -e '.[test]'")
pytest.importorskip("huaweicloudsdkiam", reason="huaweicloudsdkiam is not installed: pip install -e '.[test]'")

from huaweicloudsdkcore.auth.credentials import BasicCredentials, GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, SdkException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkecs.v2 import (
    BatchStartServersOption,
    BatchStartServersRequest,
    BatchStartServersRequestBody,
    BatchStopServersOption,
    BatchStopServersRequest,
    BatchStopServersRequestBody,
    BatchUpdateServersNameRequest,
    BatchUpdateServersNameRequestBody,
    ChangeServerOsWithCloudInitOption,
    ChangeServerOsWithCloudInitRequest,
    ChangeServerOsWithCloudInitRequestBody,
    ChangeServerOsWithoutCloudInitOption,
    ChangeServerOsWithoutCloudInitRequest,
    ChangeServerOsWithoutCloudInitRequestBody,
    ChangeSeversOsMetadata,
    CreatePostPaidServersRequest,
    CreatePostPaidServersRequestBody,
    DeleteServerMetadataRequest,
    DeleteServersRequest,
    DeleteServersRequestBody,
    EcsClient,
    ListFlavorsRequest,
    ListServerBlockDevicesRequest,
    ListServerInterfacesRequest,
    ListServersDetailsRequest,
    NovaCreateKeypairOption,
    NovaCreateKeypairRequest,
    NovaCreateKeypairRequestBody,
    NovaDeleteKeypairRequest,
    NovaListKeypairsRequest,
    NovaShowKeypairRequest,
    PostPaidServer,
    PostPaidServerNic,
    PostPaidServerRootVolume,
    ReinstallServerWithoutCloudInitOption,
    ReinstallServerWithoutCloudInitRequest,
    ReinstallServerWithoutCloudInitRequestBody,
    ServerId,
    ShowJobRequest,
    ShowServerBlockDeviceRequest,
    ShowServerLimitsRequest,
    ShowServerRequest,
    UpdateServerMetadataRequest,
    UpdateServerMetadataRequestBody,
)
from huaweicloudsdkiam.v3 import (
    AuthScope,
    AuthScopeProject,
    IamClient,
    KeystoneCreateUserTokenByPasswordRequest,
    KeystoneCreateUserTokenByPasswordRequestBody,
    KeystoneListAuthProjectsRequest,
    KeystoneListProjectsRequest,
    KeystoneShowProjectRequest,
    PwdAuth,
    PwdIdentity,
    PwdPassword,
    PwdPasswordUser,
    PwdPasswordUserDomain,
)
from huaweicloudsdkims.v2 import ImsClient, ListImagesRequest
from requests.structures import CaseInsensitiveDict

from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    # The Nova methods of EcsClient (key pairs) are deprecated in the SDK; they still are how an SDK
    # user manages key pairs, so their warning is silenced here, and only here.
    pytest.mark.filterwarnings(r"ignore:Method 'nova_\w+' of EcsClient is deprecated:DeprecationWarning"),
    # A response value the SDK cannot convert to its model's declared type is a server bug.
    pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning"),
]

REGION = "eu-de"
POLL = 0.05
JOB_TIMEOUT = 20.0
REVOCATION_WAIT = 6.5   # the server caches access keys for 5 s


# --- the wire, as the SDK saw it ------------------------------------------------------------------------

@dataclass
class Exchange:
    method: str
    path: str
    query: list[tuple[str, str]]
    request_headers: CaseInsensitiveDict
    status: int
    response_headers: CaseInsensitiveDict

    @property
    def signed_headers(self) -> list[str]:
        auth = self.request_headers.get("Authorization", "")
        for part in auth.split(", "):
            if "SignedHeaders=" in part:
                return part.split("SignedHeaders=", 1)[1].split(";")
        return []


@dataclass
class Wire:
    """Every response the SDK received (with its request), recorded by an ``HttpHandler`` hook."""

    exchanges: list[Exchange] = field(default_factory=list)

    def handler(self) -> HttpHandler:
        def on_response(response=None, **_kw):
            req = response.request
            url = urlsplit(req.url)
            self.exchanges.append(Exchange(
                req.method, url.path, parse_qsl(url.query, keep_blank_values=True),
                CaseInsensitiveDict(req.headers), response.status_code, CaseInsensitiveDict(response.headers)))

        return HttpHandler().add_response_handler(on_response)

    def last(self, method: str | None = None, path_part: str = "") -> Exchange:
        for ex in reversed(self.exchanges):
            if (method is None or ex.method == method) and path_part in ex.path:
                return ex
        raise AssertionError(f"no {method or ''} request to ...{path_part}... among "
                             f"{[(e.method, e.path) for e in self.exchanges]}")

    def clear(self) -> None:
        self.exchanges.clear()


# --- clients ---------------------------------------------------------------------------------------------

def _config() -> HttpConfig:
    cfg = HttpConfig.get_default_config()
    cfg.timeout = (5, 30)
    return cfg


def _build(client_cls, credentials, *, endpoint: str | None = None, region: Region | None = None,
           wire: Wire | None = None):
    builder = client_cls.new_builder().with_http_config(_config()).with_credentials(credentials)
    if endpoint is not None:
        builder = builder.with_endpoint(endpoint)
    if region is not None:
        builder = builder.with_region(region)
    if wire is not None:
        builder = builder.with_http_handler(wire.handler())
    return builder.build()


def ecs_client(base: str, ak: str, sk: str, project_id: str | None, wire: Wire | None = None) -> EcsClient:
    return _build(EcsClient, BasicCredentials(ak, sk, project_id), endpoint=base, wire=wire)


@dataclass
class Env:
    base: str
    creds: dict
    data_dir: str
    wire: Wire
    ecs: EcsClient
    ims: ImsClient
    iam: IamClient

    @property
    def pid(self) -> str:
        return self.creds["project_id"]

    @property
    def uid(self) -> str:
        return self.creds["user_id"]

    def ecsd(self, *args: str) -> str:
        """Run an ``ecsd`` administration command on the server's data directory."""
        r = subprocess.run([sys.executable, "-m", "ecsd", *args, "--data-dir", self.data_dir],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert r.returncode == 0, f"ecsd {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture(scope="module")
def env(ecsd_server) -> Env:  # noqa: F811
    base, creds = ecsd_server
    wire = Wire()
    ak, sk, pid = creds["ak"], creds["sk"], creds["project_id"]
    return Env(
        base=base, creds=creds, data_dir=ecsd_server.data_dir, wire=wire,
        ecs=ecs_client(base, ak, sk, pid, wire),
        ims=_build(ImsClient, BasicCredentials(ak, sk, pid), endpoint=base, wire=wire),
        iam=_build(IamClient, BasicCredentials(ak, sk, pid), endpoint=base, wire=wire))


def raises_sdk(fn: Callable[[], Any]) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as err:
        fn()
    return err.value


# --- jobs and servers ------------------------------------------------------------------------------------

def wait_job(ecs: EcsClient, job_id: str, timeout: float = JOB_TIMEOUT):
    """Poll ``show_job`` until SUCCESS or FAIL."""
    assert job_id, "no job id"
    deadline = time.monotonic() + timeout
    while True:
        job = ecs.show_job(ShowJobRequest(job_id=job_id))
        if job.status in ("SUCCESS", "FAIL"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")
        time.sleep(POLL)


def create_servers(ecs: EcsClient, name: str, *, count: int = 1) -> list[str]:
    """``create_post_paid_servers`` (with an ``X-Client-Token``), then ``show_job`` until it is done."""
    server = PostPaidServer(
        name=name, image_ref=s.UBUNTU, flavor_ref="s3.small.1", vpcid=s.VPC,
        nics=[PostPaidServerNic(subnet_id=s.SUBNET)], root_volume=PostPaidServerRootVolume(volumetype="SSD"),
        count=count)
    resp = ecs.create_post_paid_servers(CreatePostPaidServersRequest(
        x_client_token=str(uuid.uuid4()), body=CreatePostPaidServersRequestBody(server=server)))
    assert resp.job_id and resp.server_ids and len(resp.server_ids) == count, resp
    job = wait_job(ecs, resp.job_id)
    assert job.status == "SUCCESS", job
    assert job.job_type == "createServer"
    subs = job.entities.sub_jobs
    assert job.entities.sub_jobs_total == count and len(subs) == count
    assert sorted(sub.entities.server_id for sub in subs) == sorted(resp.server_ids)
    assert all(sub.status == "SUCCESS" for sub in subs)
    return list(resp.server_ids)


def delete_servers(ecs: EcsClient, server_ids: list[str]) -> None:
    resp = ecs.delete_servers(DeleteServersRequest(body=DeleteServersRequestBody(
        servers=[ServerId(id=sid) for sid in server_ids], delete_publicip=True, delete_volume=True)))
    job = wait_job(ecs, resp.job_id)
    assert job.status == "SUCCESS", job


def show(ecs: EcsClient, server_id: str):
    return ecs.show_server(ShowServerRequest(server_id=server_id)).server


def system_disk(ecs: EcsClient, server_id: str) -> str:
    """The system disk's id, from ``list_server_block_devices`` and, consistently, ``show_server``."""
    devices = ecs.list_server_block_devices(ListServerBlockDevicesRequest(server_id=server_id))
    boot = [d for d in devices.volume_attachments if d.boot_index == 0]
    assert len(boot) == 1, devices
    assert boot[0].server_id == server_id and boot[0].size and boot[0].size > 0
    attached = show(ecs, server_id).os_extended_volumesvolumes_attached
    assert [v.id for v in attached if v.boot_index == "0"] == [boot[0].volume_id]
    return boot[0].volume_id


def create_keypair(ecs: EcsClient, name: str, public_key: str | None = None):
    return ecs.nova_create_keypair(NovaCreateKeypairRequest(body=NovaCreateKeypairRequestBody(
        keypair=NovaCreateKeypairOption(name=name, public_key=public_key)))).keypair


def new_keypair(ecs: EcsClient) -> str:
    name = f"hw-{uuid.uuid4().hex[:8]}"
    create_keypair(ecs, name)
    return name


def drop_keypair(ecs: EcsClient, name: str) -> None:
    ecs.nova_delete_keypair(NovaDeleteKeypairRequest(keypair_name=name))


def change_os_v1(ecs: EcsClient, server_id: str, **option) -> str:
    return ecs.change_server_os_without_cloud_init(ChangeServerOsWithoutCloudInitRequest(
        server_id=server_id,
        body=ChangeServerOsWithoutCloudInitRequestBody(os_change=ChangeServerOsWithoutCloudInitOption(**option)),
    )).job_id


@pytest.fixture(scope="module")
def server_id(env):
    """One server for the change-OS tests, created through ``create_post_paid_servers``."""
    (sid,) = create_servers(env.ecs, "sdk-hw-os")
    yield sid
    delete_servers(env.ecs, [sid])


# --- IAM ---------------------------------------------------------------------------------------------------

def _password_token_request(creds: dict) -> KeystoneCreateUserTokenByPasswordRequest:
    user = PwdPasswordUser(domain=PwdPasswordUserDomain(name=creds["domain_name"]), name=creds["user_name"],
                           password=creds["password"])
    auth = PwdAuth(identity=PwdIdentity(methods=["password"], password=PwdPassword(user=user)),
                   scope=AuthScope(project=AuthScopeProject(name=creds["project_name"])))
    return KeystoneCreateUserTokenByPasswordRequest(body=KeystoneCreateUserTokenByPasswordRequestBody(auth=auth))


@pytest.mark.parametrize("kind", ["global", "basic"])
def test_iam_password_token(env, kind):
    ak, sk = env.creds["ak"], env.creds["sk"]
    credentials = GlobalCredentials(ak, sk) if kind == "global" else BasicCredentials(ak, sk, env.pid)
    iam = _build(IamClient, credentials, endpoint=env.base, wire=env.wire)
    resp = iam.keystone_create_user_token_by_password(_password_token_request(env.creds))
    assert resp.status_code == 201
    assert resp.x_subject_token and len(resp.x_subject_token) > 16
    token = resp.token
    assert token.project.id == env.pid and token.project.name == REGION
    assert token.user.id == env.uid and token.user.name == env.creds["user_name"]
    assert token.methods == ["password"] and token.expires_at
    catalog = {entry.type: entry.endpoints[0].url for entry in token.catalog}
    assert catalog["ecs"] == f"{env.base}/v1/{env.pid}"
    assert catalog["compute"] == f"{env.base}/v2.1/{env.pid}"
    # the request went out AK/SK-signed, as IamClient always does
    ex = env.wire.last("POST", "/v3/auth/tokens")
    assert ex.request_headers["Authorization"].startswith("SDK-HMAC-SHA256 Access=" + ak)
    if kind == "basic":
        assert ex.request_headers["X-Project-Id"] == env.pid and "x-project-id" in ex.signed_headers
    else:   # no domain id given and no region: nothing is looked up, no X-Domain-Id is sent
        assert "X-Domain-Id" not in ex.request_headers and "X-Project-Id" not in ex.request_headers

    # the token it returned is a working Keystone token for the ECS API
    r = httpx.get(f"{env.base}/v1/{env.pid}/cloudservers/detail", headers={"X-Auth-Token": resp.x_subject_token},
                  timeout=10)
    assert r.status_code == 200, r.text


def test_iam_project_listings(env):
    listed = env.iam.keystone_list_projects(KeystoneListProjectsRequest())
    assert env.pid in [p.id for p in listed.projects]
    by_name = env.iam.keystone_list_projects(KeystoneListProjectsRequest(name=REGION))
    assert [p.id for p in by_name.projects] == [env.pid]
    assert by_name.projects[0].name == REGION and by_name.projects[0].enabled is True
    assert env.iam.keystone_list_projects(KeystoneListProjectsRequest(name="no-such-region")).projects == []

    auth_projects = env.iam.keystone_list_auth_projects(KeystoneListAuthProjectsRequest())
    mine = [p for p in auth_projects.projects if p.id == env.pid]
    assert len(mine) == 1 and mine[0].name == REGION and mine[0].domain_id

    # GlobalCredentials with the account's domain id (sent as the signed X-Domain-Id)
    domain_id = mine[0].domain_id
    iam = _build(IamClient, GlobalCredentials(env.creds["ak"], env.creds["sk"], domain_id), endpoint=env.base,
                 wire=env.wire)
    assert env.pid in [p.id for p in iam.keystone_list_auth_projects(KeystoneListAuthProjectsRequest()).projects]
    ex = env.wire.last("GET", "/v3/auth/projects")
    assert ex.request_headers["X-Domain-Id"] == domain_id and "x-domain-id" in ex.signed_headers


def _forget_cached_project(ak: str, region: str) -> None:
    # The SDK caches a looked-up project id per AK and region for the whole process.
    with BasicCredentials._LOCK:
        BasicCredentials._CACHE.pop(ak + region, None)


def test_region_based_project_lookup(env):
    ak, sk = env.creds["ak"], env.creds["sk"]
    _forget_cached_project(ak, REGION)
    wire = Wire()
    credentials = BasicCredentials(ak, sk).with_iam_endpoint(env.base)
    ecs = _build(EcsClient, credentials, region=Region(REGION, env.base), wire=wire)
    # building the client asked IAM for the project named like the region ...
    lookup = wire.exchanges[0]
    assert (lookup.method, lookup.path, lookup.query) == ("GET", "/v3/projects", [("name", REGION)])
    assert lookup.status == 200 and "X-Project-Id" not in lookup.request_headers
    assert lookup.request_headers["Authorization"].startswith("SDK-HMAC-SHA256 Access=" + ak)
    assert credentials.project_id == env.pid
    # ... and then proceeds with it, in the path and in X-Project-Id
    resp = ecs.list_servers_details(ListServersDetailsRequest(limit=5))
    assert resp.count is not None
    ex = wire.last("GET", "/cloudservers/detail")
    assert ex.path == f"/v1/{env.pid}/cloudservers/detail" and ex.request_headers["X-Project-Id"] == env.pid

    # the same for IMS, whose path has no project: X-Project-Id is the whole scope
    _forget_cached_project(ak, REGION)
    ims = _build(ImsClient, BasicCredentials(ak, sk).with_iam_endpoint(env.base), region=Region(REGION, env.base),
                 wire=wire)
    assert s.UBUNTU in [i.id for i in ims.list_images(ListImagesRequest(limit=100)).images]
    assert wire.last("GET", "/v2/cloudimages").request_headers["X-Project-Id"] == env.pid


def test_region_without_a_matching_project_is_an_sdk_error(env):
    ak, sk = env.creds["ak"], env.creds["sk"]
    _forget_cached_project(ak, "eu-nl")
    with pytest.raises(SdkException) as err:
        _build(EcsClient, BasicCredentials(ak, sk).with_iam_endpoint(env.base), region=Region("eu-nl", env.base))
    assert "Failed to get project id of region 'eu-nl'" in str(err.value)


def test_endpoint_without_project_id_is_unknown_project(env):
    # no region, no project id: the SDK sends the literal "{project_id}" (as %7Bproject_id%7D)
    wire = Wire()
    ecs = ecs_client(env.base, env.creds["ak"], env.creds["sk"], None, wire)
    err = raises_sdk(lambda: ecs.list_servers_details(ListServersDetailsRequest()))
    assert (err.status_code, err.error_code) == (400, "Ecs.0023")
    assert wire.last().path == "/v1/%7Bproject_id%7D/cloudservers/detail"


# --- ECS: key pairs and flavors ------------------------------------------------------------------------------

def test_keypair_lifecycle(env):
    ecs = env.ecs
    name = f"hw-{uuid.uuid4().hex[:8]}"
    created = create_keypair(ecs, name)
    assert created.name == name and created.type == "ssh" and created.user_id == env.uid
    assert created.private_key and "PRIVATE KEY" in created.private_key
    assert created.public_key.startswith("ssh-") and created.fingerprint

    listed = ecs.nova_list_keypairs(NovaListKeypairsRequest()).keypairs
    mine = [k.keypair for k in listed if k.keypair.name == name]
    assert len(mine) == 1 and mine[0].fingerprint == created.fingerprint and mine[0].type == "ssh"
    assert len(ecs.nova_list_keypairs(NovaListKeypairsRequest(limit=1)).keypairs) == 1

    shown = ecs.nova_show_keypair(NovaShowKeypairRequest(keypair_name=name)).keypair
    assert shown.name == name and shown.public_key == created.public_key
    assert shown.fingerprint == created.fingerprint and shown.user_id == env.uid
    assert shown.deleted is False and isinstance(shown.id, int)
    assert shown.created_at is not None and shown.created_at.year >= 2024   # a datetime, parsed by the SDK

    # importing the public key under another name: no private key comes back
    imported = create_keypair(ecs, name + "-imp", public_key=created.public_key)
    assert imported.fingerprint == created.fingerprint and imported.private_key is None

    deleted = ecs.nova_delete_keypair(NovaDeleteKeypairRequest(keypair_name=name))
    assert deleted.status_code in (202, 204)
    drop_keypair(ecs, name + "-imp")
    assert name not in [k.keypair.name for k in ecs.nova_list_keypairs(NovaListKeypairsRequest()).keypairs]
    err = raises_sdk(lambda: ecs.nova_show_keypair(NovaShowKeypairRequest(keypair_name=name)))
    assert err.status_code == 404 and err.request_id
    err = raises_sdk(lambda: ecs.nova_delete_keypair(NovaDeleteKeypairRequest(keypair_name=name)))
    assert err.status_code == 404


def test_keypair_duplicate_is_conflict(env):
    name = new_keypair(env.ecs)
    try:
        err = raises_sdk(lambda: create_keypair(env.ecs, name))
        assert err.status_code == 409 and err.error_code.startswith("Ecs.") and err.error_msg
    finally:
        drop_keypair(env.ecs, name)


def test_list_flavors(env):
    flavors = {f.id: f for f in env.ecs.list_flavors(ListFlavorsRequest()).flavors}
    small = flavors["s3.small.1"]
    assert small.name == "s3.small.1" and small.vcpus == "1" and small.ram == 1024
    assert small.os_extra_specs.ecsperformancetype == "normal"
    assert {"s3.medium.2", "c6.large.2", "m6.large.8"} <= set(flavors)
    by_az = env.ecs.list_flavors(ListFlavorsRequest(availability_zone="eu-de-01")).flavors
    assert "s3.small.1" in [f.id for f in by_az]


# --- ECS: servers ----------------------------------------------------------------------------------------------

def test_create_show_list_stop_start_delete(env):
    ecs = env.ecs
    prefix = f"hw{uuid.uuid4().hex[:6]}"
    ids = create_servers(ecs, prefix, count=2)

    srv = show(ecs, ids[0])
    assert srv.id == ids[0] and srv.name.startswith(prefix) and srv.status == "ACTIVE"
    assert srv.image.id == s.UBUNTU and srv.flavor.id == "s3.small.1" and srv.flavor.vcpus == "1"
    assert srv.tenant_id == env.pid and srv.user_id == env.uid
    assert srv.os_ext_st_svm_state == "active" and srv.os_ext_st_spower_state == 1
    assert srv.addresses and srv.os_extended_volumesvolumes_attached
    assert srv.metadata is not None and srv.locked is False

    # a query with a space (sent as %20 and signed that way), limit and offset (a page number)
    none = ecs.list_servers_details(ListServersDetailsRequest(name=f"{prefix} x", limit=10, offset=1))
    assert none.count == 0 and none.servers == []
    ex = env.wire.last("GET", "/cloudservers/detail")
    assert ("name", f"{prefix} x") in ex.query and ex.status == 200
    page1 = ecs.list_servers_details(ListServersDetailsRequest(name=prefix, limit=1, offset=1))
    page2 = ecs.list_servers_details(ListServersDetailsRequest(name=prefix, limit=1, offset=2))
    assert page1.count == 2 and page2.count == 2
    assert len(page1.servers) == 1 and len(page2.servers) == 1
    assert {page1.servers[0].id, page2.servers[0].id} == set(ids)
    everything = ecs.list_servers_details(ListServersDetailsRequest(name=prefix, limit=50))
    assert sorted(x.id for x in everything.servers) == sorted(ids)

    stop = ecs.batch_stop_servers(BatchStopServersRequest(body=BatchStopServersRequestBody(
        os_stop=BatchStopServersOption(servers=[ServerId(id=i) for i in ids], type="SOFT"))))
    job = wait_job(ecs, stop.job_id)
    assert job.status == "SUCCESS" and job.job_type == "batchStopServer", job
    assert {show(ecs, i).status for i in ids} == {"SHUTOFF"}
    stopped = ecs.list_servers_details(ListServersDetailsRequest(name=prefix, status="SHUTOFF"))
    assert stopped.count == 2

    start = ecs.batch_start_servers(BatchStartServersRequest(body=BatchStartServersRequestBody(
        os_start=BatchStartServersOption(servers=[ServerId(id=i) for i in ids]))))
    job = wait_job(ecs, start.job_id)
    assert job.status == "SUCCESS" and job.job_type == "batchStartServer", job
    assert {show(ecs, i).status for i in ids} == {"ACTIVE"}

    delete_servers(ecs, ids)
    for sid in ids:
        err = raises_sdk(lambda sid=sid: show(ecs, sid))
        assert (err.status_code, err.error_code) == (404, "Ecs.0114")
    assert ecs.list_servers_details(ListServersDetailsRequest(name=prefix)).count == 0


def test_change_os_without_cloud_init(env, server_id):
    ecs = env.ecs
    key = new_keypair(ecs)
    try:
        before = system_disk(ecs, server_id)
        env.wire.clear()
        job_id = change_os_v1(ecs, server_id, keyname=key, userid=env.uid, imageid=s.DEBIAN, mode="withStopServer")
        ex = env.wire.last("POST", "/changeos")
        assert ex.path == f"/v1/{env.pid}/cloudservers/{server_id}/changeos"
        job = wait_job(ecs, job_id)
        assert job.status == "SUCCESS", job
        assert job.job_type == "changeOS" and job.entities.server_id == server_id
        assert job.begin_time and job.end_time
        srv = show(ecs, server_id)
        assert srv.image.id == s.DEBIAN and srv.key_name == key and srv.status == "ACTIVE"
        after = system_disk(ecs, server_id)
        assert after != before
    finally:
        drop_keypair(ecs, key)


def test_change_os_with_cloud_init(env, server_id):
    ecs = env.ecs
    key = new_keypair(ecs)
    user_data = base64.b64encode(b"#cloud-config\nhostname: from-the-sdk\n").decode()
    try:
        before = system_disk(ecs, server_id)
        resp = ecs.change_server_os_with_cloud_init(ChangeServerOsWithCloudInitRequest(
            server_id=server_id, body=ChangeServerOsWithCloudInitRequestBody(os_change=ChangeServerOsWithCloudInitOption(
                keyname=key, userid=env.uid, imageid=s.UBUNTU, mode="withStopServer",
                metadata=ChangeSeversOsMetadata(user_data=user_data)))))
        assert env.wire.last("POST", "/changeos").path == f"/v2/{env.pid}/cloudservers/{server_id}/changeos"
        job = wait_job(ecs, resp.job_id)
        assert job.status == "SUCCESS", job
        assert job.entities.server_id == server_id
        srv = show(ecs, server_id)
        assert srv.image.id == s.UBUNTU and srv.key_name == key and srv.status == "ACTIVE"
        assert system_disk(ecs, server_id) != before
    finally:
        drop_keypair(ecs, key)


def test_reinstall_without_cloud_init(env, server_id):
    ecs = env.ecs
    key = new_keypair(ecs)
    try:
        image_before = show(ecs, server_id).image.id
        disk_before = system_disk(ecs, server_id)
        resp = ecs.reinstall_server_without_cloud_init(ReinstallServerWithoutCloudInitRequest(
            server_id=server_id, body=ReinstallServerWithoutCloudInitRequestBody(
                os_reinstall=ReinstallServerWithoutCloudInitOption(keyname=key, userid=env.uid,
                                                                   mode="withStopServer"))))
        assert env.wire.last("POST", "/reinstallos").path == f"/v1/{env.pid}/cloudservers/{server_id}/reinstallos"
        job = wait_job(ecs, resp.job_id)
        assert job.status == "SUCCESS", job
        assert job.job_type == "reinstallOS"
        srv = show(ecs, server_id)
        assert srv.image.id == image_before and srv.key_name == key and srv.status == "ACTIVE"
        assert system_disk(ecs, server_id) != disk_before
    finally:
        drop_keypair(ecs, key)


def test_failing_change_os_is_a_failed_job(env):
    ecs = env.ecs
    (sid,) = create_servers(ecs, "sdk-hw-fault")
    try:
        disk = system_disk(ecs, sid)
        job = wait_job(ecs, change_os_v1(ecs, sid, adminpass="Sdk-Passw0rd!x", imageid=s.FAULTY_DISK,
                                         mode="withStopServer"))
        assert job.status == "FAIL", job
        assert job.error_code == "Ecs.0202" and job.fail_reason
        srv = show(ecs, sid)
        assert srv.status == "ERROR" and srv.image.id == s.UBUNTU
        assert system_disk(ecs, sid) == disk   # the old system disk stays
        # a change OS recovers a server left in ERROR by a failed one
        job = wait_job(ecs, change_os_v1(ecs, sid, adminpass="Sdk-Passw0rd!x", imageid=s.DEBIAN,
                                         mode="withStopServer"))
        assert job.status == "SUCCESS", job
        assert show(ecs, sid).image.id == s.DEBIAN
    finally:
        delete_servers(ecs, [sid])


# --- IMS --------------------------------------------------------------------------------------------------------

def test_ims_list_images_with_filters(env):
    ims = env.ims
    resp = ims.list_images(ListImagesRequest(os_type="Linux", platform="Ubuntu", limit=100))
    ids = [i.id for i in resp.images]
    assert s.UBUNTU in ids and s.UBUNTU_UEFI in ids and s.DEBIAN not in ids
    assert all(i.os_type == "Linux" and i.platform == "Ubuntu" for i in resp.images)
    ubuntu = next(i for i in resp.images if i.id == s.UBUNTU)
    assert ubuntu.name == "Standard_Ubuntu_22.04_latest" and ubuntu.status == "active"
    assert ubuntu.visibility == "public" and ubuntu.min_disk == 10 and ubuntu.imagetype == "gold"
    # the wire: no project in the path, the project only in the signed X-Project-Id
    ex = env.wire.last("GET", "/v2/cloudimages")
    assert ex.path == "/v2/cloudimages"
    assert sorted(ex.query) == [("__os_type", "Linux"), ("__platform", "Ubuntu"), ("limit", "100")]
    assert ex.request_headers["X-Project-Id"] == env.pid and "x-project-id" in ex.signed_headers

    # paging with limit and the returned marker
    first = ims.list_images(ListImagesRequest(os_type="Linux", platform="Ubuntu", limit=1))
    assert len(first.images) == 1 and first.page_info.next_marker == first.images[0].id
    second = ims.list_images(ListImagesRequest(os_type="Linux", platform="Ubuntu", limit=1,
                                               marker=first.page_info.next_marker))
    assert len(second.images) == 1 and {first.images[0].id, second.images[0].id} == {s.UBUNTU, s.UBUNTU_UEFI}

    windows = ims.list_images(ListImagesRequest(os_type="Windows", limit=10)).images
    assert [i.id for i in windows] == [s.WINDOWS]


# --- errors as the SDK surfaces them ----------------------------------------------------------------------------

def test_unknown_server_is_404_ecs_0114(env):
    err = raises_sdk(lambda: show(env.ecs, str(uuid.uuid4())))
    assert err.status_code == 404 and err.error_code == "Ecs.0114"
    assert err.error_msg and "does not exist" in err.error_msg
    assert err.request_id and err.request_id == env.wire.last().response_headers["X-Request-Id"]
    err = raises_sdk(lambda: change_os_v1(env.ecs, str(uuid.uuid4()), adminpass="Sdk-Passw0rd!x",
                                          imageid=s.DEBIAN, mode="withStopServer"))
    assert (err.status_code, err.error_code) == (404, "Ecs.0114")


def test_invalid_change_os_body_is_400_ecs_0005(env, server_id):
    err = raises_sdk(lambda: change_os_v1(env.ecs, server_id, adminpass="Sdk-Passw0rd!x", imageid="not-a-uuid",
                                          mode="withStopServer"))
    assert (err.status_code, err.error_code) == (400, "Ecs.0005")
    assert "imageid" in err.error_msg and err.request_id
    # the SDK does no validation of its own: a missing imageid is simply left out of the body
    err = raises_sdk(lambda: change_os_v1(env.ecs, server_id, adminpass="Sdk-Passw0rd!x"))
    assert (err.status_code, err.error_code) == (400, "Ecs.0005")
    err = raises_sdk(lambda: change_os_v1(env.ecs, server_id, imageid=s.DEBIAN, mode="withoutStop"))
    assert (err.status_code, err.error_code) == (400, "Ecs.0005")


def test_wrong_sk_is_401_apigw_0301(env):
    ecs = ecs_client(env.base, env.creds["ak"], "W" * 40, env.pid)
    err = raises_sdk(lambda: ecs.list_servers_details(ListServersDetailsRequest()))
    assert (err.status_code, err.error_code) == (401, "APIGW.0301") and err.request_id
    ims = _build(ImsClient, BasicCredentials(env.creds["ak"], "W" * 40, env.pid), endpoint=env.base)
    err = raises_sdk(lambda: ims.list_images(ListImagesRequest(limit=1)))
    assert (err.status_code, err.error_code) == (401, "APIGW.0301")
    # an AK the server never issued
    ecs = ecs_client(env.base, "A" * 20, env.creds["sk"], env.pid)
    err = raises_sdk(lambda: ecs.list_flavors(ListFlavorsRequest()))
    assert (err.status_code, err.error_code) == (401, "APIGW.0301")


def test_foreign_project_is_400_ecs_0023(env):
    name = f"hw-other-{uuid.uuid4().hex[:6]}"
    env.ecsd("projects", "create", name, "--domain", env.creds["domain_name"])
    listed = json.loads(env.ecsd("projects", "list", "--json"))
    other = next(p["id"] for p in listed if p["name"] == name)   # the demo user is not a member
    for pid in (other, uuid.uuid4().hex):
        ecs = ecs_client(env.base, env.creds["ak"], env.creds["sk"], pid)
        err = raises_sdk(lambda ecs=ecs: ecs.list_servers_details(ListServersDetailsRequest()))
        assert (err.status_code, err.error_code) == (400, "Ecs.0023"), pid
        ims = _build(ImsClient, BasicCredentials(env.creds["ak"], env.creds["sk"], pid), endpoint=env.base)
        err = raises_sdk(lambda ims=ims: ims.list_images(ListImagesRequest(limit=1)))
        assert (err.status_code, err.error_code) == (400, "Ecs.0023"), pid


def test_revoked_key_is_401(env):
    made = json.loads(env.ecsd("keys", "create", "--user", env.creds["user_name"],
                               "--domain", env.creds["domain_name"], "--description", "sdk test", "--json"))
    ak, sk = made["ak"], made["sk"]
    ecs = ecs_client(env.base, ak, sk, env.pid)
    assert ecs.list_flavors(ListFlavorsRequest()).flavors   # the new key works at once
    env.ecsd("keys", "revoke", ak)
    deadline = time.monotonic() + REVOCATION_WAIT
    while True:
        try:
            ecs.list_flavors(ListFlavorsRequest())
        except ClientRequestException as err:
            assert (err.status_code, err.error_code) == (401, "APIGW.0301")
            break
        assert time.monotonic() < deadline, "a revoked access key was still accepted after the cache TTL"
        time.sleep(0.2)
    # the demo key is untouched
    assert env.ecs.list_flavors(ListFlavorsRequest()).flavors


# --- SDK calls that were missing at first (GET /v3/auth/domains, /v3/projects/{id}, one block device, tags) ---

def test_global_credentials_with_region_look_up_the_domain(env):
    ak, sk = env.creds["ak"], env.creds["sk"]
    with GlobalCredentials._LOCK:
        GlobalCredentials._CACHE.pop(ak, None)
    credentials = GlobalCredentials(ak, sk).with_iam_endpoint(env.base)
    iam = _build(IamClient, credentials, region=Region(REGION, env.base))
    assert credentials.domain_id
    assert env.pid in [p.id for p in iam.keystone_list_auth_projects(KeystoneListAuthProjectsRequest()).projects]


def test_iam_show_project(env):
    project = env.iam.keystone_show_project(KeystoneShowProjectRequest(project_id=env.pid)).project
    assert project.id == env.pid and project.name == REGION


def test_show_single_block_device(env, server_id):
    disk = system_disk(env.ecs, server_id)
    dev = env.ecs.show_server_block_device(
        ShowServerBlockDeviceRequest(server_id=server_id, volume_id=disk)).volume_attachment
    assert dev.volume_id == disk and dev.server_id == server_id and dev.boot_index == 0


def test_list_servers_details_filters_by_tags(env, server_id):
    everything = env.ecs.list_servers_details(ListServersDetailsRequest(limit=1000)).count
    assert everything >= 1
    assert env.ecs.list_servers_details(ListServersDetailsRequest(not_tags="__type_baremetal")).count == everything
    assert env.ecs.list_servers_details(ListServersDetailsRequest(tags="no-server-has-this-tag")).count == 0


def test_server_metadata(env, server_id):
    got = env.ecs.update_server_metadata(UpdateServerMetadataRequest(
        server_id=server_id, body=UpdateServerMetadataRequestBody(metadata={"owner": "team-a", "env": "dev"})))
    assert got.metadata["owner"] == "team-a" and got.metadata["env"] == "dev"
    env.ecs.delete_server_metadata(DeleteServerMetadataRequest(server_id=server_id, key="env"))
    shown = env.ecs.show_server(ShowServerRequest(server_id=server_id)).server.metadata
    assert shown["owner"] == "team-a" and "env" not in shown


def test_batch_rename(env, server_id):
    before = env.ecs.show_server(ShowServerRequest(server_id=server_id)).server.name
    try:
        got = env.ecs.batch_update_servers_name(BatchUpdateServersNameRequest(body=BatchUpdateServersNameRequestBody(
            name="renamed-by-sdk", servers=[ServerId(id=server_id)])))
        assert [r.id for r in got.response] == [server_id]
        assert env.ecs.show_server(ShowServerRequest(server_id=server_id)).server.name == "renamed-by-sdk"
    finally:
        env.ecs.batch_update_servers_name(BatchUpdateServersNameRequest(body=BatchUpdateServersNameRequestBody(
            name=before, servers=[ServerId(id=server_id)])))


def test_server_limits(env, server_id):
    limits = env.ecs.show_server_limits(ShowServerLimitsRequest()).absolute
    assert limits.max_total_instances == 2048 and limits.total_instances_used >= 1
    assert limits.total_cores_used >= 1 and limits.total_ram_used >= 1024


def test_server_interfaces(env, server_id):
    nics = env.ecs.list_server_interfaces(ListServerInterfacesRequest(server_id=server_id)).interface_attachments
    assert len(nics) == 1 and nics[0].port_state == "ACTIVE" and nics[0].fixed_ips[0].ip_address


def test_server_password_show_and_delete(env, server_id):
    from huaweicloudsdkecs.v2 import DeleteServerPasswordRequest, ShowServerPasswordRequest

    assert env.ecs.show_server_password(ShowServerPasswordRequest(server_id=server_id)).password == ""
    env.ecs.delete_server_password(DeleteServerPasswordRequest(server_id=server_id))
    err = raises_sdk(lambda: env.ecs.show_server_password(ShowServerPasswordRequest(server_id=s.VPC)))
    assert err.status_code == 404 and err.error_code == "Ecs.0114"


def test_register_server_monitor(env, server_id):
    from huaweicloudsdkecs.v2 import (
        RegisterServerMonitorRequest,
        RegisterServerMonitorRequestBody,
    )

    env.ecs.register_server_monitor(RegisterServerMonitorRequest(
        server_id=server_id, body=RegisterServerMonitorRequestBody(monitor_metrics="")))
    env.ecs.register_server_monitor(RegisterServerMonitorRequest(
        server_id=server_id, body=RegisterServerMonitorRequestBody()))
    err = raises_sdk(lambda: env.ecs.register_server_monitor(RegisterServerMonitorRequest(
        server_id=s.VPC, body=RegisterServerMonitorRequestBody())))
    assert err.status_code == 404 and err.error_code == "Ecs.0114"
