"""The NICs of a server, as the NIC queries show them (querying_nics_of_an_ecs.rst, Nova os-interface).

    GET /v1/{project_id}/cloudservers/{server_id}/os-interface          {"interfaceAttachments": [...]}
    GET /v2.1/{project_id}/servers/{server_id}/os-interface             the same
    GET /v2.1/{project_id}/servers/{server_id}/os-interface/{port_id}   {"interfaceAttachment": {...}}

ecsd has no VPC service: a server's NICs are the fixed addresses it was created with (one per entry
of ``nics``), each with the port id and MAC address the create chose. The network given at create
(``nics[].subnet_id``, which on the cloud is the network's id) stands for both ``net_id`` and the
fixed IP's ``subnet_id``. Adding and removing NICs is not served.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError


def _attachment(address: dict[str, Any]) -> dict[str, Any]:
    return {"port_state": "ACTIVE", "net_id": address.get("subnet_id"), "port_id": address["OS-EXT-IPS:port_id"],
            "mac_addr": address["OS-EXT-IPS-MAC:mac_addr"],
            "fixed_ips": [{"subnet_id": address.get("subnet_id"), "ip_address": address["addr"]}]}


def interfaces(conn: Connection, project_id: str, server_id: str) -> list[dict[str, Any]]:
    server = srv.load(conn, project_id, server_id)                         # 404 Ecs.0114
    return [_attachment(a) for items in server["addresses"].values() for a in items
            if a.get("OS-EXT-IPS:type", "fixed") == "fixed"]


def interface(conn: Connection, project_id: str, server_id: str, port_id: str) -> dict[str, Any]:
    for nic in interfaces(conn, project_id, server_id):
        if nic["port_id"] == port_id:
            return nic
    raise EcsError("Common.0404", f"server {server_id} has no NIC with port {port_id}")
