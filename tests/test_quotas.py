"""Quotas enforced at create (instances, vCPUs, RAM), reported by the limits APIs, set with `ecsd quotas`.

Issue 10: five creates with ``count: 500`` gave one project 2,500 servers against a limit of 2,048.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from click.testing import CliRunner

from ecsd.cli import main
from ecsd.domain import identity, invariants, lifecycle, quotas
from ecsd.domain.errors import EcsError
from ecsd.store.db import Store
from tests import support as s
from tests.support import assert_error, held, sql

BOTH_DATABASES = True
CREATE = "/v1/{pid}/cloudservers"
LIMITS = "/v1/{pid}/cloudservers/limits"
# vCPUs and MB of the seeded flavors used here
FLAVORS = {"s3.small.1": (1, 1024), "s3.large.2": (2, 4096), "s3.xlarge.2": (4, 8192), "m6.large.8": (2, 16384)}


def body(count: int = 1, flavor: str = "s3.small.1", name: str = "q", **extra: Any) -> dict:
    return {"server": {"name": name, "imageRef": s.UBUNTU, "flavorRef": flavor, "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}, "count": count},
            **extra}


def set_quotas(api, **values: int | None) -> dict:
    """As `ecsd quotas set` does, on the running service's database."""
    return api.client.app.state.services.store.run_sync(quotas.set_quotas, api.pid, values)


def usage(api) -> tuple[int, int, int]:
    a = api.get(LIMITS).json()["absolute"]
    return a["totalInstancesUsed"], a["totalCoresUsed"], a["totalRAMUsed"]


def live_servers(api) -> int:
    return api.get("/v1/{pid}/cloudservers/detail").json()["count"]


def job_count(api) -> int:
    return sql(api.client, "SELECT count(*) FROM jobs WHERE project_id = :p", p=api.pid).scalar()


def counters_match(api) -> list[str]:
    return api.client.app.state.services.store.run_sync(invariants.server_counts_match)


def refused(resp, *words: str) -> str:
    err = assert_error(resp, 400, "Ecs.0001")
    assert err["message"].startswith("Insufficient ECS quota."), err
    for word in words:
        assert word in err["message"], (word, err)
    assert err["details"][0]["code"] == "Ecs.0001"
    return err["message"]


def accepted(api, resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    job = api.wait_job(resp.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    return resp.json()["serverIds"]


def delete(api, server_ids: list[str]) -> str:
    r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": i} for i in server_ids]})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


# --- enforcement ---------------------------------------------------------------------------------------

def test_the_issue_five_creates_of_500_stop_at_the_default_2048(api):
    """With the default quota, the usage of four accepted creates of 500 (stood in for by the counter)
    leaves room for 48: a fifth create of 500 is refused whole, and so is 49; 48 passes (dry run)."""
    assert api.get(LIMITS).json()["absolute"]["maxTotalInstances"] == 2048
    sql(api.client, "UPDATE projects SET server_count = server_count + 2000 WHERE id = :p", p=api.pid)
    before, jobs = live_servers(api), job_count(api)
    message = refused(api.post(CREATE, body(count=500)), "instances", "requested 500", "2000 of 2048")
    assert "cores" not in message and "RAM" not in message
    refused(api.post(CREATE, body(count=49)), "instances")
    assert api.post(CREATE, body(count=48, dry_run=True)).status_code == 202
    assert (live_servers(api), job_count(api)) == (before, jobs)
    assert usage(api)[0] == 2000


def test_a_create_over_the_instance_quota_is_refused_and_creates_nothing(api):
    set_quotas(api, instances=3)
    accepted(api, api.post(CREATE, body(count=2)))
    before, jobs, used = live_servers(api), job_count(api), usage(api)
    refused(api.post(CREATE, body(count=2)), "Quota exceeded for instances", "requested 2",
            "already used 2 of 3 instances")
    refused(api.post(CREATE, body(count=2, dry_run=True)), "instances")     # a dry run checks the quota too
    assert (live_servers(api), job_count(api), usage(api)) == (before, jobs, used)
    accepted(api, api.post(CREATE, body(count=1)))                          # exactly up to the quota
    assert usage(api) == (3, 3, 3072)
    refused(api.post(CREATE, body()), "already used 3 of 3 instances")
    assert counters_match(api) == []


def test_a_create_over_the_vcpu_quota_is_refused(api):
    set_quotas(api, cores=10)
    accepted(api, api.post(CREATE, body(count=2, flavor="s3.xlarge.2")))   # 8 vCPUs
    jobs = job_count(api)
    message = refused(api.post(CREATE, body(flavor="s3.xlarge.2")), "Quota exceeded for cores", "requested 4",
                      "already used 8 of 10 cores")
    assert "instances" not in message and "RAM" not in message
    assert job_count(api) == jobs and usage(api) == (2, 8, 16384)
    accepted(api, api.post(CREATE, body(flavor="s3.large.2")))             # 2 more: exactly 10
    assert usage(api) == (3, 10, 20480)
    assert counters_match(api) == []


def test_a_create_over_the_ram_quota_is_refused(api):
    set_quotas(api, ram=40000)
    accepted(api, api.post(CREATE, body(count=2, flavor="m6.large.8")))    # 32768 MB
    jobs = job_count(api)
    refused(api.post(CREATE, body(flavor="m6.large.8")), "Quota exceeded for ram", "requested 16384",
            "already used 32768 of 40000 MB of RAM")
    assert job_count(api) == jobs and usage(api) == (2, 4, 32768)
    accepted(api, api.post(CREATE, body(count=7, flavor="s3.small.1")))    # 7168 MB: 39936
    refused(api.post(CREATE, body(flavor="s3.small.1")), "ram")
    assert counters_match(api) == []


def test_every_quota_passed_is_named(api):
    set_quotas(api, instances=1, cores=1, ram=1024)
    refused(api.post(CREATE, body(count=2, flavor="s3.large.2")), "for instances: requested 2", "for cores: requested 4",
            "for ram: requested 8192")


def test_minus_one_is_unlimited_and_zero_allows_nothing(api):
    set_quotas(api, instances=-1, cores=-1, ram=-1)
    sql(api.client, "UPDATE projects SET server_count = server_count + 5000000, cores_used = cores_used + 9000000, "
                    "ram_used = ram_used + 90000000000 WHERE id = :p", p=api.pid)
    assert api.post(CREATE, body(count=500, dry_run=True)).status_code == 202
    sql(api.client, "UPDATE projects SET server_count = server_count - 5000000, cores_used = cores_used - 9000000, "
                    "ram_used = ram_used - 90000000000 WHERE id = :p", p=api.pid)
    set_quotas(api, instances=0, cores=None, ram=None)
    refused(api.post(CREATE, body()), "already used 0 of 0 instances")


def test_quotas_are_per_project(api, other_api):
    set_quotas(api, instances=1)
    accepted(api, api.post(CREATE, body()))
    refused(api.post(CREATE, body()), "instances")
    accepted(other_api, other_api.post(CREATE, body(count=2)))             # the other project keeps its defaults
    assert usage(api) == (1, 1, 1024) and usage(other_api) == (2, 2, 2048)


def test_an_idempotent_repeat_is_not_charged_again(api):
    set_quotas(api, instances=1)
    headers = {"X-Client-Token": "quota-repeat"}
    first = api.post(CREATE, body(), headers=headers)
    accepted(api, first)
    assert api.post(CREATE, body(), headers=headers).json() == first.json()  # the quota is full, but a repeat answers
    assert usage(api)[0] == 1


# --- concurrency ----------------------------------------------------------------------------------------

def test_concurrent_creates_never_pass_the_quota(api):
    set_quotas(api, instances=5)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: api.post(CREATE, body(name=f"race{i}")), range(12)))
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) == 5, [a.text for a in answers]
    for a in answers:
        if a.status_code != 200:
            refused(a, "instances")
    for a in ok:
        accepted(api, a)
    assert live_servers(api) == 5 and usage(api) == (5, 5, 5120)
    assert counters_match(api) == []


def test_concurrent_transactions_of_separate_processes_never_pass_the_quota(api, settings):
    """Creates on separate connections (as from several API processes), released at once by a barrier:
    exactly the allowed number commit, on SQLite (write lock) and PostgreSQL (row lock) alike."""
    set_quotas(api, instances=-1, cores=14)           # 7 creates of 2 vCPUs fit
    threads, barrier = 16, threading.Barrier(16)
    stores = [Store(settings.url, pool_size=1) for _ in range(threads)]
    ident = stores[0].run_sync(identity.scoped_identity, api.creds["user_id"], api.pid)
    spec = lifecycle.ServerSpec(name="proc", image_id=s.UBUNTU, flavor_id="s3.large.2", vpc_id=s.VPC,
                                nics=((s.SUBNET, None),), volumetype="SSD", size=None)

    def create(store: Store) -> str:
        barrier.wait(timeout=30)      # all at once (on SQLite each then waits for the write lock)
        try:
            store.run_sync(lifecycle.accept_create, ident, spec)
            return "ok"
        except EcsError as exc:
            return exc.code

    try:
        with ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(create, stores))
    finally:
        for store in stores:
            store.close()
    assert sorted(outcomes) == ["Ecs.0001"] * 9 + ["ok"] * 7, outcomes
    q = api.client.app.state.services.store.run_sync(quotas.project_quotas, api.pid)
    assert q["cores"] == {"limit": 14, "in_use": 14, "override": 14}
    assert counters_match(api) == []


# --- deleting frees the quota ---------------------------------------------------------------------------

def test_a_server_holds_its_quota_until_its_delete_has_finished(api):
    set_quotas(api, instances=2, cores=3)
    small = accepted(api, api.post(CREATE, body()))
    large = accepted(api, api.post(CREATE, body(flavor="s3.large.2")))
    refused(api.post(CREATE, body()), "instances", "cores")
    with held(api):
        job = delete(api, large)
        refused(api.post(CREATE, body()), "instances")      # being deleted: still counted, as in Nova
        assert usage(api) == (2, 3, 5120)
    assert api.wait_job(job)["status"] == "SUCCESS"
    assert usage(api) == (1, 1, 1024)
    refused(api.post(CREATE, body(flavor="s3.xlarge.2")), "Quota exceeded for cores: requested 4",
            "already used 1 of 3 cores")
    accepted(api, api.post(CREATE, body()))
    assert usage(api) == (2, 2, 2048)
    assert api.wait_job(delete(api, small))["status"] == "SUCCESS"
    assert usage(api) == (1, 1, 1024) and counters_match(api) == []


def test_a_failed_create_still_counts_until_deleted(api):
    set_quotas(api, instances=1)
    r = api.post(CREATE, {**body(), "server": {**body()["server"], "imageRef": s.FAULTY_BOOT}})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "FAIL"
    refused(api.post(CREATE, body()), "instances")
    assert api.wait_job(delete(api, r.json()["serverIds"]))["status"] == "SUCCESS"
    accepted(api, api.post(CREATE, body()))


# --- reporting ------------------------------------------------------------------------------------------

def test_limits_report_the_enforced_quotas_and_usage(api):
    set_quotas(api, instances=7, cores=-1, ram=50000)
    accepted(api, api.post(CREATE, body(count=2, flavor="s3.large.2")))
    absolute = api.get(LIMITS).json()["absolute"]
    assert {k: absolute[k] for k in ("maxTotalInstances", "maxTotalCores", "maxTotalRAMSize", "totalInstancesUsed",
                                     "totalCoresUsed", "totalRAMUsed", "maxTotalKeypairs")} == {
        "maxTotalInstances": 7, "maxTotalCores": -1, "maxTotalRAMSize": 50000, "totalInstancesUsed": 2,
        "totalCoresUsed": 4, "totalRAMUsed": 8192, "maxTotalKeypairs": 100}
    assert api.get("/v2.1/{pid}/limits").json() == {"limits": {"rate": [], "absolute": absolute}}
    qs = api.get("/v2.1/{pid}/os-quota-sets/{pid}".replace("{pid}", api.pid)).json()["quota_set"]
    assert (qs["instances"], qs["cores"], qs["ram"], qs["key_pairs"]) == (7, -1, 50000, 100)
    defaults = api.get("/v2.1/{pid}/os-quota-sets/{pid}/defaults".replace("{pid}", api.pid)).json()["quota_set"]
    assert (defaults["instances"], defaults["cores"], defaults["ram"]) == (2048, 20480, 25165824)
    set_quotas(api, instances=None, cores=None, ram=None)
    assert api.get(LIMITS).json()["absolute"]["maxTotalCores"] == 20480


def test_set_quotas_refuses_bad_values(api):
    for bad in ({"instances": -2}, {"cores": 2**31}, {"ram": "10"}, {"ram": True}, {"disks": 3}):
        with pytest.raises(ValueError):
            set_quotas(api, **bad)


# --- the admin CLI --------------------------------------------------------------------------------------

def ecsd(settings, *args: str, ok: bool = True):
    where = ["--database-url", settings.database_url] if settings.database_url else ["--data-dir", settings.data_dir]
    result = CliRunner().invoke(main, [*args, *where])
    if ok:
        assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def test_cli_sets_shows_and_resets_quotas_of_a_running_service(api, settings):
    project = api.creds["project_name"]
    shown = json.loads(ecsd(settings, "quotas", "show", project, "--json").output)
    assert shown["project_id"] == api.pid and shown["domain_name"] == api.creds["domain_name"]
    assert shown["quotas"]["instances"] == {"limit": 2048, "in_use": 0, "default": True}

    out = ecsd(settings, "quotas", "set", api.pid, "--instances", "1", "--ram", "-1").output
    assert "instances" in out and "override" in out and "unlimited" in out
    accepted(api, api.post(CREATE, body()))
    refused(api.post(CREATE, body()), "already used 1 of 1 instances")     # the next acceptance sees it

    table = ecsd(settings, "quotas", "show", project, "--domain", api.creds["domain_name"]).output
    assert "RESOURCE" in table and "default" in table
    got = json.loads(ecsd(settings, "quotas", "show", project, "--json").output)["quotas"]
    assert got == {"instances": {"limit": 1, "in_use": 1, "default": False},
                   "cores": {"limit": 20480, "in_use": 1, "default": True},
                   "ram": {"limit": -1, "in_use": 1024, "default": False}}

    reset = json.loads(ecsd(settings, "quotas", "set", project, "--reset", "--cores", "5", "--json").output)
    assert reset["quotas"]["instances"] == {"limit": 2048, "in_use": 1, "default": True}
    assert reset["quotas"]["ram"]["default"] and reset["quotas"]["cores"]["limit"] == 5
    accepted(api, api.post(CREATE, body()))
    ecsd(settings, "quotas", "set", project, "--reset")
    assert json.loads(ecsd(settings, "quotas", "show", project, "--json").output)["quotas"]["cores"]["default"]

    below = ecsd(settings, "quotas", "set", project, "--instances", "1").output
    assert "below the usage" in below


def test_cli_refuses_bad_requests(api, settings, other_api):
    for args, message in [(("quotas", "set", api.pid), "give --instances"),
                          (("quotas", "set", api.pid, "--cores", "-2"), "-2"),
                          (("quotas", "show", "no-such-project"), "no project"),
                          (("quotas", "show", api.creds["project_name"], "--domain", "nowhere"), "no domain")]:
        result = ecsd(settings, *args, ok=False)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    # a project name in two domains needs --domain
    sql(api.client, "UPDATE projects SET name = :n WHERE id = :p", n=api.creds["project_name"], p=other_api.pid)
    assert "give --domain" in ecsd(settings, "quotas", "show", api.creds["project_name"], ok=False).output
    shown = ecsd(settings, "quotas", "show", api.creds["project_name"], "--domain", "other-domain", "--json").output
    assert json.loads(shown)["project_id"] == other_api.pid


# --- the Huawei SDK against a real process --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning")
def test_huawei_sdk_reads_the_limits_and_the_refusal(tmp_path):
    """A real `ecsd serve`; the quota is changed by `ecsd quotas set` while it runs."""
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkecs.v2 import (
        CreatePostPaidServersRequest,
        CreatePostPaidServersRequestBody,
        EcsClient,
        PostPaidServer,
        PostPaidServerNic,
        PostPaidServerRootVolume,
        ShowServerLimitsRequest,
    )

    from tests.sdk_server import _stop, start_ecsd

    server = start_ecsd(os.path.join(str(tmp_path), "sdk"))
    try:
        c = server.creds
        ecs = (EcsClient.new_builder().with_credentials(BasicCredentials(c["ak"], c["sk"], c["project_id"]))
               .with_endpoint(server.base_url).build())
        result = CliRunner().invoke(main, ["quotas", "set", c["project_id"], "--instances", "3", "--cores", "-1",
                                           "--data-dir", server.data_dir])
        assert result.exit_code == 0, result.output
        limits = ecs.show_server_limits(ShowServerLimitsRequest()).absolute
        assert (limits.max_total_instances, limits.max_total_cores, limits.max_total_ram_size) == (3, -1, 25165824)
        assert (limits.total_instances_used, limits.total_cores_used, limits.total_ram_used) == (0, 0, 0)
        assert limits.max_total_keypairs == 100
        srv = PostPaidServer(name="sdk-quota", image_ref=s.UBUNTU, flavor_ref="s3.small.1", vpcid=s.VPC,
                             nics=[PostPaidServerNic(subnet_id=s.SUBNET)],
                             root_volume=PostPaidServerRootVolume(volumetype="SSD"), count=4)
        with pytest.raises(ClientRequestException) as err:
            ecs.create_post_paid_servers(CreatePostPaidServersRequest(
                x_client_token=str(uuid.uuid4()), body=CreatePostPaidServersRequestBody(server=srv)))
        assert (err.value.status_code, err.value.error_code) == (400, "Ecs.0001")
        assert "instances" in err.value.error_msg
        assert ecs.show_server_limits(ShowServerLimitsRequest()).absolute.total_instances_used == 0
    finally:
        _stop(server.proc)


# --- migration 0006 -------------------------------------------------------------------------------------

def test_migration_backfills_usage_on_a_populated_sqlite_database(tmp_path):
    """A database at 0005 with servers (live and deleted) upgrades in place: usage is counted from the
    live servers' flavors, the overrides are NULL (defaults), and the invariant holds."""
    from alembic import command
    from sqlalchemy import text

    from ecsd.store import migrate
    from ecsd.store.db import sqlite_url

    store = Store(sqlite_url(str(tmp_path)))
    try:
        command.upgrade(migrate._config(store.engine), "0005")
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO domains (id, name, enabled, created_at) VALUES ('d1', 'dom', 1, 0)"))
            for pid in ("p1", "p2"):
                conn.execute(text("INSERT INTO projects (id, domain_id, name, description, enabled, created_at, "
                                  "server_count) VALUES (:p, 'd1', :p, '', 1, 0, 0)"), {"p": pid})
            conn.execute(text("INSERT INTO users (id, domain_id, name, password_hash, enabled, created_at) "
                              "VALUES ('u1', 'd1', 'alice', 'x', 1, 0)"))
            conn.execute(text("INSERT INTO memberships (user_id, project_id) VALUES ('u1', 'p1')"))
            for fid, vcpus, ram in (("f2", 2, 4096), ("f4", 4, 16384)):
                conn.execute(text("INSERT INTO flavors (id, name, vcpus, ram, disk, extra_specs, disabled) "
                                  "VALUES (:f, :f, :v, :r, 0, '{}', 0)"), {"f": fid, "v": vcpus, "r": ram})
            for i, (pid, fid, deleted) in enumerate((("p1", "f2", 0), ("p1", "f4", 0), ("p1", "f4", 1),
                                                      ("p2", "f2", 0))):
                conn.execute(text(
                    "INSERT INTO servers (id, project_id, user_id, name, description, flavor_id, image_id, vm_state, "
                    "power_state, locked, metadata, addresses, availability_zone, reservation_id, launch_index, "
                    "root_device_name, firmware, created_at, updated_at, deleted) VALUES (:id, :p, 'u1', 's', '', "
                    ":f, 'i', 'active', 1, 0, '{}', '{}', 'eu-de-01', 'r', 0, '/dev/vda', 'bios', 0, 0, :d)"),
                    {"id": f"s{i}", "p": pid, "f": fid, "d": deleted})
            conn.execute(text("UPDATE projects SET server_count = CASE id WHEN 'p1' THEN 2 ELSE 1 END"))
    finally:
        store.close()
    result = CliRunner().invoke(main, ["db", "upgrade", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    store = Store(sqlite_url(str(tmp_path)))
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, server_count, cores_used, ram_used, quota_instances, quota_cores, "
                                     "quota_ram FROM projects ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [("p1", 2, 6, 20480, None, None, None),
                                                ("p2", 1, 2, 4096, None, None, None)]
            assert conn.execute(text("SELECT count(*) FROM memberships")).scalar() == 1
            assert invariants.server_counts_match(conn) == []
        assert store.run_sync(quotas.project_quotas, "p1")["cores"] == {"limit": 20480, "in_use": 6, "override": None}
    finally:
        store.close()


# --- the key-pair limit, under concurrency ---------------------------------------------------------------

def test_concurrent_key_pair_imports_never_pass_the_key_pair_limit(api, settings):
    """At 99 of 100 key pairs, 8 imports on separate connections released at once: exactly one commits,
    on SQLite (write lock) and PostgreSQL (the user's row lock) alike."""
    from ecsd.domain import keypairs

    store = api.client.app.state.services.store
    user = api.creds["user_id"]
    for i in range(keypairs.QUOTA - 1):
        store.run_sync(keypairs.add_keypair, user, f"kp-{i:03d}", "ssh", f"ssh-ed25519 AAAA{i} x", f"fp{i}")
    threads, barrier = 8, threading.Barrier(8)
    stores = [Store(settings.url, pool_size=1) for _ in range(threads)]

    def add(pair: tuple[int, Store]) -> str:
        i, own = pair
        barrier.wait(timeout=30)
        try:
            own.run_sync(keypairs.add_keypair, user, f"race-{i}", "ssh", f"ssh-ed25519 BBBB{i} x", f"fr{i}")
            return "ok"
        except EcsError as exc:
            return exc.code

    try:
        with ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(add, enumerate(stores)))
    finally:
        for own in stores:
            own.close()
    assert sorted(outcomes) == ["Ecs.0001"] * 7 + ["ok"], outcomes
    assert store.run_sync(keypairs.count_keypairs, user) == keypairs.QUOTA
