"""Network, disk and zone queries: NICs (os-interface, v1 and Nova), Nova ips, os-volume_attachments and
os-availability-zone; each NIC of a server its own port, MAC and address (issue 11)."""

from __future__ import annotations

import uuid

from ecsd.domain import nics
from tests import support as s
from tests.support import assert_error

BOTH_DATABASES = True


def test_nics_of_a_server(api, other_api):
    (server_id,) = api.create_servers()
    server = api.server(server_id)
    (address,) = [a for items in server["addresses"].values() for a in items]
    r = api.get(f"/v1/{{pid}}/cloudservers/{server_id}/os-interface")
    assert r.status_code == 200, r.text
    (nic,) = r.json()["interfaceAttachments"]
    assert nic == {"port_state": "ACTIVE", "net_id": s.SUBNET, "port_id": address["OS-EXT-IPS:port_id"],
                   "mac_addr": address["OS-EXT-IPS-MAC:mac_addr"],
                   "fixed_ips": [{"subnet_id": s.SUBNET, "ip_address": address["addr"]}]}
    nova = api.get(f"/v2.1/{{pid}}/servers/{server_id}/os-interface")
    assert nova.status_code == 200 and nova.json() == r.json()
    one = api.get(f"/v2.1/{{pid}}/servers/{server_id}/os-interface/{nic['port_id']}")
    assert one.status_code == 200 and one.json() == {"interfaceAttachment": nic}
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{server_id}/os-interface/{s.SUBNET}"), 404, "Common.0404")
    assert_error(other_api.get(f"/v1/{{pid}}/cloudservers/{server_id}/os-interface"), 404, "Ecs.0114")


def test_nova_ips_and_volume_attachments(api):
    (server_id,) = api.create_servers()
    server = api.server(server_id)
    (network,) = server["addresses"]
    (address,) = server["addresses"][network]
    r = api.get(f"/v2.1/{{pid}}/servers/{server_id}/ips")
    assert r.status_code == 200 and r.json() == {"addresses": {network: [{"version": 4, "addr": address["addr"]}]}}
    assert api.get(f"/v2.1/{{pid}}/servers/{server_id}/ips/{network}").json() == {
        network: [{"version": 4, "addr": address["addr"]}]}
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{server_id}/ips/elsewhere"), 404, "Common.0404")

    attached = api.get(f"/v2.1/{{pid}}/servers/{server_id}/os-volume_attachments")
    assert attached.status_code == 200, attached.text
    assert attached.json() == api.get(f"/v1/{{pid}}/cloudservers/{server_id}/os-volume_attachments").json()
    (disk,) = attached.json()["volumeAttachments"]
    assert disk["serverId"] == server_id and disk["device"] == "/dev/vda"
    one = api.get(f"/v2.1/{{pid}}/servers/{server_id}/os-volume_attachments/{disk['volumeId']}")
    assert one.status_code == 200 and one.json() == {"volumeAttachment": disk}
    assert_error(api.get(f"/v2.1/{{pid}}/servers/{server_id}/os-volume_attachments/{s.SUBNET}"), 400, "Ecs.0111")


def test_availability_zones(api):
    r = api.get("/v2.1/{pid}/os-availability-zone")
    assert r.status_code == 200, r.text
    zones = r.json()["availabilityZoneInfo"]
    assert [z["zoneName"] for z in zones] == ["eu-de-01", "eu-de-02", "eu-de-03"]
    assert all(z["zoneState"] == {"available": True} and z["hosts"] is None for z in zones)


SUBNET2 = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def _create(api, nic_list: list[dict], count: int = 1) -> list[str]:
    body = {"server": {"name": "nics", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": nic_list, "root_volume": {"volumetype": "SSD"}, "count": count}}
    r = api.post("/v1/{pid}/cloudservers", body)
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    return r.json()["serverIds"]


def test_each_nic_has_its_own_port_mac_and_address(api):
    (sid,) = _create(api, [{"subnet_id": s.SUBNET}, {"subnet_id": SUBNET2}, {"subnet_id": s.SUBNET}])
    addresses = api.server(sid)["addresses"][s.VPC]
    assert len(addresses) == 3
    for key in ("OS-EXT-IPS:port_id", "OS-EXT-IPS-MAC:mac_addr", "addr"):
        assert len({a[key] for a in addresses}) == 3, (key, addresses)

    v1 = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json()["interfaceAttachments"]
    assert [(n["port_id"], n["mac_addr"], n["fixed_ips"][0]["ip_address"]) for n in v1] == [
        (a["OS-EXT-IPS:port_id"], a["OS-EXT-IPS-MAC:mac_addr"], a["addr"]) for a in addresses]
    assert [n["net_id"] for n in v1] == [s.SUBNET, SUBNET2, s.SUBNET]
    assert api.get(f"/v2.1/{{pid}}/servers/{sid}/os-interface").json() == {"interfaceAttachments": v1}
    for nic in v1:    # each port on its own, with its own network
        one = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-interface/{nic['port_id']}")
        assert one.status_code == 200 and one.json() == {"interfaceAttachment": nic}

    ips = api.get(f"/v2.1/{{pid}}/servers/{sid}/ips").json()
    assert ips == {"addresses": {s.VPC: [{"version": 4, "addr": a["addr"]} for a in addresses]}}
    nova = api.get(f"/v2.1/{{pid}}/servers/{sid}").json()["server"]["addresses"][s.VPC]
    assert [a["OS-EXT-IPS:port_id"] for a in nova] == [n["port_id"] for n in v1]


def test_nic_ports_are_stable_and_the_first_keeps_its_derivation(api):
    (sid,) = _create(api, [{"subnet_id": s.SUBNET}, {"subnet_id": s.SUBNET}])
    first = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json()
    assert api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json() == first
    raw = uuid.UUID(sid).bytes
    assert first["interfaceAttachments"][0]["port_id"] == str(uuid.UUID(bytes=bytes(reversed(raw)), version=4))


def test_a_given_address_and_an_automatic_one_on_two_nics(api):
    (sid,) = _create(api, [{"subnet_id": s.SUBNET, "ip_address": "10.0.0.9"}, {"subnet_id": s.SUBNET}])
    found = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json()["interfaceAttachments"]
    assert found[0]["fixed_ips"][0]["ip_address"] == "10.0.0.9"
    assert found[1]["fixed_ips"][0]["ip_address"] not in ("10.0.0.9", "")
    assert found[0]["port_id"] != found[1]["port_id"] and found[0]["mac_addr"] != found[1]["mac_addr"]


def test_automatic_addresses_avoid_those_in_use(api, monkeypatch):
    """Every NIC's first candidate made the same: the servers of one create, and of the next create,
    still get addresses no other server of the project has."""
    real = nics._candidate_ip
    monkeypatch.setattr(nics, "_candidate_ip",
                        lambda sid, index, attempt: "192.168.7.7" if attempt == 0 else real(sid, index, attempt))
    ids = _create(api, [{"subnet_id": s.SUBNET}, {"subnet_id": s.SUBNET}], count=2)
    ids += _create(api, [{"subnet_id": s.SUBNET}])
    used = [a["addr"] for sid in ids for a in api.server(sid)["addresses"][s.VPC]]
    assert len(used) == 5 and len(set(used)) == 5 and "192.168.7.7" in used
    # a fixed address taken by an automatic one is refused as any address in use
    assert_error(api.post("/v1/{pid}/cloudservers", {"server": {
        "name": "dup", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
        "nics": [{"subnet_id": s.SUBNET, "ip_address": "192.168.7.7"}], "root_volume": {"volumetype": "SSD"}}}),
        400, "Ecs.0010")


def test_no_free_automatic_address_is_ecs_0012(api, monkeypatch):
    monkeypatch.setattr(nics, "_candidate_ip", lambda sid, index, attempt: "192.168.9.9")
    _create(api, [{"subnet_id": s.SUBNET}])
    body = {"server": {"name": "full", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                       "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
    assert_error(api.post("/v1/{pid}/cloudservers", body), 400, "Ecs.0012")
    assert api.get("/v1/{pid}/cloudservers/detail").json()["count"] == 1


def test_nova_ips_and_interfaces_of_a_two_network_nova_server(api):
    r = api.post("/v2.1/{pid}/servers", {"server": {"name": "two", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1",
                                                     "networks": [{"uuid": s.SUBNET}, {"uuid": SUBNET2}]}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    found = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-interface").json()["interfaceAttachments"]
    assert [n["net_id"] for n in found] == [s.SUBNET, SUBNET2]
    assert len({n["port_id"] for n in found}) == len({n["mac_addr"] for n in found}) == 2
    (network, ips), = api.get(f"/v2.1/{{pid}}/servers/{sid}/ips").json()["addresses"].items()
    assert ips == [{"version": 4, "addr": n["fixed_ips"][0]["ip_address"]} for n in found]
    assert len({ip["addr"] for ip in ips}) == 2
    assert api.get(f"/v2.1/{{pid}}/servers/{sid}/ips/{network}").json() == {network: ips}


def test_os_networks_lists_the_default_network_and_those_servers_use(api, other_api):
    r = api.get("/v2.1/{pid}/os-networks")
    assert r.status_code == 200, r.text
    (default,) = r.json()["networks"]
    assert default["label"] == "default" and default["cidr"] is None and default["gateway"] is None
    api.create_servers()
    networks = api.get("/v2.1/{pid}/os-networks").json()["networks"]
    assert [n["id"] for n in networks] == [default["id"], s.SUBNET]
    assert all(set(n) == {"id", "label", "broadcast", "cidr", "cidr_v6", "dns1", "dns2", "gateway", "gateway_v6",
                          "netmask", "netmask_v6", "bridge"} for n in networks)
    # another project sees its own default network only
    assert [n["label"] for n in other_api.get("/v2.1/{pid}/os-networks").json()["networks"]] == ["default"]


def test_os_server_password_is_empty_and_can_be_deleted(api, other_api):
    (sid,) = api.create_servers()
    r = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-server-password")
    assert r.status_code == 200 and r.json() == {"password": ""}
    assert api.delete(f"/v2.1/{{pid}}/servers/{sid}/os-server-password").status_code == 204
    assert_error(other_api.get(f"/v2.1/{{pid}}/servers/{sid}/os-server-password"), 404, "Ecs.0114")
    assert_error(api.delete("/v2.1/{pid}/servers/" + s.VPC + "/os-server-password"), 404, "Ecs.0114")
