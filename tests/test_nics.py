"""Network, disk and zone queries: NICs (os-interface, v1 and Nova), Nova ips, os-volume_attachments and
os-availability-zone."""

from __future__ import annotations

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
