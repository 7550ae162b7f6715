"""Nova server lifecycle (issue 11): create in every networks form, counts, block devices and refusals;
update; delete; a server's security groups, consistent with the server views."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ecsd.domain import changeos, nics, quotas, security_groups
from ecsd.domain.errors import EcsError
from tests import support as s
from tests.support import Api, assert_error, held

BOTH_DATABASES = True
SERVERS = "/v2.1/{pid}/servers"
SERVER = "/v2.1/{pid}/servers/%s"
UNKNOWN = "0b4e9c1a-7d2f-4e8b-9a6c-3f5d2e1b0c9a"
VPC2 = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
SUBNET2 = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def nova_body(**fields: Any) -> dict:
    server = {"name": "nova", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "networks": [{"uuid": s.SUBNET}]}
    server.update(fields)
    return {"server": {k: v for k, v in server.items() if v is not None}}


def active(api: Api, sid: str, timeout: float = 10.0) -> dict:
    """The Nova view of the server once its create has finished (a Nova create returns no job id)."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(SERVER % sid)
        assert r.status_code == 200, r.text
        server = r.json()["server"]
        if server["status"] != "BUILD":
            assert server["status"] == "ACTIVE", server
            return server
        assert time.monotonic() < deadline, server
        time.sleep(0.01)


def create(api: Api, **fields: Any) -> str:
    r = api.post(SERVERS, nova_body(**fields))
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    active(api, sid)
    return sid


def ids_named(api: Api, name: str) -> list[str]:
    servers = api.get("/v1/{pid}/cloudservers/detail?limit=1000").json()["servers"]
    return sorted(x["id"] for x in servers if x["name"].startswith(name))


def v1_server(api: Api, vpc: str = s.VPC, subnet: str = s.SUBNET) -> str:
    body = {"server": {"name": "v1", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": vpc,
                       "nics": [{"subnet_id": subnet}], "root_volume": {"volumetype": "SSD"}}}
    r = api.post("/v1/{pid}/cloudservers", body)
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    return r.json()["serverIds"][0]


# --- create ------------------------------------------------------------------------------------------------

def test_create_answers_202_with_nova_body_and_location(api, creds):
    r = api.post(SERVERS, nova_body(name="nova-1", metadata={"owner": "team-a"}, description="made by nova",
                                    availability_zone="eu-de-02"))
    assert r.status_code == 202, r.text
    server = r.json()["server"]
    sid = server["id"]
    base = r.headers["Location"].split("/v2.1/")[0]
    assert r.headers["Location"] == f"{base}/v2.1/{api.pid}/servers/{sid}"
    assert server["links"] == [{"rel": "self", "href": f"{base}/v2.1/{api.pid}/servers/{sid}"},
                               {"rel": "bookmark", "href": f"{base}/{api.pid}/servers/{sid}"}]
    assert server["OS-DCF:diskConfig"] == "MANUAL"
    assert server["security_groups"] == [{"name": "default"}]
    # no key pair and no password given: Nova generates one, and ecsd gives it to the server
    changeos.check_password(server["adminPass"], None, False)
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}

    shown = active(api, sid)
    assert shown["name"] == "nova-1" and shown["description"] == "made by nova"
    assert shown["OS-EXT-AZ:availability_zone"] == "eu-de-02"
    vpc = nics.default_vpc_id(api.pid)      # no server of the project used the network before
    assert shown["metadata"]["owner"] == "team-a" and shown["metadata"]["vpc_id"] == vpc
    assert shown["image"]["id"] == s.UBUNTU and shown["flavor"]["id"] == "s3.small.1"
    assert shown["user_id"] == creds["user_id"]
    (address,) = shown["addresses"][vpc]
    (nic,) = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-interface").json()["interfaceAttachments"]
    assert nic["net_id"] == s.SUBNET and nic["port_id"] == address["OS-EXT-IPS:port_id"]
    # the create is a createServer job like the v1 create's, counted against the project's quota
    assert api.get("/v1/{pid}/cloudservers/limits").json()["absolute"]["totalInstancesUsed"] == 1


def test_networks_auto_and_none(api):
    sid = create(api, networks="auto")
    server = api.server(sid)
    network, vpc = nics.default_network_id(api.pid), nics.default_vpc_id(api.pid)
    assert list(server["addresses"]) == [vpc] and server["metadata"]["vpc_id"] == vpc
    (nic,) = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json()["interfaceAttachments"]
    assert nic["net_id"] == network
    assert create(api, networks="auto") != sid      # the same default network again

    # absent networks: as "auto" (clients before microversion 2.37 send none)
    assert list(api.server(create(api, networks=None))["addresses"]) == [vpc]

    bare = create(api, networks="none")
    assert api.server(bare)["addresses"] == {}
    assert api.get(f"/v1/{{pid}}/cloudservers/{bare}/os-interface").json() == {"interfaceAttachments": []}
    assert api.get(f"/v2.1/{{pid}}/servers/{bare}/ips").json() == {"addresses": {}}


def test_network_list_of_uuids_and_fixed_ips(api):
    sid = create(api, networks=[{"uuid": s.SUBNET}, {"uuid": SUBNET2, "fixed_ip": "10.20.30.40"}])
    (vpc,) = api.server(sid)["addresses"]
    found = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json()["interfaceAttachments"]
    assert [n["net_id"] for n in found] == [s.SUBNET, SUBNET2]
    assert found[1]["fixed_ips"] == [{"subnet_id": SUBNET2, "ip_address": "10.20.30.40"}]
    assert len({n["port_id"] for n in found}) == 2 and found[0]["fixed_ips"][0]["ip_address"] != "10.20.30.40"
    assert vpc == nics.default_vpc_id(api.pid)     # networks no server of the project uses yet

    # the fixed IP is taken now, in this or any network of the project
    assert_error(api.post(SERVERS, nova_body(networks=[{"uuid": s.SUBNET, "fixed_ip": "10.20.30.40"}])),
                 400, "Ecs.0010")
    assert_error(api.post(SERVERS, nova_body(networks=[{"fixed_ip": "10.20.30.41"}])), 400, "Ecs.0005")
    assert_error(api.post(SERVERS, nova_body(networks=[{"uuid": s.SUBNET, "fixed_ip": "10.20.30.300"}])),
                 400, "Ecs.0005")
    assert_error(api.post(SERVERS, nova_body(networks=[{"uuid": "net-1"}])), 400, "Ecs.0005")


def test_a_network_stays_in_the_vpc_the_project_uses_it_in(api):
    v1_server(api, s.VPC, s.SUBNET)
    v1_server(api, VPC2, SUBNET2)
    sid = create(api, networks=[{"uuid": s.SUBNET}])
    assert list(api.server(sid)["addresses"]) == [s.VPC]
    # a network the project does not use yet joins the VPC of the one it does use
    sid = create(api, networks=[{"uuid": UNKNOWN}, {"uuid": SUBNET2}])
    assert list(api.server(sid)["addresses"]) == [VPC2]
    err = assert_error(api.post(SERVERS, nova_body(networks=[{"uuid": s.SUBNET}, {"uuid": SUBNET2}])),
                       400, "Ecs.0014")
    assert "different VPCs" in err["message"]


def test_ports(api):
    sid = create(api)
    (nic,) = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-interface").json()["interfaceAttachments"]
    err = assert_error(api.post(SERVERS, nova_body(networks=[{"port": nic["port_id"]}])), 400, "Ecs.0010")
    assert sid in err["message"]
    # ecsd keeps no port apart from a server's NIC: any other port is unknown, even with a network
    assert_error(api.post(SERVERS, nova_body(networks=[{"port": UNKNOWN, "uuid": s.SUBNET}])), 400, "Ecs.0014")
    assert_error(api.post(SERVERS, nova_body(networks=[{"port": "p-1"}])), 400, "Ecs.0005")
    assert len(ids_named(api, "nova")) == 1


def test_min_and_max_count(api):
    r = api.post(SERVERS, nova_body(name="many", min_count="2", max_count="3"))   # strings, as the reference
    assert r.status_code == 202, r.text
    made = ids_named(api, "many")
    assert len(made) == 3 and r.json()["server"]["id"] in made
    views = [active(api, sid) for sid in made]
    assert sorted(v["name"] for v in views) == ["many-0001", "many-0002", "many-0003"]
    assert len({v["OS-EXT-SRV-ATTR:reservation_id"] for v in views}) == 1
    addresses = {a["addr"] for v in views for items in v["addresses"].values() for a in items}
    assert len(addresses) == 3

    r = api.post(SERVERS, nova_body(name="resv", max_count=2, return_reservation_id=True))
    assert r.status_code == 202 and set(r.json()) == {"reservation_id"}
    assert {api.server(sid)["OS-EXT-SRV-ATTR:reservation_id"] for sid in ids_named(api, "resv")} == {
        r.json()["reservation_id"]}

    # as many as the quotas allow, but at least min_count
    api.client.app.state.services.store.run_sync(quotas.set_quotas, api.pid, {"instances": 7})
    r = api.post(SERVERS, nova_body(name="fit", min_count=1, max_count=5))
    assert r.status_code == 202, r.text
    assert len(ids_named(api, "fit")) == 2
    assert_error(api.post(SERVERS, nova_body(name="over", min_count=2, max_count=4)), 400, "Ecs.0001")
    assert ids_named(api, "over") == []
    assert_error(api.post(SERVERS, nova_body(name="bad", min_count=3, max_count=2)), 400, "Ecs.0005")
    assert_error(api.post(SERVERS, nova_body(name="bad", max_count=501)), 400, "Ecs.0913")


def test_key_pair_password_and_user_data(api):
    api.keypair("kp-nova")
    r = api.post(SERVERS, nova_body(key_name="kp-nova", user_data="IyEvYmluL3NoCmVjaG8gaGkK"))
    assert r.status_code == 202 and "adminPass" not in r.json()["server"]    # a key pair login: no password
    shown = active(api, r.json()["server"]["id"])
    assert shown["key_name"] == "kp-nova" and shown["OS-EXT-SRV-ATTR:user_data"] == "IyEvYmluL3NoCmVjaG8gaGkK"
    r = api.post(SERVERS, nova_body(adminPass="Str0ng-Passw!"))
    assert r.status_code == 202 and r.json()["server"]["adminPass"] == "Str0ng-Passw!"
    assert_error(api.post(SERVERS, nova_body(key_name="no-such-kp")), 400, "Ecs.0314")
    assert_error(api.post(SERVERS, nova_body(adminPass="weak")), 400, "Ecs.0011")
    assert_error(api.post(SERVERS, nova_body(user_data="not base64!")), 400, "Ecs.0005")


def test_block_device_mapping_v2_from_an_image(api):
    # what openstacksdk sends for boot_from_volume: no imageRef, strings for the numbers
    bdm = [{"boot_index": "0", "delete_on_termination": False, "destination_type": "volume",
            "uuid": s.UBUNTU, "source_type": "image", "volume_size": "40", "volume_type": "SSD"},
           {"source_type": "blank", "destination_type": "volume", "volume_size": 20, "boot_index": -1}]
    sid = create(api, imageRef="", block_device_mapping_v2=bdm)
    disks = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
    assert [(d["size"], d["bootIndex"], d["device"]) for d in disks] == [(40, 0, "/dev/vda"), (20, -1, "/dev/vdb")]
    assert api.server(sid)["image"]["id"] == s.UBUNTU
    # imageRef and an image mapped to the local disk: the image's own size
    sid = create(api, block_device_mapping_v2=[{"source_type": "image", "destination_type": "local",
                                                "uuid": s.UBUNTU, "boot_index": 0}])
    (disk,) = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
    assert disk["size"] == 10

    refusals = [
        ([{"source_type": "volume", "uuid": UNKNOWN, "boot_index": "0"}], "Ecs.0005"),
        ([{"source_type": "image", "uuid": s.DEBIAN, "boot_index": 0}], "Ecs.0005"),          # not the imageRef
        ([{"source_type": "image", "uuid": s.UBUNTU, "boot_index": 0, "volume_size": 5}], "Ecs.0005"),
        ([{"source_type": "image", "uuid": s.UBUNTU, "boot_index": 0, "volume_type": "dsware"}], "Ecs.0043"),
        ([{"source_type": "blank", "volume_size": 20}] * 24, "Ecs.0042"),
        ([{"source_type": "blank"}], "Ecs.0005"),
        ([{"source_type": "floppy"}], "Ecs.0005"),
    ]
    for devices, code in refusals:
        assert_error(api.post(SERVERS, nova_body(block_device_mapping_v2=devices)), 400, code)
    assert_error(api.post(SERVERS, nova_body(imageRef=None)), 400, "Ecs.0005")


@pytest.mark.parametrize("fields, status, code", [
    ({"name": None}, 400, "Ecs.0005"),
    ({"name": "has space"}, 400, "Ecs.0915"),
    ({"name": "x" * 129}, 400, "Ecs.0914"),
    ({"flavorRef": "no.such.flavor"}, 400, "Ecs.0029"),
    ({"imageRef": UNKNOWN}, 400, "Ecs.0031"),
    ({"imageRef": "not-an-image"}, 400, "Ecs.0005"),
    ({"networks": []}, 400, "Ecs.0005"),
    ({"networks": "all"}, 400, "Ecs.0005"),
    ({"networks": [{"uuid": s.SUBNET}] * 13}, 400, "Ecs.0050"),
    ({"security_groups": [{"name": "web"}]}, 400, "Ecs.0014"),
    ({"availability_zone": "az1-dc1"}, 400, "Ecs.0005"),
    ({"min_count": 0}, 400, "Ecs.0005"),
    ({"min_count": "two"}, 400, "Ecs.0005"),
    ({"metadata": {"k": 1}}, 400, "Ecs.0005"),
    ({"description": "<b>"}, 400, "Ecs.0041"),
    ({"OS-DCF:diskConfig": "SOMETIMES"}, 400, "Ecs.0005"),
    ({"description": "a\x00b"}, 400, "Ecs.0005"),       # PostgreSQL cannot store NUL: never a 500
    ({"key_name": "kp\x00"}, 400, "Ecs.0005"),
    ({"flavorRef": "s3\x00"}, 400, "Ecs.0005"),
])
def test_create_refusals_keep_the_ecs_codes(api, fields, status, code):
    assert_error(api.post(SERVERS, nova_body(**fields)), status, code)
    assert ids_named(api, "") == []


def test_create_body_shape(api):
    assert_error(api.call("POST", SERVERS, content=b"", headers={"Content-Type": "application/json"}),
                 400, "Common.0002")
    assert_error(api.post(SERVERS, {"server": "nova"}), 400, "Ecs.0005")
    assert_error(api.post(SERVERS, [1]), 400, "Ecs.0005")
    # fields Nova has and ecsd does not model are ignored, as by the v1 create
    sid = create(api, config_drive=True, hostname="h", **{"OS-DCF:diskConfig": "AUTO"})
    assert active(api, sid)["OS-DCF:diskConfig"] == "MANUAL"


def test_default_security_group_by_name_or_id(api):
    group = security_groups.default_group_id(api.pid)
    create(api, security_groups=[{"name": "default"}])
    create(api, security_groups=[{"name": group}])
    assert len(ids_named(api, "nova")) == 2


def test_client_token_makes_a_create_idempotent(api):
    headers = {"X-Client-Token": "nova-create-1"}
    first = api.post(SERVERS, nova_body(name="idem"), headers=headers)
    again = api.post(SERVERS, nova_body(name="idem"), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["server"]["id"] == first.json()["server"]["id"]
    assert "adminPass" in first.json()["server"] and "adminPass" not in again.json()["server"]   # shown once
    assert_error(api.post(SERVERS, nova_body(name="other"), headers=headers), 400, "Ecs.0005")
    assert len(ids_named(api, "idem")) == 1 and ids_named(api, "other") == []


def test_create_checks_project_and_token(api, other_api):
    assert_error(api.post(SERVERS, nova_body(), token=False), 401, "Common.0013")
    assert_error(api.post(f"/v2.1/{other_api.pid}/servers", nova_body()), 400, "Ecs.0023")
    assert_error(api.call("PUT", SERVER % UNKNOWN, {"server": {}}, token=False), 401, "Common.0013")
    assert_error(api.delete(SERVER % UNKNOWN, token=False), 401, "Common.0013")


# --- update ------------------------------------------------------------------------------------------------

def test_update_name_and_description(api):
    sid = create(api)
    r = api.call("PUT", SERVER % sid, {"server": {"name": "renamed", "description": "new words"}})
    assert r.status_code == 200, r.text
    server = r.json()["server"]
    assert server["name"] == "renamed" and server["description"] == "new words"
    assert server["links"][0]["href"].endswith(f"/v2.1/{api.pid}/servers/{sid}")
    assert api.server(sid)["name"] == "renamed"      # the v1 view agrees
    r = api.call("PUT", SERVER % sid, {"server": {}})
    assert r.status_code == 200 and r.json()["server"]["name"] == "renamed"


@pytest.mark.parametrize("body, status, code", [
    ({"server": {"name": "bad name"}}, 400, "Ecs.0915"),
    ({"server": {"name": "x" * 129}}, 400, "Ecs.0914"),
    ({"server": {"description": "a<b"}}, 400, "Ecs.0041"),
    ({"server": {"accessIPv4": "1.2.3.4"}}, 400, "Ecs.0005"),
    ({"server": {"name": 5}}, 400, "Ecs.0005"),
    ({"server": {"description": "a\x00"}}, 400, "Ecs.0005"),
    ({"name": "top-level"}, 400, "Ecs.0005"),
])
def test_update_refusals(api, body, status, code):
    sid = create(api)
    assert_error(api.call("PUT", SERVER % sid, body), status, code)
    assert api.server(sid)["name"] == "nova"


def test_update_unknown_locked_or_busy_server(api, other_api):
    assert_error(api.call("PUT", SERVER % UNKNOWN, {"server": {"name": "a"}}), 404, "Ecs.0114")
    assert_error(api.call("PUT", SERVER % "detail", {"server": {"name": "a"}}), 404, "Ecs.0114")
    sid = create(api)
    assert_error(other_api.call("PUT", SERVER % sid, {"server": {"name": "a"}}), 404, "Ecs.0114")
    assert api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {"lock": None}).status_code == 202
    assert_error(api.call("PUT", SERVER % sid, {"server": {"name": "a"}}), 400, "Ecs.0605")


# --- delete -------------------------------------------------------------------------------------------------

def test_delete_answers_204_and_the_server_goes(api):
    sid = create(api)
    with held(api):
        r = api.delete(SERVER % sid)
        assert r.status_code == 204 and r.content == b""
        assert api.get(SERVER % sid).json()["server"]["OS-EXT-STS:task_state"] == "deleting"
        assert_error(api.delete(SERVER % sid), 400, "Ecs.0100")     # one operation at a time
    deadline = time.monotonic() + 10
    while api.get(SERVER % sid).status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert_error(api.get(SERVER % sid), 404, "Ecs.0114")
    assert api.get("/v1/{pid}/cloudservers/limits").json()["absolute"]["totalInstancesUsed"] == 0
    assert_error(api.delete(SERVER % sid), 404, "Ecs.0114")


def test_delete_refusals(api, other_api):
    assert_error(api.delete(SERVER % UNKNOWN), 404, "Ecs.0114")
    assert_error(api.delete(SERVER % "not-a-uuid"), 404, "Ecs.0114")
    sid = create(api)
    assert_error(other_api.delete(SERVER % sid), 404, "Ecs.0114")
    assert api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {"lock": None}).status_code == 202
    assert_error(api.delete(SERVER % sid), 400, "Ecs.0605")
    assert api.get(SERVER % sid).json()["server"]["status"] == "ACTIVE"


def test_delete_keeps_data_disks_and_a_v1_created_server_goes_too(api):
    sid = create(api, block_device_mapping_v2=[{"source_type": "blank", "volume_size": 10}])
    v1 = v1_server(api)
    for server_id in (sid, v1):
        assert api.delete(SERVER % server_id).status_code == 204
    deadline = time.monotonic() + 10
    while api.get("/v1/{pid}/cloudservers/detail").json()["count"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)


# --- security groups ----------------------------------------------------------------------------------------

def test_security_groups_of_a_server_agree_with_its_views(api, other_api):
    sid = create(api)
    r = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-security-groups")
    assert r.status_code == 200, r.text
    (group,) = r.json()["security_groups"]
    gid = security_groups.default_group_id(api.pid)
    assert {k: group[k] for k in ("id", "name", "description", "tenant_id")} == {
        "id": gid, "name": "default", "description": "default", "tenant_id": api.pid}
    assert len(group["rules"]) == 2 and len({rule["id"] for rule in group["rules"]}) == 2
    for rule in group["rules"]:
        assert rule["parent_group_id"] == gid and rule["group"] == {"tenant_id": api.pid, "name": "default"}
        assert (rule["ip_protocol"], rule["from_port"], rule["to_port"], rule["ip_range"]) == (None, None, None, {})
    # the same group in the v1 view, the Nova view and for every server of the project
    assert api.server(sid)["security_groups"] == [{"name": "default", "id": gid}]
    assert api.get(SERVER % sid).json()["server"]["security_groups"] == [{"name": "default", "id": gid}]
    assert api.get(f"/v2.1/{{pid}}/servers/{create(api)}/os-security-groups").json() == r.json()
    # another project has a default group of its own
    other = create(other_api)
    (theirs,) = other_api.get(f"/v2.1/{{pid}}/servers/{other}/os-security-groups").json()["security_groups"]
    assert theirs["id"] != gid and theirs["tenant_id"] == other_api.pid

    assert_error(other_api.get(f"/v2.1/{{pid}}/servers/{sid}/os-security-groups"), 404, "Ecs.0114")
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{UNKNOWN}/os-security-groups"), 404, "Ecs.0114")


def test_the_discarded_group_queries_show_the_projects_default_group(api, other_api):
    r = api.get("/v2.1/{pid}/os-security-groups")
    assert r.status_code == 200, r.text
    (group,) = r.json()["security_groups"]
    sid = create(api)
    assert [group] == api.get(f"/v2.1/{{pid}}/servers/{sid}/os-security-groups").json()["security_groups"]
    shown = api.get(f"/v2.1/{{pid}}/os-security-groups/{group['id']}")
    assert shown.status_code == 200 and shown.json() == {"security_group": group}
    # another project's group is not this project's
    (theirs,) = other_api.get("/v2.1/{pid}/os-security-groups").json()["security_groups"]
    assert theirs["id"] != group["id"]
    assert_error(api.get(f"/v2.1/{{pid}}/os-security-groups/{theirs['id']}"), 404, "Ecs.0014")
    assert_error(api.get(f"/v2.1/{{pid}}/os-security-groups/{UNKNOWN}"), 404, "Ecs.0014")


def test_adding_and_removing_security_groups_as_the_domain_answers_them(api):
    """``addSecurityGroup`` / ``removeSecurityGroup`` (wired into http/nova.py by the lead)."""
    sid = create(api)
    store = api.client.app.state.services.store
    store.run_sync(security_groups.change_membership, api.pid, sid, True, "default")
    store.run_sync(security_groups.change_membership, api.pid, sid, True, security_groups.default_group_id(api.pid))
    for add, name in ((True, "web"), (False, "default"), (False, "web")):
        with pytest.raises(EcsError) as err:
            store.run_sync(security_groups.change_membership, api.pid, sid, add, name)
        assert err.value.code == "Ecs.0014"
    with pytest.raises(EcsError) as err:
        store.run_sync(security_groups.change_membership, api.pid, UNKNOWN, True, "default")
    assert err.value.code == "Ecs.0114"
