"""A server's NICs: the ports a create makes, the networks a Nova create names, and the NIC queries
(querying_nics_of_an_ecs.rst, Nova os-interface, creating_an_ecs.rst of both APIs).

    GET /v1/{project_id}/cloudservers/{server_id}/os-interface          {"interfaceAttachments": [...]}
    GET /v2.1/{project_id}/servers/{server_id}/os-interface             the same
    GET /v2.1/{project_id}/servers/{server_id}/os-interface/{port_id}   {"interfaceAttachment": {...}}

ecsd has no VPC service: a server's NICs are the fixed addresses it was created with (one per entry
of ``nics``), each with its own port id, MAC address and IP, chosen at create (:func:`make_nic`) and
kept in the server's ``addresses``. The network given at create (``nics[].subnet_id``, which on the
cloud is the network's id, and a Nova ``networks[].uuid``) stands for both ``net_id`` and the fixed
IP's ``subnet_id``. NICs added later (domain/nic_changes.py) are made the same way, keyed by the
job that adds them, and a virtual IP bound to a NIC is an extra ``addresses`` entry of type
``virtual`` carrying that NIC's port id and MAC (:func:`interfaces` lists only the fixed ones).

Automatic addresses are unique among the project's live servers as far as a cheap check can tell:
while the project has at most :data:`CHECKED_UP_TO` servers, the addresses they use are read once per
create and a NIC's candidates are tried until one is free (400 Ecs.0012 when none is). Servers made
before NICs had ports of their own keep the port, MAC and IP they had (their NICs shared one).

Nova networks (:func:`nova_nics`): ``auto`` is one NIC on the project's default network, ``none`` no
NIC; a network's VPC (the ``addresses`` key) is the VPC the project's servers already use it in, else
the project's default VPC. A ``port`` must be a free port; ecsd keeps no port apart from the NIC of a
live server, so a port is either in use (Ecs.0010) or unknown (Ecs.0014).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError, invalid
from ecsd.store.schema import servers

CHECKED_UP_TO = 2000      # live servers of a project whose addresses a create reads (~3 ms on SQLite)
ATTEMPTS = 64             # candidate addresses tried per NIC before Ecs.0012
_NAMESPACE = uuid.UUID("2d8c6a4e-5b1f-5c7a-8e3d-9f0a1b2c3d4e")
_ADDR = re.compile(r'"addr":"([^"]*)"')


# --- the ports a create makes ---------------------------------------------------------------------------

def _nic_bytes(server_id: str, index: int | str) -> bytes:
    """16 bytes the NIC's port id and MAC come from. The first NIC keeps the derivation every server
    had before NICs had ports of their own (bench/seed.py writes the same); the others are hashed.
    ``index``: the NIC's place in the create, or a text key for a NIC added later ("{job id}/{n}")."""
    if index == 0:
        return uuid.UUID(server_id).bytes
    return hashlib.sha256(f"{server_id}/nic/{index}".encode()).digest()[:16]


def _candidate_ip(server_id: str, index: int | str, attempt: int) -> str:
    if attempt == 0:
        raw = _nic_bytes(server_id, index)
    else:
        raw = hashlib.sha256(f"{server_id}/ip/{index}/{attempt}".encode()).digest()
    return f"192.168.{raw[0]}.{2 + raw[1] % 252}"


def make_nic(server_id: str, index: int | str, subnet: str, fixed: str | None, taken: set[str]) -> dict[str, Any]:
    """The ``addresses`` entry of a server's NIC number ``index``: its own port id and MAC (a function
    of the server id and the index) and the ``fixed`` IP, or the first candidate not in ``taken``.
    The address chosen is added to ``taken``. No free candidate: 400 Ecs.0012."""
    raw = _nic_bytes(server_id, index)
    addr = fixed
    if addr is None:
        for attempt in range(ATTEMPTS):
            candidate = _candidate_ip(server_id, index, attempt)
            if candidate not in taken:
                addr = candidate
                break
        else:
            raise EcsError("Ecs.0012", f"no free automatic address found for subnet {subnet}")
    taken.add(addr)
    return {"version": "4", "addr": addr, "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:" + ":".join(f"{b:02x}" for b in raw[2:5]),
            "OS-EXT-IPS:port_id": str(uuid.UUID(bytes=bytes(reversed(raw)), version=4)), "subnet_id": subnet}


def driver_nic(entry: dict[str, Any]) -> dict[str, Any]:
    """What a job's parameters keep of a NIC for the driver: port, MAC, fixed IP, subnet."""
    return {"port": entry["OS-EXT-IPS:port_id"], "mac": entry["OS-EXT-IPS-MAC:mac_addr"], "addr": entry["addr"],
            "subnet": entry.get("subnet_id")}


def driver_network(project_id: str, subnet: str | None) -> str | None:
    """The network a NIC is on, as the driver keys it: the project's subnet (another project's subnet of
    the same id is another network: drivers/local/network.py isolates them)."""
    return f"{project_id}/{subnet}" if subnet else None


def taken_addresses(conn: Connection, project_id: str) -> set[str]:
    """The IP addresses the project's live servers use, when it has at most CHECKED_UP_TO of them (one
    read of their ``addresses``); an empty set for a larger project (the check would cost a scan of
    every server per create: its automatic addresses are then unique only within one create)."""
    if srv.live_count(conn, project_id) > CHECKED_UP_TO:
        return set()
    rows = conn.execute(select(servers.c.addresses).where(and_(servers.c.project_id == project_id,
                                                               servers.c.deleted.is_(False))))
    used: set[str] = set()
    for (text,) in rows:
        used.update(_ADDR.findall(text))
    return used


def address_owner(conn: Connection, project_id: str, ip: str) -> str | None:
    """The live server of the project that has ``ip`` among its addresses (fixed or virtual), or None."""
    found = _server_mentioning(conn, project_id, f'"addr":"{ip}"')
    return None if found is None else found["id"]


def server_vpc(server: dict[str, Any]) -> str:
    """The VPC (``addresses`` key) a server's NICs are in: that of its NICs, else the one it was created in."""
    return next(iter(server["addresses"] or {}), None) or (server["metadata"] or {}).get("vpc_id") \
        or default_vpc_id(server["project_id"])


def fixed_nics(server: dict[str, Any]) -> list[dict[str, Any]]:
    """The server's NICs (their fixed ``addresses`` entries), the primary NIC first."""
    return [a for items in (server["addresses"] or {}).values() for a in items
            if a.get("OS-EXT-IPS:type", "fixed") == "fixed"]


# --- the networks of a Nova create ------------------------------------------------------------------------

AUTO = "auto"
NONE = "none"


@dataclass(frozen=True)
class NovaNetwork:
    """One entry of a Nova create's ``networks`` (shape checked by the HTTP layer)."""

    uuid: str | None = None
    port: str | None = None
    fixed_ip: str | None = None


def default_vpc_id(project_id: str) -> str:
    """The project's default VPC: where the networks of a Nova create go unless the project's servers
    already use them in another VPC (the same in every process and database)."""
    return str(uuid.uuid5(_NAMESPACE, f"{project_id}/vpc"))


def default_network_id(project_id: str) -> str:
    """The network a Nova create with ``networks: "auto"`` gets its NIC on."""
    return str(uuid.uuid5(_NAMESPACE, f"{project_id}/network"))


NETWORKS_FROM_NEWEST = 2000


def project_networks(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    """``GET /v2.1/{project_id}/os-networks`` (querying_networks.rst): the project's default network
    and the networks its servers have NICs on (those of its newest :data:`NETWORKS_FROM_NEWEST`
    servers: ecsd has no VPC service, so a network is known by the servers on it). Every address
    field is null, as the reference says."""
    found = {default_network_id(project_id): "default"}
    rows = conn.execute(select(servers.c.addresses).where(and_(
        servers.c.project_id == project_id, servers.c.deleted.is_(False)))
        .order_by(servers.c.created_at.desc()).limit(NETWORKS_FROM_NEWEST))
    for (addresses,) in rows:
        for items in orjson.loads(addresses or "{}").values():
            for a in items:
                subnet = a.get("subnet_id")
                if subnet and subnet not in found:
                    found[subnet] = "network-" + subnet[:8]
    nulls = dict.fromkeys(("broadcast", "cidr", "cidr_v6", "dns1", "dns2", "gateway", "gateway_v6", "netmask",
                           "netmask_v6", "bridge"))
    return [{"id": net, "label": label, **nulls} for net, label in found.items()]


def _server_mentioning(conn: Connection, project_id: str, fragment: str) -> dict[str, Any] | None:
    row = conn.execute(select(servers.c.id, servers.c.addresses).where(and_(
        servers.c.project_id == project_id, servers.c.deleted.is_(False),
        servers.c.addresses.like(f"%{fragment}%"))).limit(1)).first()
    return None if row is None else {"id": row.id, "addresses": orjson.loads(row.addresses)}


def vpc_of(conn: Connection, project_id: str, network: str) -> str | None:
    """The VPC a live server of the project has this network in, or None."""
    found = _server_mentioning(conn, project_id, f'"subnet_id":"{network}"')
    if found is None:
        return None
    for vpc, items in found["addresses"].items():
        if any(a.get("subnet_id") == network for a in items):
            return vpc
    return None


def server_with_port(conn: Connection, project_id: str, port: str) -> str | None:
    """The live server of the project one of whose NICs is this port, or None."""
    found = _server_mentioning(conn, project_id, f'"OS-EXT-IPS:port_id":"{port}"')
    return None if found is None else found["id"]


def refuse_port(conn: Connection, project_id: str, port: str, field: str) -> None:
    """A request names an existing port for a NIC. ecsd keeps no port apart from the NIC of a live
    server: malformed 400 Ecs.0005, in use 400 Ecs.0010, else 400 Ecs.0014 (always raises)."""
    if not clock.is_uuid(port):
        raise invalid(f"{field} must be a UUID")
    owner = server_with_port(conn, project_id, port)
    if owner is not None:
        raise EcsError("Ecs.0010", f"port {port} is in use by ECS {owner}")
    raise EcsError("Ecs.0014", f"port {port} does not exist (ecsd makes ports only with the ECSs "
                               "they belong to: give the network's id instead)")


def nova_nics(conn: Connection, project_id: str, networks: str | tuple[NovaNetwork, ...]
              ) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    """(VPC id, ``nics`` as ``ServerSpec`` takes them) for a Nova create's ``networks``.

    A ``port``: in use by a live server, 400 Ecs.0010; else 400 Ecs.0014 (ecsd has no free ports).
    Networks the project uses in two VPCs: 400 Ecs.0014.
    """
    if networks == NONE:
        return default_vpc_id(project_id), ()
    if networks == AUTO:
        networks = (NovaNetwork(uuid=default_network_id(project_id)),)
    if isinstance(networks, str):
        raise invalid('networks must be "auto", "none" or a list of networks')
    nics: list[tuple[str, str | None]] = []
    for n, net in enumerate(networks):
        if net.port is not None:      # "port" has the highest priority (creating_an_ecs.rst, constraint 3)
            refuse_port(conn, project_id, net.port, f"networks.{n}.port")
        if net.uuid is None or not clock.is_uuid(net.uuid):
            raise invalid(f"networks.{n}.uuid must be a network UUID")
        nics.append((net.uuid, net.fixed_ip))
    vpcs: dict[str, str] = {}
    for network in dict.fromkeys(subnet for subnet, _ip in nics):
        vpc = vpc_of(conn, project_id, network)
        if vpc is not None:
            vpcs[network] = vpc
    if len(set(vpcs.values())) > 1:
        raise EcsError("Ecs.0014", "the networks belong to different VPCs: "
                       + ", ".join(f"{net} in {vpc}" for net, vpc in vpcs.items()))
    vpc = next(iter(vpcs.values()), default_vpc_id(project_id))
    return vpc, tuple(nics)


# --- the NIC queries ---------------------------------------------------------------------------------------

def _attachment(address: dict[str, Any]) -> dict[str, Any]:
    return {"port_state": "ACTIVE", "net_id": address.get("subnet_id"), "port_id": address["OS-EXT-IPS:port_id"],
            "mac_addr": address["OS-EXT-IPS-MAC:mac_addr"],
            "fixed_ips": [{"subnet_id": address.get("subnet_id"), "ip_address": address["addr"]}]}


def attachment(address: dict[str, Any], port_state: str = "ACTIVE") -> dict[str, Any]:
    """The ``interfaceAttachment`` of a NIC (its fixed ``addresses`` entry)."""
    return {**_attachment(address), "port_state": port_state}


def interfaces(conn: Connection, project_id: str, server_id: str) -> list[dict[str, Any]]:
    server = srv.load(conn, project_id, server_id)                         # 404 Ecs.0114
    return [_attachment(a) for a in fixed_nics(server)]


def interface(conn: Connection, project_id: str, server_id: str, port_id: str) -> dict[str, Any]:
    for nic in interfaces(conn, project_id, server_id):
        if nic["port_id"] == port_id:
            return nic
    raise EcsError("Common.0404", f"server {server_id} has no NIC with port {port_id}")
