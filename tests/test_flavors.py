"""Flavors over HTTP: the ECS v1 list with its availability-zone rules, and the Nova flavor API.

Flavors with unusual sale states cannot be made through the public API, so ``add_flavor`` puts
them into the store directly; they are then looked at only through HTTP.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from ecsd.store.schema import flavors
from tests.support import assert_error

SEEDED = ["c6.large.2", "c6.xlarge.4", "m6.large.8", "s3.large.2", "s3.medium.2", "s3.small.1", "s3.xlarge.2"]
OTHER_PROJECT = "e" * 32


def add_flavor(client, flavor_id: str, extra_specs: dict, *, vcpus: int = 1, ram: int = 1024) -> None:
    with client.app.state.services.store.tx() as conn:
        conn.execute(flavors.insert().values(id=flavor_id, name=flavor_id, vcpus=vcpus, ram=ram, disk=0,
                                             extra_specs=orjson.dumps(extra_specs).decode()))


def v1(api, query: str = "") -> list[dict]:
    r = api.get("/v1/{pid}/cloudservers/flavors" + (f"?{query}" if query else ""))
    assert r.status_code == 200, r.text
    return r.json()["flavors"]




# --- ECS v1 ------------------------------------------------------------------------------------------

def test_v1_flavor_fields(api, settings):
    found = v1(api)
    assert [f["id"] for f in found] == SEEDED
    flavor = next(f for f in found if f["id"] == "c6.xlarge.4")
    assert flavor["name"] == "c6.xlarge.4"
    assert flavor["vcpus"] == "4" and flavor["ram"] == 16384
    assert flavor["disk"] == "0" and flavor["swap"] == ""
    assert flavor["OS-FLV-EXT-DATA:ephemeral"] == 0
    assert flavor["OS-FLV-DISABLED:disabled"] is False
    assert flavor["rxtx_factor"] == 1.0
    assert flavor["rxtx_quota"] is None and flavor["rxtx_cap"] is None
    assert flavor["os-flavor-access:is_public"] is True
    specs = flavor["os_extra_specs"]
    assert specs["ecs:performancetype"] == "computingv3" and specs["ecs:generation"] == "c6"
    assert specs["ecs:virtualization_env_types"] == "CloudCompute"
    assert "eu-de-01(normal)" in specs["cond:operation:az"]
    links = {link["rel"]: link for link in flavor["links"]}
    assert links["self"]["href"] == f"{settings.endpoint}/v2.1/{api.pid}/flavors/c6.xlarge.4"
    assert "type" in links["self"] and links["self"]["type"] is None


# Table 6 of querying_details_about_flavors_and_extended_flavor_information.rst: every key is sent.
REFERENCE_EXTRA_SPECS = {
    "ecs:performancetype", "resource_type", "instance_vnic:type", "instance_vnic:instance_bandwidth",
    "instance_vnic:max_count", "quota:local_disk", "quota:nvme_ssd", "extra_spec:io:persistent_grant",
    "ecs:generation", "ecs:virtualization_env_types", "cond:operation:status", "cond:operation:az",
    "quota:max_rate", "quota:min_rate", "quota:max_pps", "cond:operation:charge", "cond:compute",
}


def _check_specs(specs: dict, vcpus: int) -> None:
    assert REFERENCE_EXTRA_SPECS <= set(specs), REFERENCE_EXTRA_SPECS - set(specs)
    assert all(isinstance(v, str) for v in specs.values()), specs
    assert specs["instance_vnic:type"] == "enhanced"
    assert int(specs["instance_vnic:max_count"]) == min(4, vcpus)
    assert int(specs["quota:min_rate"]) <= int(specs["quota:max_rate"]) == int(specs["instance_vnic:instance_bandwidth"])
    assert int(specs["quota:max_rate"]) <= 10000 and int(specs["quota:max_pps"]) > 0
    assert specs["cond:operation:charge"] == "demand" and specs["cond:compute"] == ""
    assert specs["quota:local_disk"] == "" and specs["quota:nvme_ssd"] == ""
    assert specs["extra_spec:io:persistent_grant"] == "false"


def test_v1_extra_specs_carry_every_reference_key(api):
    found = v1(api)
    for flavor in found:
        _check_specs(flavor["os_extra_specs"], int(flavor["vcpus"]))
        assert flavor["attachableQuantity"] == {"free_scsi": 59, "free_blk": 23, "free_disk": 23,
                                                "free_nic": int(flavor["os_extra_specs"]["instance_vnic:max_count"])}
    by_id = {f["id"]: f["os_extra_specs"] for f in found}
    # Bandwidth grows with the vCPUs, and the computing-plus and memory-optimised types get more per vCPU.
    assert int(by_id["s3.xlarge.2"]["quota:max_rate"]) > int(by_id["s3.large.2"]["quota:max_rate"])
    assert int(by_id["c6.large.2"]["quota:min_rate"]) > int(by_id["s3.large.2"]["quota:min_rate"])
    assert by_id["c6.large.2"]["resource_type"] == "IOoptimizedC6"
    for fid in SEEDED:
        specs = api.get(f"/v2.1/{{pid}}/flavors/{fid}/os-extra_specs").json()["extra_specs"]
        assert specs == by_id[fid]
        r = api.get(f"/v2.1/{{pid}}/flavors/{fid}/os-extra_specs/quota:max_pps")
        assert r.status_code == 200 and r.json() == {"quota:max_pps": specs["quota:max_pps"]}


def test_stored_extra_specs_win_and_the_rest_is_derived(api):
    add_flavor(api.client, "x5.hand", {"cond:operation:charge": "period", "quota:max_rate": 3000,
                                       "ecs:performancetype": "highmem"}, vcpus=8, ram=65536)
    add_flavor(api.client, "x6.bare", {}, vcpus=2, ram=2048)
    found = {f["id"]: f["os_extra_specs"] for f in v1(api)}
    hand, bare = found["x5.hand"], found["x6.bare"]
    assert hand["cond:operation:charge"] == "period" and hand["quota:max_rate"] == "3000"
    assert hand["ecs:performancetype"] == "highmem" and hand["instance_vnic:max_count"] == "4"
    assert bare["ecs:generation"] == "x6" and bare["ecs:performancetype"] == "normal"
    assert bare["cond:operation:status"] == "normal" and bare["cond:operation:az"] == ""
    assert REFERENCE_EXTRA_SPECS <= set(hand) and REFERENCE_EXTRA_SPECS <= set(bare)
    assert api.get("/v2.1/{pid}/flavors/x5.hand/os-extra_specs").json()["extra_specs"] == hand
    # Sale states are unchanged by the derived keys: no AZ list still means "the region status everywhere".
    assert "x6.bare" in [f["id"] for f in v1(api, "availability_zone=eu-de-02")]


def test_v1_availability_zone_filter(api):
    assert [f["id"] for f in v1(api, "availability_zone=eu-de-01")] == SEEDED
    assert [f["id"] for f in v1(api, "availability_zone=eu-de-02")] == SEEDED
    assert [f["id"] for f in v1(api, "availability_zone=eu-de-03")] == SEEDED   # every zone a create accepts
    assert v1(api, "availability_zone=eu-de-99") == []
    assert [f["id"] for f in v1(api, "availability_zone=")] == SEEDED


def test_v1_sale_status_per_zone(api):
    # Sold out in zone 1, open beta in zone 2, withdrawn elsewhere.
    add_flavor(api.client, "x1.beta", {"cond:operation:status": "abandon",
                                       "cond:operation:az": "eu-de-01(sellout), eu-de-02(obt)"})
    # Withdrawn everywhere.
    add_flavor(api.client, "x2.gone", {"cond:operation:status": "abandon", "cond:operation:az": "eu-de-01(abandon)"})
    # No AZ list: the region-wide status applies in every zone; promotion counts as on sale.
    add_flavor(api.client, "x3.promo", {"cond:operation:status": "promotion"})
    # No sale information at all means normal.
    add_flavor(api.client, "x4.plain", {})
    everywhere = [f["id"] for f in v1(api)]
    assert "x1.beta" in everywhere and "x2.gone" not in everywhere
    assert "x3.promo" in everywhere and "x4.plain" in everywhere
    zone1 = [f["id"] for f in v1(api, "availability_zone=eu-de-01")]
    zone2 = [f["id"] for f in v1(api, "availability_zone=eu-de-02")]
    assert "x1.beta" not in zone1 and "x1.beta" in zone2
    assert "x2.gone" not in zone1 and "x2.gone" not in zone2
    assert "x3.promo" in zone1 and "x4.plain" in zone2
    assert v1(api, "availability_zone=eu-de-07") == []


def test_v1_needs_token_and_own_project(api):
    assert_error(api.get("/v1/{pid}/cloudservers/flavors", token=False), 401, "Common.0013")
    assert_error(api.get(f"/v1/{OTHER_PROJECT}/cloudservers/flavors"), 400, "Ecs.0023")


# --- Nova --------------------------------------------------------------------------------------------

def test_nova_list_and_detail(api, settings):
    r = api.get("/v2.1/{pid}/flavors")
    assert r.status_code == 200
    listed = r.json()["flavors"]
    assert [f["id"] for f in listed] == SEEDED
    assert all(set(f) == {"id", "name", "links"} for f in listed)
    assert listed[0]["links"][0] == {"rel": "self",
                                     "href": f"{settings.endpoint}/v2.1/{api.pid}/flavors/{SEEDED[0]}"}
    detail = api.get("/v2.1/{pid}/flavors/detail").json()["flavors"]
    assert [f["id"] for f in detail] == SEEDED
    m6 = next(f for f in detail if f["id"] == "m6.large.8")
    assert m6["vcpus"] == 2 and m6["ram"] == 16384 and m6["disk"] == 0
    assert m6["swap"] == "" and m6["OS-FLV-EXT-DATA:ephemeral"] == 0
    assert m6["OS-FLV-DISABLED:disabled"] is False and m6["rxtx_factor"] == 1.0
    assert m6["os-flavor-access:is_public"] is True
    assert "os_extra_specs" not in m6 and "description" not in m6
    assert "flavors_links" not in api.get("/v2.1/{pid}/flavors/detail").json()


def test_nova_show_and_extra_specs(api):
    r = api.get("/v2.1/{pid}/flavors/s3.large.2")
    assert r.status_code == 200
    flavor = r.json()["flavor"]
    assert flavor["id"] == "s3.large.2" and flavor["vcpus"] == 2 and flavor["ram"] == 4096
    r = api.get("/v2.1/{pid}/flavors/s3.large.2/os-extra_specs")
    assert r.status_code == 200
    specs = r.json()["extra_specs"]
    assert specs["ecs:performancetype"] == "normal" and specs["resource_type"] == "IOoptimizedS3"
    r = api.get("/v2.1/{pid}/flavors/s3.large.2/os-extra_specs/ecs:generation")
    assert r.status_code == 200 and r.json() == {"ecs:generation": "s3"}
    assert_error(api.get("/v2.1/{pid}/flavors/s3.large.2/os-extra_specs/nope"), 404, "Common.0404")


@pytest.mark.parametrize("path", ["/v2.1/{pid}/flavors/s9.huge.1", "/v2.1/{pid}/flavors/s9.huge.1/os-extra_specs"])
def test_nova_unknown_flavor_is_404(api, path):
    r = api.get(path)
    assert_error(r, 404, "Ecs.0029")
    assert r.json()["error"]["message"]


@pytest.mark.parametrize("query, expected", [
    ("minRam=8192", ["c6.xlarge.4", "m6.large.8", "s3.xlarge.2"]),
    ("minRam=0", SEEDED),
    ("minDisk=0", SEEDED),
    ("minDisk=1", []),
    ("sort_key=name&sort_dir=desc", SEEDED[::-1]),
    ("sort_key=memory_mb", ["s3.small.1", "s3.medium.2", "c6.large.2", "s3.large.2", "s3.xlarge.2",
                            "c6.xlarge.4", "m6.large.8"]),
    ("sort_key=vcpus&sort_dir=desc&minRam=4096", ["s3.xlarge.2", "c6.xlarge.4", "s3.large.2", "m6.large.8",
                                                  "c6.large.2"]),
])
def test_nova_filters_and_sorting(api, query, expected):
    for path in ("/v2.1/{pid}/flavors", "/v2.1/{pid}/flavors/detail"):
        r = api.get(f"{path}?{query}")
        assert r.status_code == 200, r.text
        assert [f["id"] for f in r.json()["flavors"]] == expected


@pytest.mark.parametrize("query", ["minRam=abc", "minDisk=-1", "sort_key=colour", "sort_dir=up", "limit=-1",
                                   "limit=x", "marker=s9.huge.1"])
def test_nova_bad_query_is_400(api, query):
    assert_error(api.get(f"/v2.1/{{pid}}/flavors?{query}"), 400, "Ecs.0005")


@pytest.mark.parametrize("query", ["limit=2", "limit=3&sort_key=memory_mb&sort_dir=desc"])
def test_nova_paging_with_flavors_links(api, settings, query):
    unpaged = "&".join(p for p in query.split("&") if not p.startswith("limit="))
    everything = [f["id"] for f in api.get(f"/v2.1/{{pid}}/flavors/detail?{unpaged}").json()["flavors"]]
    limit = int(parse_qs(query)["limit"][0])
    seen: list[str] = []
    path = f"/v2.1/{{pid}}/flavors/detail?{query}"
    while path:
        body = api.get(path).json()
        page = [f["id"] for f in body["flavors"]]
        assert len(page) <= limit
        seen.extend(page)
        path = None
        if "flavors_links" in body:
            href = body["flavors_links"][0]["href"]
            assert body["flavors_links"][0]["rel"] == "next"
            assert parse_qs(urlsplit(href).query)["marker"] == [page[-1]]
            path = href.removeprefix(settings.endpoint)
    assert seen == everything and len(seen) == len(SEEDED)


def test_nova_limit_above_maximum_is_capped(api):
    assert len(api.get("/v2.1/{pid}/flavors?limit=100000").json()["flavors"]) == len(SEEDED)


def test_description_from_microversion_2_55(api):
    for header in ({"OpenStack-API-Version": "compute 2.60"}, {"X-OpenStack-Nova-API-Version": "2.55"}):
        flavor = api.get("/v2.1/{pid}/flavors/s3.small.1", headers=header).json()["flavor"]
        assert "description" in flavor and flavor["description"] is None
    old = api.get("/v2.1/{pid}/flavors/s3.small.1", headers={"X-OpenStack-Nova-API-Version": "2.54"})
    assert "description" not in old.json()["flavor"]


@pytest.mark.parametrize("path", ["/v2.1/{pid}/flavors", "/v2.1/{pid}/flavors/detail",
                                  "/v2.1/{pid}/flavors/s3.small.1", "/v2.1/{pid}/flavors/s3.small.1/os-extra_specs"])
def test_nova_needs_token_and_own_project(api, path):
    assert_error(api.get(path, token=False), 401, "Common.0013")
    assert_error(api.get(path.replace("{pid}", OTHER_PROJECT)), 400, "Ecs.0023")
