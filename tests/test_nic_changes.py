"""Adding and deleting NICs (v1 jobs addNics/deleteNics, Nova os-interface attach/detach) and binding
virtual IPs to a NIC (issue 13), on SQLite and PostgreSQL; the official SDKs against a real process."""

from __future__ import annotations

import functools
import json
import time

import pytest

from ecsd.app import operator_credentials
from ecsd.domain import nics
from tests import support as s
from tests.sdk_server import ecsd_server  # noqa: F401
from tests.support import assert_error

BOTH_DATABASES = True
SUBNET2 = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ADD = "/v1/{pid}/cloudservers/%s/nics"
DELETE = "/v1/{pid}/cloudservers/%s/nics/delete"
VIP = "/v1/{pid}/cloudservers/nics/%s"
OS_INTERFACE = "/v2.1/{pid}/servers/%s/os-interface"
PORT, MAC = "OS-EXT-IPS:port_id", "OS-EXT-IPS-MAC:mac_addr"


def add(api, sid: str, *nic_list: dict):
    return api.post(ADD % sid, {"nics": list(nic_list)})


def delete(api, sid: str, *ports: str):
    return api.post(DELETE % sid, {"nics": [{"id": p} for p in ports]})


def done(api, resp) -> dict:
    assert resp.status_code == 200, resp.text
    job = api.wait_job(resp.json()["job_id"])
    assert job["status"] == "SUCCESS", job
    return job


def views(api, sid: str) -> list[dict]:
    """The server's NICs, after checking that os-interface (v1, Nova), addresses (v1, Nova) and ips agree."""
    v1 = api.get(f"/v1/{{pid}}/cloudservers/{sid}/os-interface").json()["interfaceAttachments"]
    assert api.get(OS_INTERFACE % sid).json() == {"interfaceAttachments": v1}
    server = api.server(sid)
    fixed = [a for items in server["addresses"].values() for a in items if a["OS-EXT-IPS:type"] == "fixed"]
    assert [(n["port_id"], n["mac_addr"], n["fixed_ips"][0]["ip_address"]) for n in v1] == [
        (a[PORT], a[MAC], a["addr"]) for a in fixed]
    nova = api.get(f"/v2.1/{{pid}}/servers/{sid}").json()["server"]["addresses"]
    assert {net: [a["addr"] for a in items] for net, items in nova.items()} == {
        net: [a["addr"] for a in items] for net, items in server["addresses"].items()}
    ips = api.get(f"/v2.1/{{pid}}/servers/{sid}/ips").json()["addresses"]
    assert {net: [a["addr"] for a in items] for net, items in ips.items()} == {
        net: [a["addr"] for a in items] for net, items in server["addresses"].items()}
    return v1


def server(api) -> tuple[str, dict]:
    (sid,) = api.create_servers()
    (primary,) = views(api, sid)
    return sid, primary


# --- adding and deleting ----------------------------------------------------------------------------------

def test_add_two_nics_then_delete_one(api):
    sid, primary = server(api)
    job = done(api, add(api, sid, {"subnet_id": s.SUBNET}, {"subnet_id": SUBNET2, "ip_address": "10.1.2.3",
                                                            "security_groups": [{"id": s.VPC}]}))
    assert job["job_type"] == "addNics" and job["entities"]["server_id"] == sid
    found = views(api, sid)
    assert found[0] == primary and len(found) == 3
    assert [n["net_id"] for n in found] == [s.SUBNET, s.SUBNET, SUBNET2]
    assert found[2]["fixed_ips"] == [{"subnet_id": SUBNET2, "ip_address": "10.1.2.3"}]
    for key in ("port_id", "mac_addr"):
        assert len({n[key] for n in found}) == 3
    assert len({n["fixed_ips"][0]["ip_address"] for n in found}) == 3
    assert api.server(sid)["status"] == "ACTIVE"

    job = done(api, delete(api, sid, found[1]["port_id"]))
    assert job["job_type"] == "deleteNics"
    assert views(api, sid) == [found[0], found[2]]
    # the deleted NIC's address is free again; the kept one is not
    done(api, add(api, sid, {"subnet_id": s.SUBNET, "ip_address": found[1]["fixed_ips"][0]["ip_address"]}))
    assert_error(add(api, sid, {"subnet_id": s.SUBNET, "ip_address": "10.1.2.3"}), 400, "Ecs.0010")

    actions = api.get(f"/v2.1/{{pid}}/servers/{sid}/os-instance-actions").json()["instanceActions"]
    assert [a["action"] for a in actions].count("attach_interface") == 2
    assert [a["action"] for a in actions].count("detach_interface") == 1


def test_a_stopped_server_gets_nics_and_stays_stopped(api):
    sid, _primary = server(api)
    api.stop(sid)
    done(api, add(api, sid, {"subnet_id": s.SUBNET}))
    assert len(views(api, sid)) == 2 and api.server(sid)["status"] == "SHUTOFF"


def test_refusals(api, other_api):
    sid, primary = server(api)
    (other,) = api.create_servers()
    other_ip = views(api, other)[0]["fixed_ips"][0]["ip_address"]
    assert_error(add(api, sid, {"subnet_id": s.SUBNET, "ip_address": other_ip}), 400, "Ecs.0010")
    assert_error(add(api, sid, {"subnet_id": s.SUBNET, "ip_address": "10.9.9.9"},
                     {"subnet_id": s.SUBNET, "ip_address": "10.9.9.9"}), 400, "Ecs.0010")
    assert_error(add(api, sid, {"subnet_id": s.SUBNET, "ip_address": "300.1.1.1"}), 400, "Ecs.0005")
    assert_error(add(api, sid, {"port_id": primary["port_id"]}), 400, "Ecs.0010")
    assert_error(add(api, sid, {"port_id": s.VPC}), 400, "Ecs.0014")
    assert_error(delete(api, sid, primary["port_id"]), 403, "Ecs.0003")
    assert_error(delete(api, sid, s.VPC), 400, "Ecs.0085")
    assert_error(delete(api, sid, s.VPC, s.VPC), 400, "Ecs.0005")
    assert_error(delete(api, sid, views(api, other)[0]["port_id"]), 400, "Ecs.0085")
    assert_error(add(other_api, sid, {"subnet_id": s.SUBNET}), 404, "Ecs.0114")
    assert_error(delete(api, s.VPC, primary["port_id"]), 404, "Ecs.0114")
    assert views(api, sid) == [primary]


def test_at_most_twelve_nics(api):
    sid, _primary = server(api)
    assert_error(add(api, sid, *[{"subnet_id": s.SUBNET}] * 12), 400, "Ecs.0050")
    done(api, add(api, sid, *[{"subnet_id": s.SUBNET}] * 11))
    found = views(api, sid)
    assert len(found) == 12 and len({n["port_id"] for n in found}) == 12
    assert len({n["fixed_ips"][0]["ip_address"] for n in found}) == 12
    assert_error(add(api, sid, {"subnet_id": s.SUBNET}), 400, "Ecs.0050")


def test_gates_locked_and_busy(slow_api):
    api = slow_api
    sid, primary = server(api)
    with s.held(api):
        r = add(api, sid, {"subnet_id": s.SUBNET})
        assert r.status_code == 200, r.text
        assert api.server(sid)["status"] == "ACTIVE"          # no task_state: the status stays
        assert_error(add(api, sid, {"subnet_id": s.SUBNET}), 400, "Ecs.0100")
        assert_error(delete(api, sid, s.VPC), 400, "Ecs.0085")
        assert_error(api.post(OS_INTERFACE % sid, {"interfaceAttachment": {}}), 400, "Ecs.0100")
        assert_error(api.call("PUT", VIP % primary["port_id"], {"nic": {"subnet_id": s.SUBNET,
                                                                         "ip_address": "10.7.7.7"}}), 400, "Ecs.0100")
        assert_error(api.post("/v1/{pid}/cloudservers/action", {"os-stop": {"servers": [{"id": sid}]}}),
                     400, "Ecs.0100")
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    added = views(api, sid)[1]
    s.sql(api.client, "UPDATE servers SET locked = :yes WHERE id = :id", yes=True, id=sid)
    assert_error(add(api, sid, {"subnet_id": s.SUBNET}), 400, "Ecs.0605")
    assert_error(delete(api, sid, added["port_id"]), 400, "Ecs.0605")
    assert_error(api.delete(OS_INTERFACE % sid + "/" + added["port_id"]), 400, "Ecs.0605")


def test_the_nics_are_chosen_at_acceptance(slow_api):
    """Crash safety: the job's parameters name the NICs (port, MAC, IP) before any step runs, so a
    resumed step plugs and records the same ones."""
    api = slow_api
    sid, _primary = server(api)
    with s.held(api):
        r = add(api, sid, {"subnet_id": s.SUBNET})
        assert r.status_code == 200, r.text
        (params,) = s.sql(api.client, "SELECT params FROM jobs WHERE job_id = :j", j=r.json()["job_id"]).one()
    (chosen,) = json.loads(params)["nics"]
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    added = views(api, sid)[1]
    assert (added["port_id"], added["mac_addr"], added["fixed_ips"][0]["ip_address"]) == (
        chosen[PORT], chosen[MAC], chosen["addr"])


def test_concurrent_adds_exactly_one_accepted(slow_api):
    api = slow_api
    sid, _primary = server(api)
    results = s.at_once(*[functools.partial(add, api, sid, {"subnet_id": s.SUBNET})] * 8)
    accepted = [r for r in results if r.status_code == 200]
    assert len(accepted) == 1, [r.text for r in results]
    assert all(r.json()["error"]["code"] == "Ecs.0100" for r in results if r.status_code != 200)
    done(api, accepted[0])
    assert len(views(api, sid)) == 2


def _fault(client, settings, operation: str, code: str) -> None:
    token = operator_credentials(settings)["operator_token"]
    r = client.post("/_ecsd/faults", json={"operation": operation, "code": code},
                    headers={"X-Ecsd-Operator-Token": token})
    assert r.status_code == 201, r.text


def test_failures_leave_the_server_with_its_nics(api, client, settings):
    sid, primary = server(api)
    done(api, add(api, sid, {"subnet_id": s.SUBNET}))
    before = views(api, sid)
    _fault(client, settings, "addNics", "Ecs.0217")
    r = add(api, sid, {"subnet_id": s.SUBNET}, {"subnet_id": SUBNET2})
    job = api.wait_job(r.json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0217"
    after = api.server(sid)
    assert after["status"] == "ACTIVE" and not after.get("fault") and views(api, sid) == before

    _fault(client, settings, "deleteNics", "Ecs.0507")
    job = api.wait_job(delete(api, sid, before[1]["port_id"]).json()["job_id"])
    assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0507"
    assert api.server(sid)["status"] == "ACTIVE" and views(api, sid) == before
    done(api, delete(api, sid, before[1]["port_id"]))     # and the server takes the next change
    assert views(api, sid) == [primary]


# --- virtual IPs --------------------------------------------------------------------------------------------

def vip(api, port: str, subnet: str, ip: str, **extra):
    return api.call("PUT", VIP % port, {"nic": {"subnet_id": subnet, "ip_address": ip, **extra}})


def test_bind_and_unbind_a_virtual_ip(api):
    sid, primary = server(api)
    (other,) = api.create_servers()
    other_nic = views(api, other)[0]
    port = primary["port_id"]
    r = vip(api, port, s.SUBNET, "10.20.30.40", reverse_binding=True)
    assert r.status_code == 200 and r.json() == {"port_id": port}
    assert vip(api, port, s.SUBNET, "10.20.30.40").status_code == 200     # again: no change
    assert views(api, sid) == [primary]          # os-interface lists the NIC's own (fixed) address only
    entries = [a for items in api.server(sid)["addresses"].values() for a in items]
    assert entries[1] == {"version": "4", "addr": "10.20.30.40", "OS-EXT-IPS:type": "virtual",
                          MAC: primary["mac_addr"], PORT: port}
    ips = api.get(f"/v2.1/{{pid}}/servers/{sid}/ips").json()["addresses"]
    assert [a["addr"] for items in ips.values() for a in items][1] == "10.20.30.40"
    # shared with a NIC of another server on the network (HA pairs), but never a NIC's own address
    assert vip(api, other_nic["port_id"], s.SUBNET, "10.20.30.40").status_code == 200
    assert_error(vip(api, port, s.SUBNET, other_nic["fixed_ips"][0]["ip_address"]), 400, "Ecs.0010")
    assert_error(add(api, sid, {"subnet_id": s.SUBNET, "ip_address": "10.20.30.40"}), 400, "Ecs.0010")
    assert_error(vip(api, port, SUBNET2, "10.20.30.41"), 400, "Ecs.0014")
    assert_error(vip(api, port, s.SUBNET, ""), 400, "Ecs.0005")
    assert_error(vip(api, port, "", "10.20.30.41"), 400, "Ecs.0005")
    assert_error(vip(api, port, s.SUBNET, "10.20.30"), 400, "Ecs.0005")
    assert_error(vip(api, s.VPC, s.SUBNET, "10.20.30.41"), 404, "Common.0404")
    assert_error(vip(api, "nope", s.SUBNET, "10.20.30.41"), 404, "Common.0404")

    r = vip(api, port, "", "", reverse_binding=False)
    assert r.status_code == 200 and r.json() == {"port_id": port}
    assert [a["addr"] for items in api.server(sid)["addresses"].values() for a in items] == [
        primary["fixed_ips"][0]["ip_address"]]
    assert len([a for items in api.server(other)["addresses"].values() for a in items]) == 2


def test_deleting_a_nic_drops_its_virtual_ip(api):
    sid, _primary = server(api)
    done(api, add(api, sid, {"subnet_id": s.SUBNET}))
    added = views(api, sid)[1]
    assert vip(api, added["port_id"], s.SUBNET, "10.20.30.50").status_code == 200
    done(api, delete(api, sid, added["port_id"]))
    assert "10.20.30.50" not in str(api.server(sid)["addresses"])


# --- Nova ---------------------------------------------------------------------------------------------------

def settled(api, sid: str, count: int) -> list[dict]:
    """Poll os-interface (as a Nova client does after attach/detach) until the server has ``count`` NICs."""
    deadline = time.monotonic() + 10
    while len(api.get(OS_INTERFACE % sid).json()["interfaceAttachments"]) != count:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return views(api, sid)     # the job is done: every view agrees


def test_nova_attach_and_detach(api):
    sid, primary = server(api)
    r = api.post(OS_INTERFACE % sid, {"interfaceAttachment": {"net_id": SUBNET2,
                                                              "fixed_ips": [{"ip_address": "10.3.3.3"}]}})
    assert r.status_code == 200, r.text
    att = r.json()["interfaceAttachment"]
    assert att["net_id"] == SUBNET2 and att["port_state"] == "DOWN"
    assert att["fixed_ips"] == [{"subnet_id": SUBNET2, "ip_address": "10.3.3.3"}]
    assert att["port_id"] != primary["port_id"] and att["mac_addr"] != primary["mac_addr"]
    found = settled(api, sid, 2)
    assert found[1] == {**att, "port_state": "ACTIVE"}
    one = api.get(OS_INTERFACE % sid + "/" + att["port_id"])
    assert one.status_code == 200 and one.json() == {"interfaceAttachment": found[1]}

    # neither net_id nor port_id: on the primary NIC's network
    r = api.post(OS_INTERFACE % sid, {"interfaceAttachment": {}})
    assert r.status_code == 200 and r.json()["interfaceAttachment"]["net_id"] == s.SUBNET
    settled(api, sid, 3)

    assert_error(api.delete(OS_INTERFACE % sid + "/" + att["port_id"] + "?reserve_port=maybe"), 400, "Ecs.0005")
    r = api.delete(OS_INTERFACE % sid + "/" + att["port_id"] + "?reserve_port=false")
    assert r.status_code == 202 and not r.content
    found = settled(api, sid, 2)
    assert att["port_id"] not in [n["port_id"] for n in found]
    assert_error(api.delete(OS_INTERFACE % sid + "/" + att["port_id"]), 404, "Common.0404")
    assert_error(api.delete(OS_INTERFACE % sid + "/" + primary["port_id"]), 403, "Ecs.0003")
    assert_error(api.post(OS_INTERFACE % sid, {"interfaceAttachment": {"port_id": primary["port_id"]}}),
                 400, "Ecs.0010")


# --- validation ---------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [
    {}, {"nics": []}, {"nics": "x"}, {"nics": [{}]}, {"nics": [{"subnet_id": "not-a-uuid"}]},
    {"nics": [{"subnet_id": s.SUBNET, "ipv6_enable": True}]}, {"nics": [{"subnet_id": s.SUBNET, "color": 1}]},
    {"nics": [{"subnet_id": s.SUBNET, "security_groups": [{}]}]}, {"nics": [{"subnet_id": 5}]},
])
def test_add_body_matrix(api, body):
    assert_error(api.post(ADD % s.VPC, body), 400, "Ecs.0005")    # the body is read before the server


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [{}, {"nics": []}, {"nics": [{}]}, {"nics": [{"id": "x"}]},
                                  {"nics": [{"id": s.VPC, "x": 1}]}])
def test_delete_body_matrix(api, body):
    assert_error(api.post(DELETE % s.VPC, body), 400, "Ecs.0005")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [
    {}, {"interfaceAttachment": {"net_id": s.SUBNET, "port_id": s.VPC}},
    {"interfaceAttachment": {"port_id": s.VPC, "fixed_ips": [{"ip_address": "10.0.0.1"}]}},
    {"interfaceAttachment": {"net_id": s.SUBNET, "fixed_ips": [{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.2"}]}},
    {"interfaceAttachment": {"net_id": "x"}}, {"interfaceAttachment": {"net_id": s.SUBNET, "y": 1}},
])
def test_nova_attach_body_matrix(api, body):
    assert_error(api.post(OS_INTERFACE % s.VPC, body), 400, "Ecs.0005")


@pytest.mark.sqlite_only
@pytest.mark.parametrize("body", [{}, {"nic": {}}, {"nic": {"subnet_id": s.SUBNET}},
                                  {"nic": {"subnet_id": s.SUBNET, "ip_address": "10.0.0.1", "reverse_binding": "yes"}}])
def test_virtual_ip_body_matrix(api, body):
    assert_error(api.call("PUT", VIP % s.VPC, body), 400, "Ecs.0005")


def test_added_nic_ports_differ_from_the_create_derivation():
    created = nics.make_nic(s.VPC, 1, s.SUBNET, None, set())
    added = nics.make_nic(s.VPC, "0123abcd/1", s.SUBNET, None, set())
    assert created[PORT] != added[PORT] and created[MAC] != added[MAC]


# --- the official SDKs against a real process ------------------------------------------------------------

SDK = [pytest.mark.slow,
       pytest.mark.filterwarnings("error::huaweicloudsdkcore.warning.warning.TypeConversionWarning"),
       pytest.mark.filterwarnings(r"ignore:Method 'nova_\w+' of EcsClient is deprecated:DeprecationWarning")]


def sdk(fn):
    for mark in SDK:
        fn = mark(fn)
    return fn


@sdk
def test_official_sdks(ecsd_server):  # noqa: F811
    """Both SDKs in one test: one ``ecsd serve`` process for them (xdist would start one per worker)."""
    huawei_sdk_add_delete_and_virtual_ip(ecsd_server)
    openstacksdk_create_and_delete_server_interface(ecsd_server)


def huawei_sdk_add_delete_and_virtual_ip(ecsd_server) -> None:  # noqa: F811
    pytest.importorskip("huaweicloudsdkecs")
    from huaweicloudsdkecs.v2 import (
        AssociateServerVirtualIpOption,
        AssociateServerVirtualIpRequest,
        AssociateServerVirtualIpRequestBody,
        BatchAddServerNicOption,
        BatchAddServerNicsRequest,
        BatchAddServerNicsRequestBody,
        BatchDeleteServerNicOption,
        BatchDeleteServerNicsRequest,
        BatchDeleteServerNicsRequestBody,
        DisassociateServerVirtualIpOption,
        DisassociateServerVirtualIpRequest,
        DisassociateServerVirtualIpRequestBody,
        ListServerInterfacesRequest,
        NovaAttachInterfaceOption,
        NovaAttachInterfaceRequest,
        NovaAttachInterfaceRequestBody,
        ServerNicSecurityGroup,
    )

    from tests.sdk_models import check_response
    from tests.test_sdk_huawei import create_servers, ecs_client, wait_job

    base, creds = ecsd_server
    ecs = ecs_client(base, creds["ak"], creds["sk"], creds["project_id"])
    (sid,) = create_servers(ecs, "sdk-nics")

    def listed():
        resp = ecs.list_server_interfaces(ListServerInterfacesRequest(server_id=sid))
        assert check_response(resp, optional={"ListServerInterfacesResponse": {"attachableQuantity"},
                                              "InterfaceAttachment": {
            "delete_on_termination", "driver_mode", "min_rate", "multiqueue_num", "pci_address"}}) == []
        return resp.interface_attachments

    resp = ecs.batch_add_server_nics(BatchAddServerNicsRequest(server_id=sid, body=BatchAddServerNicsRequestBody(
        nics=[BatchAddServerNicOption(subnet_id=SUBNET2, ip_address="10.5.5.5",
                                      security_groups=[ServerNicSecurityGroup(id=s.VPC)])])))
    job = wait_job(ecs, resp.job_id)
    assert job.status == "SUCCESS" and job.job_type == "addNics"
    primary, added = listed()
    assert added.fixed_ips[0].ip_address == "10.5.5.5" and added.net_id == SUBNET2

    bound = ecs.associate_server_virtual_ip(AssociateServerVirtualIpRequest(
        nic_id=primary.port_id, body=AssociateServerVirtualIpRequestBody(nic=AssociateServerVirtualIpOption(
            subnet_id=s.SUBNET, ip_address="10.5.5.100", reverse_binding=True))))
    assert bound.port_id == primary.port_id
    assert "10.5.5.100" in str(ecs_server_addresses(base, creds, sid))
    unbound = ecs.disassociate_server_virtual_ip(DisassociateServerVirtualIpRequest(
        nic_id=primary.port_id, body=DisassociateServerVirtualIpRequestBody(nic=DisassociateServerVirtualIpOption(
            subnet_id="", ip_address="", reverse_binding=False))))
    assert unbound.port_id == primary.port_id
    assert "10.5.5.100" not in str(ecs_server_addresses(base, creds, sid))

    resp = ecs.batch_delete_server_nics(BatchDeleteServerNicsRequest(server_id=sid, body=(
        BatchDeleteServerNicsRequestBody(nics=[BatchDeleteServerNicOption(id=added.port_id)]))))
    job = wait_job(ecs, resp.job_id)
    assert job.status == "SUCCESS" and job.job_type == "deleteNics"
    assert [n.port_id for n in listed()] == [primary.port_id]

    attached = ecs.nova_attach_interface(NovaAttachInterfaceRequest(server_id=sid, body=(
        NovaAttachInterfaceRequestBody(interface_attachment=NovaAttachInterfaceOption(net_id=SUBNET2)))))
    assert check_response(attached) == []
    assert attached.interface_attachment.net_id == SUBNET2
    deadline = time.monotonic() + 10
    while len(listed()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def ecs_server_addresses(base: str, creds: dict, sid: str) -> dict:
    from huaweicloudsdkecs.v2 import ShowServerRequest

    from tests.test_sdk_huawei import ecs_client
    return ecs_client(base, creds["ak"], creds["sk"], creds["project_id"]).show_server(
        ShowServerRequest(server_id=sid)).server.addresses


def openstacksdk_create_and_delete_server_interface(ecsd_server) -> None:  # noqa: F811
    pytest.importorskip("openstack")
    from tests.test_sdk_openstack import connect

    base, creds = ecsd_server
    conn = connect(base, creds)
    try:
        body = {"server": {"name": "os-nics", "imageRef": s.UBUNTU, "flavorRef": "s3.small.1", "vpcid": s.VPC,
                           "nics": [{"subnet_id": s.SUBNET}], "root_volume": {"volumetype": "SSD"}}}
        pid = creds["project_id"]
        r = conn.session.post(f"{base}/v1/{pid}/cloudservers", json=body)
        sid = r.json()["serverIds"][0]
        deadline = time.monotonic() + 20
        while conn.compute.get_server(sid).status != "ACTIVE":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        iface = conn.compute.create_server_interface(sid, net_id=SUBNET2)
        assert iface.net_id == SUBNET2 and iface.port_id
        while len(list(conn.compute.server_interfaces(sid))) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        conn.compute.delete_server_interface(iface.port_id, server=sid)
        while len(list(conn.compute.server_interfaces(sid))) > 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        conn.close()
