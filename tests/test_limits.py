"""Project limits and usage: GET /v1/{project_id}/cloudservers/limits and the Nova /limits."""

from __future__ import annotations

from tests.support import assert_error

BOTH_DATABASES = True


def test_limits_count_the_projects_live_servers(api, other_api):
    before = api.get("/v1/{pid}/cloudservers/limits")
    assert before.status_code == 200, before.text
    absolute = before.json()["absolute"]
    assert absolute["maxTotalInstances"] == 2048 and absolute["maxServerMeta"] == 128
    assert absolute["maxTotalKeypairs"] == 100          # what key pair creation enforces (per user)
    n, cores, ram = absolute["totalInstancesUsed"], absolute["totalCoresUsed"], absolute["totalRAMUsed"]
    api.create_servers(count=2, flavor="s3.small.1")       # 1 vCPU, 1024 MB each
    other_api.create_servers()                              # another project: not counted
    after = api.get("/v1/{pid}/cloudservers/limits").json()["absolute"]
    assert (after["totalInstancesUsed"], after["totalCoresUsed"], after["totalRAMUsed"]) == (
        n + 2, cores + 2, ram + 2048)
    nova = api.get("/v2.1/{pid}/limits")
    assert nova.status_code == 200 and nova.json() == {"limits": {"rate": [], "absolute": after}}


def test_limits_need_the_callers_project(api, other_api):
    assert_error(other_api.get(f"/v1/{api.pid}/cloudservers/limits"), 400, "Ecs.0023")


def test_nova_quota_sets(api, other_api):
    for path in ("/v2.1/{pid}/os-quota-sets/{pid}", "/v2.1/{pid}/os-quota-sets/{pid}/defaults",
                 "/v2.1/{pid}/os-quota-sets/{pid}?user_id=someone"):
        r = api.get(path.replace("{pid}", api.pid))
        assert r.status_code == 200, r.text
        q = r.json()["quota_set"]
        assert q["id"] == api.pid and q["instances"] == 2048 and q["metadata_items"] == 128
        assert (q["cores"], q["ram"], q["key_pairs"]) == (20480, 25165824, 100)
    assert_error(api.get(f"/v2.1/{{pid}}/os-quota-sets/{other_api.pid}"), 400, "Ecs.0023")
