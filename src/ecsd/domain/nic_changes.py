"""Adding and deleting a server's NICs, and binding a virtual IP address to a NIC (issue 13).

    POST   /v1/{project_id}/cloudservers/{server_id}/nics               job addNics (adding_nics_to_an_ecs_in_a_batch.rst)
    POST   /v1/{project_id}/cloudservers/{server_id}/nics/delete        job deleteNics
                                                                        (deleting_nics_from_an_ecs_in_a_batch.rst)
    PUT    /v1/{project_id}/cloudservers/nics/{nic_id}                  binding_a_virtual_ip_address_to_an_ecs_nic.rst,
                                                                        unbinding_a_virtual_ip_address_from_an_ecs_nic.rst
    POST   /v2.1/{project_id}/servers/{server_id}/os-interface           job addNics, one NIC (adding_a_nic_to_an_ecs.rst)
    DELETE /v2.1/{project_id}/servers/{server_id}/os-interface/{port_id} job deleteNics, one NIC

Two halves, as in domain/changeos.py:

1. ``accept_add`` / ``accept_delete`` run in the request's transaction: they check the request, choose
   every new NIC's port id, MAC and IP (domain/nics.py ``make_nic``, keyed by the job id), take the
   server (``claim`` with no task_state: its status stays ACTIVE or SHUTOFF) and submit the job with
   those NICs in its parameters, so that a resumed step names the same NICs.
2. One step each: the act plugs (unplugs) the NICs through the driver (idempotent), the record
   rewrites ``servers.addresses`` and releases the server, fenced on the job. A failure leaves the
   server in its state with the NICs it had: ``cleanup`` unplugs what an add plugged, or plugs back
   what a delete unplugged, and ``on_fail`` only releases the server.

A virtual IP (synchronous) is an ``addresses`` entry of type ``virtual`` with the port id and MAC of
the NIC it is bound to (domain/nics.py); unbinding removes the NIC's virtual IPs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ecsd.domain import actions, clock, nics
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain.changeos import driver_call
from ecsd.domain.errors import EcsError, invalid
from ecsd.domain.identity import Identity
from ecsd.domain.lifecycle import MAX_NICS
from ecsd.engine.engine import JobContext, JobType, Step, submit
from ecsd.store.schema import servers

PORT = "OS-EXT-IPS:port_id"
MAC = "OS-EXT-IPS-MAC:mac_addr"
TYPE = "OS-EXT-IPS:type"
VIRTUAL = "virtual"


@dataclass(frozen=True)
class NewNic:
    """One NIC to add (shapes already checked by the HTTP layer)."""

    subnet_id: str | None
    ip_address: str | None = None
    port_id: str | None = None           # an existing port: ecsd has none free (Ecs.0010 / Ecs.0014)


@dataclass(frozen=True)
class VirtualIp:
    """The ``nic`` of a virtual-IP binding; both empty: unbind."""

    subnet_id: str
    ip_address: str
    reverse_binding: bool | None = None


def _ipv4(ip: str, field: str) -> str:
    try:
        return str(ipaddress.IPv4Address(ip))
    except ValueError:
        raise invalid(f"{field} {ip!r} is not an IPv4 address") from None


def _loaded(conn: Connection, ident: Identity, server_id: str) -> dict[str, Any]:
    server = srv.load(conn, ident.project_id, server_id)                    # 404 Ecs.0114
    if server["locked"]:
        raise EcsError("Ecs.0605")
    return server


def _take(conn: Connection, ident: Identity, server: dict[str, Any], job_type: str, params: dict[str, Any],
          job_id: str) -> str:
    srv.check_gate(server, job_type)                                        # Ecs.0100
    srv.claim(conn, server, None, job_id)      # no task_state: the status stays ACTIVE or SHUTOFF
    actions.record_job(conn, ident, server["id"], job_type, job_id)
    submit(conn, job_id=job_id, project_id=ident.project_id, job_type=job_type, server_id=server["id"],
           params=params)
    return job_id


# --- 1. acceptance ------------------------------------------------------------------------------------

def accept_add(conn: Connection, ident: Identity, server_id: str, new: tuple[NewNic, ...]
               ) -> tuple[str, list[dict[str, Any]]]:
    """Validate, choose the NICs, gate, claim and submit an addNics job. Returns (job id, the new
    NICs' ``addresses`` entries).

    An existing port: Ecs.0010 / Ecs.0014. A malformed IP: Ecs.0005; an IP in use (also twice in the
    request): Ecs.0010. More than MAX_NICS NICs in all: Ecs.0050. A network the project's servers use in
    another VPC: Ecs.0014. Locked: Ecs.0605; not ACTIVE/SHUTOFF or busy: Ecs.0100.
    """
    server = _loaded(conn, ident, server_id)
    if not new:
        raise invalid("nics must name at least one NIC")
    for n, nic in enumerate(new):
        if nic.port_id is not None:
            nics.refuse_port(conn, ident.project_id, nic.port_id, f"nics.{n}.port_id")
    ips = [_ipv4(nic.ip_address, f"nics.{n}.ip_address") if nic.ip_address else None for n, nic in enumerate(new)]
    fixed = [ip for ip in ips if ip is not None]
    if len(set(fixed)) != len(fixed):
        raise EcsError("Ecs.0010", "the same ip_address is given for two NICs")
    for ip in fixed:
        owner = nics.address_owner(conn, ident.project_id, ip)
        if owner is not None:
            raise EcsError("Ecs.0010", f"ip_address {ip} is used by ECS {owner}")
    present = len(nics.fixed_nics(server))
    if present + len(new) > MAX_NICS:
        raise EcsError("Ecs.0050", f"the ECS has {present} NICs: at most {MAX_NICS} can be attached")
    vpc = nics.server_vpc(server)
    for subnet in dict.fromkeys(nic.subnet_id for nic in new):
        other = nics.vpc_of(conn, ident.project_id, subnet)
        if other not in (None, vpc):
            raise EcsError("Ecs.0014", f"network {subnet} is in VPC {other}, the ECS in VPC {vpc}")

    srv.check_gate(server, st.ADD_NICS)       # before choosing addresses: a busy server costs no scan
    taken = set(fixed) | (nics.taken_addresses(conn, ident.project_id) if len(fixed) < len(new) else set())
    job_id = clock.new_hex_id()
    entries = [nics.make_nic(server["id"], f"{job_id}/{n}", nic.subnet_id, ip, taken)
               for n, (nic, ip) in enumerate(zip(new, ips, strict=True))]
    _take(conn, ident, server, st.ADD_NICS, {"vpc": vpc, "nics": entries}, job_id)
    return job_id, entries


def accept_delete(conn: Connection, ident: Identity, server_id: str, port_ids: tuple[str, ...],
                  nova: bool = False) -> str:
    """Validate, gate, claim and submit a deleteNics job. Returns the job id.

    A port that is not a NIC of the server: 400 Ecs.0085 (Nova: 404 Common.0404). The primary NIC
    (the first): 403 Ecs.0003. Locked: Ecs.0605; not ACTIVE/SHUTOFF or busy: Ecs.0100.
    """
    server = _loaded(conn, ident, server_id)
    if not port_ids:
        raise invalid("nics must name at least one NIC")
    if len(set(port_ids)) != len(port_ids):
        raise invalid("the same NIC is named twice")
    present = nics.fixed_nics(server)
    by_port = {a[PORT]: a for a in present}
    for port in port_ids:
        if port not in by_port:
            raise EcsError("Common.0404" if nova else "Ecs.0085", f"ECS {server['id']} has no NIC with port {port}")
        if port == present[0][PORT]:
            raise EcsError("Ecs.0003", f"port {port} is the primary NIC of ECS {server['id']}: it cannot be deleted")
    job_id = clock.new_hex_id()
    return _take(conn, ident, server, st.DELETE_NICS,
                 {"nics": [nics.driver_nic(by_port[p]) for p in port_ids]}, job_id)


def nova_network(conn: Connection, ident: Identity, server_id: str) -> str:
    """The network a Nova attach with neither ``net_id`` nor ``port_id`` puts the NIC on: that of the
    server's primary NIC, else the project's default network."""
    present = nics.fixed_nics(srv.load(conn, ident.project_id, server_id))
    return (present[0].get("subnet_id") if present else None) or nics.default_network_id(ident.project_id)


def accept_nova_attach(conn: Connection, ident: Identity, server_id: str, nic: NewNic) -> dict[str, Any]:
    """``POST os-interface``: one NIC added by an addNics job; the attachment as Nova answers it (the
    port DOWN until the job has plugged it: os-interface then lists it ACTIVE)."""
    if nic.subnet_id is None and nic.port_id is None:
        nic = NewNic(nova_network(conn, ident, server_id), nic.ip_address)
    _job_id, (entry,) = accept_add(conn, ident, server_id, (nic,))
    return nics.attachment(entry, "DOWN")


# --- 2. the jobs' steps ---------------------------------------------------------------------------------

async def plug_act(ctx: JobContext) -> None:
    for nic in ctx.params["nics"]:
        await driver_call(ctx.driver.plug_nic(ctx.server_id, nic[PORT], nic[MAC], nic["addr"],
                                              nics.driver_network(ctx.project_id, nic.get("subnet_id"))), "Ecs.0217")


def plug_record(conn: Connection, ctx: JobContext) -> None:
    addresses = srv.load_by_id(conn, ctx.server_id)["addresses"] or {}
    present = {a[PORT] for items in addresses.values() for a in items}
    addresses.setdefault(ctx.params["vpc"], []).extend(n for n in ctx.params["nics"] if n[PORT] not in present)
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, addresses=addresses)


async def unplug_added(ctx: JobContext) -> None:
    for nic in ctx.params["nics"]:
        await ctx.driver.unplug_nic(ctx.server_id, nic[PORT])


async def unplug_act(ctx: JobContext) -> None:
    for nic in ctx.params["nics"]:
        await driver_call(ctx.driver.unplug_nic(ctx.server_id, nic["port"]), "Ecs.0507")


def unplug_record(conn: Connection, ctx: JobContext) -> None:
    """Drop the NICs and the virtual IPs bound to them."""
    gone = {nic["port"] for nic in ctx.params["nics"]}
    addresses = srv.load_by_id(conn, ctx.server_id)["addresses"] or {}
    kept = {vpc: [a for a in items if a.get(PORT) not in gone] for vpc, items in addresses.items()}
    srv.finish_owned(conn, ctx.server_id, ctx.job_id, addresses={vpc: items for vpc, items in kept.items() if items})


async def plug_back(ctx: JobContext) -> None:
    for nic in ctx.params["nics"]:
        await ctx.driver.plug_nic(ctx.server_id, nic["port"], nic["mac"], nic.get("addr"),
                                  nics.driver_network(ctx.project_id, nic.get("subnet")))


def release(conn: Connection, ctx: JobContext, code: str, reason: str) -> None:
    """A failed NIC change: the server keeps its state and the NICs it had (no ERROR, no fault)."""
    srv.finish_owned(conn, ctx.server_id, ctx.job_id)


JOB_TYPES = [
    JobType(st.ADD_NICS, (Step("plug_nics", plug_act, plug_record, "Ecs.0217"),), on_fail=release,
            cleanup=unplug_added),
    JobType(st.DELETE_NICS, (Step("unplug_nics", unplug_act, unplug_record, "Ecs.0507"),), on_fail=release,
            cleanup=plug_back),
]


# --- virtual IP addresses -----------------------------------------------------------------------------

def update_virtual_ip(conn: Connection, project_id: str, nic_id: str, change: VirtualIp) -> str:
    """Bind (``subnet_id`` and ``ip_address`` given) or unbind (both empty) a virtual IP on a NIC of a
    server of the project. Returns the NIC's port id.

    Unknown NIC: 404 Common.0404. One of the two empty: Ecs.0005. A network other than the NIC's:
    Ecs.0014. An IP another NIC has as its own, or a virtual IP of another network: Ecs.0010. Server
    locked Ecs.0605; not ACTIVE/SHUTOFF or busy Ecs.0100. Binding an IP the NIC already has: no change.
    """
    owner = nics.server_with_port(conn, project_id, nic_id) if clock.is_uuid(nic_id) else None
    if owner is None:
        raise EcsError("Common.0404", f"no ECS of the project has a NIC with port {nic_id}")
    row = srv.lock_for_change(conn, project_id, owner, "a NIC's virtual IP", servers.c.addresses)
    addresses: dict[str, list[dict[str, Any]]] = orjson.loads(row.addresses or "{}")
    nic = next((a for items in addresses.values() for a in items
                if a.get(PORT) == nic_id and a.get(TYPE, "fixed") == "fixed"), None)
    if nic is None:
        raise EcsError("Common.0404", f"no ECS of the project has a NIC with port {nic_id}")
    if not change.subnet_id and not change.ip_address:
        addresses = {vpc: [a for a in items if not (a.get(PORT) == nic_id and a.get(TYPE) == VIRTUAL)]
                     for vpc, items in addresses.items()}
    elif not change.subnet_id or not change.ip_address:
        raise invalid("nic.subnet_id and nic.ip_address are both given to bind a virtual IP, both empty to unbind")
    else:
        ip = _ipv4(change.ip_address, "nic.ip_address")
        if change.subnet_id != nic.get("subnet_id"):
            raise EcsError("Ecs.0014", f"the NIC is on network {nic.get('subnet_id')}, not {change.subnet_id}")
        _check_virtual_ip(conn, project_id, ip, change.subnet_id)
        if not any(a.get(PORT) == nic_id and a["addr"] == ip for items in addresses.values() for a in items):
            vpc = next(v for v, items in addresses.items() if nic in items)
            addresses[vpc].append({"version": "4", "addr": ip, TYPE: VIRTUAL, MAC: nic[MAC], PORT: nic_id,
                                   "subnet_id": change.subnet_id})
    conn.execute(servers.update().where(servers.c.id == owner).values(
        addresses=orjson.dumps(addresses).decode(), updated_at=clock.now()))
    return nic_id


def _check_virtual_ip(conn: Connection, project_id: str, ip: str, subnet: str) -> None:
    """A virtual IP may be shared by NICs of several servers on one network, but not be a NIC's own."""
    holder = nics.address_owner(conn, project_id, ip)
    if holder is None:
        return
    for items in srv.load(conn, project_id, holder)["addresses"].values():
        for a in items:
            if a["addr"] == ip and (a.get(TYPE, "fixed") != VIRTUAL or a.get("subnet_id") != subnet):
                raise EcsError("Ecs.0010", f"{ip} is in use by ECS {holder}")
