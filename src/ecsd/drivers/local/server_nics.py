"""A local server's NICs: what the driver records of them, the host networks they need at a start
(network.py), and what "came up on its network" means for the boot check.

:class:`ServerNics` is a part of :class:`~ecsd.drivers.local.driver.LocalDriver` (a mixin: it uses the
driver's server records, ``_load`` / ``_save``, its hypervisor and its :class:`network.Networks`).
Each NIC is kept in the server's ``server.json`` as ``{port id: {mac, ip, network}}``, in the order it
was plugged (the primary first); everything on the host (bridges, TAP devices, dnsmasq leases, the
SSH forward of user-mode networking) is derived from those records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import hotplug, qemu
from ecsd.drivers.local import network as net
from ecsd.drivers.local.paths import check_id, qemu_escape
from ecsd.drivers.local.qemu import NIC_BUS

log = logging.getLogger("ecsd.driver.local")


def _option_string(options: dict[str, Any], first: str) -> str:
    """A QMP argument object as QEMU's ``key=value,...`` command-line form (``first``'s value leads)."""
    parts = [str(options[first])]
    for key, value in options.items():
        if key == first:
            continue
        if isinstance(value, list):          # hostfwd: a list of {"str": ...}
            parts += [f"{key}={qemu_escape(item['str'])}" for item in value]
        elif isinstance(value, bool):
            parts.append(f"{key}={'on' if value else 'off'}")
        else:
            parts.append(f"{key}={qemu_escape(str(value))}")
    return ",".join(parts)


class ServerNics:
    """The NIC half of LocalDriver (see the module's docstring)."""

    net_mode: str
    networks: net.Networks
    layout: Any
    hv: Any
    _load: Callable[[str], dict[str, Any]]
    _load_quietly: Callable[[str], dict[str, Any]]
    _save: Callable[[str, dict[str, Any]], None]
    _server_ids: Callable[[], list[str]]
    running: Callable[[], list[str]]

    async def plug_nic(self, server_id: str, port_id: str, mac: str, ip: str | None = None,
                       network: str | None = None) -> None:
        """Record the NIC (MAC, fixed IP, network: the project and subnet, network.py) with a PCI slot of
        its own; its network learns the reserved lease; a running machine gets it hot-plugged (QMP
        ``netdev_add`` + ``device_add`` on the NIC bus). Idempotent: a repeat finishes an interrupted
        hot-plug or does nothing."""
        check_id(server_id, "server id")
        check_id(port_id, "port id")
        net.check_nic(mac, ip, network)
        state = self._load(server_id)
        nics = state.setdefault("nics", {})
        known = nics.get(port_id)
        value = {"mac": mac, "ip": ip, "network": network}
        if not isinstance(known, dict) or {k: known.get(k) for k in value} != value:
            nics.pop(port_id, None)
            nics[port_id] = {**value, "slot": net.free_slot(state)}
            if self.net_mode == "user" and ip and not state.get("ssh_forward"):
                state["ssh_forward"] = net.free_port()      # kept for the server's life (its metadata shows it)
            self._save(server_id, state)
        if self.hv.pid(server_id) is not None and self.net_mode != "none":
            nic = next(n for n in net.nics_of(state) if n.port == port_id)
            if nic.ip and nic.network:
                await self._hotplug(server_id, state, nic)

    async def _hotplug(self, server_id: str, state: dict[str, Any], nic: net.Nic) -> None:
        sock = self.layout.qmp_socket(server_id)
        present = await hotplug.devices(sock)
        if NIC_BUS not in present:
            log.warning("local driver: server %s runs without a NIC bus (started by an older ecsd): NIC %s "
                        "joins it at its next start", server_id, nic.port)
            return
        if nic.device_id in present:
            return
        netdev, device = await self._nic_parts(server_id, state, nic, {}, primary=False)
        try:
            await qemu.qmp(sock, "netdev_add", netdev, hotplug.QMP_TIMEOUT)
        except DriverError as exc:
            if "Duplicate" not in str(exc) and "already" not in str(exc):
                raise
        await qemu.qmp(sock, "device_add", device, hotplug.QMP_TIMEOUT)

    async def unplug_nic(self, server_id: str, port_id: str) -> None:
        """Take the NIC out of a running machine (``device_del``, then wait until the guest let it go,
        ``netdev_del``), forget it, then remove its TAP device and lease. Idempotent."""
        check_id(server_id, "server id")
        check_id(port_id, "port id")
        state = self._load(server_id)
        gone = [n for n in net.nics_of(state) if n.port == port_id]
        if gone and self.hv.pid(server_id) is not None:
            await self._unplug_running(server_id, gone[0])
        if port_id in state.get("nics", {}):
            del state["nics"][port_id]
            self._save(server_id, state)
        for nic in gone:
            await self._drop_nic(nic)

    async def _unplug_running(self, server_id: str, nic: net.Nic, timeout: float = hotplug.UNPLUG_TIMEOUT) -> None:
        sock = self.layout.qmp_socket(server_id)
        loop = asyncio.get_running_loop()
        if nic.device_id in await hotplug.devices(sock):
            try:
                await qemu.qmp(sock, "device_del", {"id": nic.device_id}, hotplug.QMP_TIMEOUT)
            except DriverError as exc:
                if "already in the process of unplug" not in str(exc) and "not found" not in str(exc):
                    raise
            until = loop.time() + timeout
            while nic.device_id in await hotplug.devices(sock):
                if loop.time() >= until:
                    raise DriverError(f"the guest did not release NIC {nic.port} within {timeout:.0f} s "
                                      "(does it support ACPI PCI hot-plug?)")
                await asyncio.sleep(0.1)
        deadline = loop.time() + 10.0
        while True:
            try:
                await qemu.qmp(sock, "netdev_del", {"id": nic.netdev_id}, hotplug.QMP_TIMEOUT)
                return
            except DriverError as exc:
                if "not found" in str(exc):
                    return
                if loop.time() >= deadline:        # still held by the device being finalized
                    raise
                await asyncio.sleep(0.1)

    async def _drop_nic(self, nic: net.Nic) -> None:
        if self.net_mode != "bridge":
            return
        await self.networks.unplug_tap(nic)
        if nic.network:
            await self._refresh_network(nic.network)

    def _nics_on(self, network: str) -> list[net.Nic]:
        """Every recorded NIC of every server on ``network``."""
        return [n for sid in self._server_ids() for n in net.nics_of(self._load_quietly(sid)) if n.network == network]

    async def _refresh_network(self, network: str) -> None:
        """The network's reserved leases as the records say; the network goes with its last NIC."""
        hosts = self._nics_on(network)
        if not hosts:
            await self.networks.remove(network)
        elif network in self.networks.known():
            await self.networks.ensure(network, hosts)

    async def _nic_parts(self, server_id: str, state: dict[str, Any], nic: net.Nic, facts: dict[str, Any],
                         primary: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The NIC's QEMU backend (``-netdev`` / ``netdev_add``) and device (``-device`` / ``device_add``),
        its host side made first (bridge mode: the network and the TAP device); ``facts`` gets what the
        boot check needs (where the network's dnsmasq log stood, the forwarded SSH port)."""
        assert nic.ip and nic.network and nic.slot
        device = {"driver": "virtio-net-pci", "id": nic.device_id, "netdev": nic.netdev_id, "mac": nic.mac,
                  "bus": NIC_BUS, "addr": f"{nic.slot:#x}"}
        if self.net_mode == "bridge":
            self.layout.ensure_networks()
            bridge = await self.networks.ensure(nic.network, self._nics_on(nic.network))
            tap = await self.networks.plug_tap(nic, bridge)
            facts.setdefault("net_since", {}).setdefault(nic.network, self.networks.log_size(nic.network))
            return {"type": "tap", "id": nic.netdev_id, "ifname": tap, "script": "no", "downscript": "no"}, device
        netdev: dict[str, Any] = {"type": "user", "id": nic.netdev_id, "net": str(net.RANGE),
                                  "host": str(net.GATEWAY), "dhcpstart": nic.ip, "ipv6": False}
        if primary:
            port = state.get("ssh_forward") or net.free_port()
            if not net.port_free(port):
                log.warning("local driver: port %s of server %s's SSH forward is taken; it moves (its "
                            "metadata ecsd_ssh_forward is then out of date)", port, server_id)
                port = net.free_port()
            facts["ssh_forward"] = port
            netdev["hostfwd"] = [{"str": f"tcp:127.0.0.1:{port}-{nic.ip}:22"}]
        return netdev, device

    async def _nic_args(self, server_id: str, state: dict[str, Any]) -> tuple[list[list[str]] | None, dict[str, Any]]:
        """The ``-netdev``/``-device`` arguments of the server's NICs (None: no NIC bus, networks are off)
        and what the boot check needs: :meth:`_nic_parts`."""
        facts: dict[str, Any] = {"net_since": {}}
        if self.net_mode == "none":
            return None, facts
        args: list[list[str]] = []
        for i, nic in enumerate(n for n in net.nics_of(state) if n.ip and n.network):
            netdev, device = await self._nic_parts(server_id, state, nic, facts, primary=i == 0)
            args.append(["-netdev", _option_string(netdev, "type"), "-device", _option_string(device, "driver")])
        return args, facts

    def forwarded_ssh(self, server_id: str) -> str | None:
        """``127.0.0.1:<port>`` where the server's SSH is forwarded (user-mode networking), else None."""
        port = self._load_quietly(check_id(server_id, "server id")).get("ssh_forward")
        return f"127.0.0.1:{port}" if self.net_mode == "user" and port else None

    def _ready_check(self, state: dict[str, Any]) -> Callable[[], Awaitable[str | None]] | None:
        """What "came up on its network" means for this boot (None: the console check of qemu.py): the
        primary NIC's reserved lease taken (bridge), and when the image has sshd, its port answering."""
        nics = [n for n in net.nics_of(state) if n.ip and n.network]
        if not nics or self.net_mode == "none":
            return None
        primary, sshd = nics[0], bool(state.get("sshd"))
        if self.net_mode == "bridge":
            since = int((state.get("net_since") or {}).get(primary.network, 0))

            async def ready() -> str | None:
                if self.networks.acked(primary.network or "", primary.mac, since) is None:
                    return f"DHCP lease of {primary.ip} taken by {primary.mac}"
                if sshd and not await net.ssh_banner(primary.ip or "", 22, 2.0):
                    return f"SSH answer from {primary.ip}:22"
                return None
            return ready
        port = state.get("ssh_forward")
        if not sshd or not port:
            return None

        async def forwarded() -> str | None:
            if await net.ssh_banner("127.0.0.1", int(port), 2.0):
                return None
            return f"SSH answer on 127.0.0.1:{port} (forwarded to {primary.ip}:22)"
        return forwarded

    async def _repair_networks(self) -> None:
        """At start-up: remove the networks no server record names any more (a crash between a destroy's
        steps), and rebuild those of the running servers as their records say (a dnsmasq that died, a
        bridge somebody deleted); those of stopped servers come back at their next start."""
        if self.net_mode != "bridge":
            return
        named = {n.network for sid in self._server_ids() for n in net.nics_of(self._load_quietly(sid))}
        for network in self.networks.known():
            if network not in named:
                await self.networks.remove(network)
        wanted = {n.network for sid in self.running() for n in net.nics_of(self._load_quietly(sid)) if n.ip and n.network}
        for network in sorted(w for w in wanted if w):
            try:
                self.layout.ensure_networks()
                await self.networks.ensure(network, self._nics_on(network))
            except DriverError as exc:
                log.warning("local driver: cannot rebuild network %s: %s", network, exc)

