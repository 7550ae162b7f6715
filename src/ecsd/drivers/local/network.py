"""Guest networks of the local driver: a host network per (project, subnet), the server's NICs on it,
and its fixed IP handed out by DHCP, as on a cloud.

Two modes (``ECSD_LOCAL_NETWORK``: ``auto``, ``bridge``, ``user``, ``none``):

**bridge** (needs root, ``/dev/net/tun``, ``ip`` from iproute2 and ``dnsmasq``; ``auto`` picks it when
they are there):

* one Linux bridge per network, ``ecsdb<10 hex digits of sha256(project/subnet)>``; the network of
  another project is another bridge, even for the same subnet id;
* on the bridge the host side's address, :data:`GATEWAY` with the range's prefix length and
  ``noprefixroute`` (so that many bridges can carry it without a route of the whole range each), and
  one host route per server address (``/32 dev <bridge>``): the host reaches every server's fixed IP,
  so ``ssh root@<fixed IP>`` works from the host;
* isolation: an ``ip rule`` per bridge (``iif <bridge> blackhole`` after the ``local`` table) drops
  every packet a guest sends that is not for the host itself, so nothing a guest sends is routed to
  another network (or anywhere else), whatever the host's forwarding settings; servers of one network
  talk to each other on the bridge directly;
* one ``dnsmasq`` per bridge (DHCP only, ``--port=0``), daemonized, found again by its pid file: each
  NIC's MAC has a reserved lease of its fixed IP (``--dhcp-hostsfile``, re-read on SIGHUP), and the
  guest's DHCPACK lines in its log tell the driver's boot check that the guest came up on its network;
* one TAP device per NIC, ``ecsdt<10 hex digits of sha256(port id)>``, on the bridge; QEMU opens it
  (``-netdev tap,ifname=...,script=no``) and the guest sees a virtio NIC with the MAC the API reports.

**user** (no privileges needed): QEMU's own user-mode network per NIC, whose DHCP hands out the
NIC's fixed IP (``dhcpstart``), and a forward of a port on 127.0.0.1 to the primary NIC's port 22,
chosen when the NIC is plugged and kept for the server's life (``server.json``; the server's
metadata ``ecsd_ssh_forward`` and ``ecsd server show`` show it). Servers cannot reach each other and
the host reaches them only through the forward.

**none**: servers have no NIC (what the driver did before): the API still shows the addresses.

Everything here is derived from the NICs recorded in each server's ``server.json`` (the driver keeps
them): a network is (re)built when a server on it starts (after a host restart: bridges, TAPs and
dnsmasq are gone and come back at the next start) and removed when its last server is destroyed.
Addresses: automatic addresses are in :data:`RANGE` (domain/nics.py); a fixed IP outside it, or the
host side's own address, cannot be handed out and the NIC is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
from dataclasses import dataclass

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import proc
from ecsd.drivers.local.helpers import same_process, start_time

log = logging.getLogger("ecsd.driver.local")

RANGE = ipaddress.ip_network("192.168.0.0/16")       # where domain/nics.py picks automatic addresses
GATEWAY = ipaddress.ip_address("192.168.0.1")          # the host side of every guest network
RULE_PREF = 32000 - 1                                  # just before the "main" table's rule
MODES = ("auto", "bridge", "user", "none")
_DHCPACK = re.compile(rb"DHCPACK\([^)]*\) (\S+) ([0-9a-f:]{17})")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def bridge_name(network: str) -> str:
    return f"ecsdb{_digest(network)}"


def tap_name(port_id: str) -> str:
    return f"ecsdt{_digest(port_id)}"


def check_nic(mac: str, ip: str | None, network: str | None) -> None:
    """A NIC the driver can put on a network: a MAC, and an IPv4 address of :data:`RANGE` other than the
    host side's (None: a NIC recorded without an address, given no network)."""
    if not _MAC.fullmatch(mac):
        raise DriverError(f"{mac!r} is not a MAC address")
    if ip is None:
        return
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise DriverError(f"{ip!r} is not an IP address") from None
    if addr.version != 4 or addr not in RANGE or addr in (GATEWAY, RANGE.network_address, RANGE.broadcast_address):
        raise DriverError(f"the local driver's networks hand out addresses of {RANGE} other than {GATEWAY} "
                          f"(the host side): {ip} cannot be given to a guest")
    if not network or len(network) > 512:
        raise DriverError("a NIC with an address needs its network")


def privileged() -> str | None:
    """Why bridge mode cannot work here (None: it can)."""
    if os.geteuid() != 0:
        return "ecsd does not run as root"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "/dev/net/tun is missing"
    for tool in ("ip", "dnsmasq"):
        if proc.which(tool) is None:
            return f"{tool} is not installed (Debian packages iproute2, dnsmasq-base)"
    return None


def choose_mode(wanted: str) -> tuple[str, str | None]:
    """(mode, why not bridge) for ``ECSD_LOCAL_NETWORK``."""
    if wanted not in MODES:
        raise SystemExit(f"ECSD_LOCAL_NETWORK must be one of {', '.join(MODES)}")
    if wanted in ("user", "none"):
        return wanted, None
    why = privileged()
    if why is None:
        return "bridge", None
    if wanted == "bridge":
        raise SystemExit(f"ECSD_LOCAL_NETWORK=bridge cannot work here: {why}")
    return "user", why


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def port_free(port: int) -> bool:
    """Whether TCP ``port`` on 127.0.0.1 can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Nic:
    port: str
    mac: str
    ip: str | None
    network: str | None
    slot: int | None = None          # its PCI slot on the machine's NIC bus (qemu.NIC_BUS), 1-31

    @property
    def netdev_id(self) -> str:
        return f"net{_digest(self.port)}"

    @property
    def device_id(self) -> str:
        return f"nic{_digest(self.port)}"


MAX_SLOT = 31


def nics_of(state: dict) -> list[Nic]:
    """The NICs recorded in a server's state, in the order they were plugged (the primary first); a NIC
    recorded without a slot gets the first one free, in that order."""
    out = []
    for port, value in (state.get("nics") or {}).items():
        if isinstance(value, str):                       # recorded before NICs had addresses
            out.append(Nic(port, value, None, None))
        elif isinstance(value, dict):
            slot = value.get("slot")
            out.append(Nic(port, value.get("mac", ""), value.get("ip"), value.get("network"),
                           slot if isinstance(slot, int) and 1 <= slot <= MAX_SLOT else None))
    used = {n.slot for n in out if n.slot}
    free = (s for s in range(1, MAX_SLOT + 1) if s not in used)
    return [n if n.slot else Nic(n.port, n.mac, n.ip, n.network, next(free, None)) for n in out]


def free_slot(state: dict) -> int:
    """The PCI slot a new NIC of this server gets (DriverError when all are taken)."""
    used = {n.slot for n in nics_of(state)}
    for slot in range(1, MAX_SLOT + 1):
        if slot not in used:
            return slot
    raise DriverError(f"the server has {MAX_SLOT} NICs: no PCI slot is left for another")


class Networks:
    """The host networks of one driver root: ``<root>/networks/<bridge>/`` holds the dnsmasq files."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}     # one per bridge: starts in one process take turns

    def _lock(self, bridge: str) -> asyncio.Lock:
        return self._locks.setdefault(bridge, asyncio.Lock())

    # --- paths ------------------------------------------------------------------------------------------

    def _dir(self, bridge: str) -> str:
        return os.path.join(self.root, bridge)

    def log_path(self, network: str) -> str:
        return os.path.join(self._dir(bridge_name(network)), "dnsmasq.log")

    def log_size(self, network: str) -> int:
        try:
            return os.path.getsize(self.log_path(network))
        except OSError:
            return 0

    # --- the network itself ----------------------------------------------------------------------------------

    async def _ip(self, *args: str, check: bool = True) -> proc.Result:
        return await proc.run(["ip", *args], timeout=30, check=check)

    async def _exists(self, ifname: str) -> bool:
        return (await self._ip("link", "show", "dev", ifname, check=False)).rc == 0

    def _dnsmasq_pid(self, bridge: str) -> int | None:
        try:
            with open(os.path.join(self._dir(bridge), "dnsmasq.pid")) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().split(b"\0")
        except OSError:
            return None
        alive = start_time(pid) is not None
        return pid if alive and f"--interface={bridge}".encode() in cmdline else None

    async def ensure(self, network: str, hosts: list[Nic]) -> str:
        """Build (or repair) the bridge, its address, isolation rule and dnsmasq of ``network`` with the
        reserved leases of ``hosts`` (every NIC on the network, of every server). Returns the bridge.
        Idempotent; every part is checked and only what is missing is made. Starts in one process take
        turns (a lock per bridge); another process (a second worker) doing the same at the same moment
        finds each part made, since a step that fails is accepted when what it was to make is there."""
        bridge = bridge_name(network)
        async with self._lock(bridge):
            return await self._ensure(network, bridge, hosts)

    async def _ensure(self, network: str, bridge: str, hosts: list[Nic]) -> str:
        d = self._dir(bridge)
        os.makedirs(d, mode=0o755, exist_ok=True)
        os.chmod(d, 0o755)               # dnsmasq re-reads the hosts file after dropping its privileges
        _write(os.path.join(d, "network"), network + "\n")
        if not await self._exists(bridge):
            made = await self._ip("link", "add", bridge, "type", "bridge", check=False)
            if made.rc != 0 and not await self._exists(bridge):
                raise DriverError(f"cannot make bridge {bridge}: {made.error_text[-200:]}")
        if f" {GATEWAY}/" not in (await self._ip("-o", "-4", "addr", "show", "dev", bridge)).text:
            made = await self._ip("addr", "add", f"{GATEWAY}/{RANGE.prefixlen}", "dev", bridge, "noprefixroute",
                                  check=False)
            if made.rc != 0 and f" {GATEWAY}/" not in (await self._ip("-o", "-4", "addr", "show", "dev", bridge)).text:
                raise DriverError(f"cannot give {bridge} its address: {made.error_text[-200:]}")
        await self._ip("link", "set", bridge, "up")
        if "blackhole" not in (await self._ip("rule", "show", "iif", bridge, check=False)).text:
            made = await self._ip("rule", "add", "pref", str(RULE_PREF), "iif", bridge, "blackhole", check=False)
            if made.rc != 0 and "blackhole" not in (await self._ip("rule", "show", "iif", bridge, check=False)).text:
                raise DriverError(f"cannot isolate {bridge}: {made.error_text[-200:]}")
        self._write_hosts(bridge, hosts)
        pid = self._dnsmasq_pid(bridge)
        if pid is None:
            await self._start_dnsmasq(bridge)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)   # re-read the reserved leases
        return bridge

    def _write_hosts(self, bridge: str, hosts: list[Nic]) -> None:
        lines = sorted({f"{n.mac},{n.ip},infinite" for n in hosts if n.ip})
        path = os.path.join(self._dir(bridge), "hosts")
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("".join(line + "\n" for line in lines))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    async def _start_dnsmasq(self, bridge: str) -> None:
        d = self._dir(bridge)
        logfile = os.path.join(d, "dnsmasq.log")
        if not os.path.exists(logfile):
            _write(logfile, "")
        argv = ["dnsmasq", "--conf-file=/dev/null", "--port=0", "--bind-interfaces", f"--interface={bridge}",
                "--except-interface=lo", f"--dhcp-range={RANGE.network_address},static,{RANGE.netmask},infinite",
                f"--dhcp-hostsfile={os.path.join(d, 'hosts')}", "--leasefile-ro", "--dhcp-authoritative",
                f"--dhcp-option=option:router,{GATEWAY}", "--dhcp-no-override",
                f"--pid-file={os.path.join(d, 'dnsmasq.pid')}", f"--log-facility={logfile}"]
        res = await proc.run(argv, timeout=30, check=False)
        if res.rc != 0:
            if self._dnsmasq_pid(bridge) is not None:     # another process started it meanwhile
                return
            raise DriverError(f"dnsmasq did not start on {bridge}: {res.error_text[-300:]}")
        for _ in range(50):
            if self._dnsmasq_pid(bridge) is not None:
                return
            await asyncio.sleep(0.02)
        raise DriverError(f"dnsmasq on {bridge} exited at once: see {logfile}")

    async def remove(self, network: str) -> None:
        """Stop the network's dnsmasq, delete its rule and bridge and forget its files. Idempotent."""
        bridge = bridge_name(network)
        pid = self._dnsmasq_pid(bridge)
        if pid is not None:
            start = start_time(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not same_process(pid, start):
                    break
                await asyncio.sleep(0.02)
        if await self._exists(bridge):       # TAP devices a crash left on it (a destroy removes its own first)
            ports = (await self._ip("-o", "link", "show", "master", bridge, check=False)).text
            for name in re.findall(r"^\d+: (ecsdt[0-9a-f]{10})[@:]", ports, re.MULTILINE):
                await self._ip("link", "del", name, check=False)
        while "blackhole" in (await self._ip("rule", "show", "iif", bridge, check=False)).text:
            if (await self._ip("rule", "del", "pref", str(RULE_PREF), "iif", bridge, check=False)).rc != 0:
                break
        if await self._exists(bridge):
            await self._ip("link", "del", bridge, check=False)
        shutil.rmtree(self._dir(bridge), ignore_errors=True)

    def known(self) -> list[str]:
        """The networks that have files here (built at some point, not removed)."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.root):
                with contextlib.suppress(OSError), open(os.path.join(self.root, name, "network")) as fh:
                    out.append(fh.read().strip())
        return out

    # --- NICs -----------------------------------------------------------------------------------------------

    async def plug_tap(self, nic: Nic, bridge: str) -> str:
        """The NIC's TAP device, on ``bridge`` and up, and the host route to its address. Idempotent."""
        tap = tap_name(nic.port)
        if not await self._exists(tap):
            made = await self._ip("tuntap", "add", "dev", tap, "mode", "tap", check=False)
            if made.rc != 0 and not await self._exists(tap):
                raise DriverError(f"cannot make TAP device {tap}: {made.error_text[-200:]}")
        await self.attach(tap, nic, bridge)
        return tap

    async def attach(self, ifname: str, nic: Nic, bridge: str) -> None:
        """Put the host end of a NIC (its TAP device) on ``bridge``, up, with the host route to its address."""
        await self._ip("link", "set", ifname, "master", bridge, "up")
        if nic.ip:
            await self._ip("route", "replace", f"{nic.ip}/32", "dev", bridge, "src", str(GATEWAY))

    async def unplug_tap(self, nic: Nic) -> None:
        """Remove the NIC's TAP device and host route. Idempotent."""
        tap = tap_name(nic.port)
        if nic.ip and nic.network:
            await self._ip("route", "del", f"{nic.ip}/32", "dev", bridge_name(nic.network), check=False)
        if await self._exists(tap):
            await self._ip("link", "del", tap, check=False)

    def acked(self, network: str, mac: str, since: int) -> str | None:
        """The address dnsmasq acknowledged to ``mac`` in its log after byte ``since`` (None: not yet)."""
        try:
            with open(self.log_path(network), "rb") as fh:
                fh.seek(since)
                text = fh.read()
        except OSError:
            return None
        found = None
        for m in _DHCPACK.finditer(text):
            if m.group(2).decode() == mac:
                found = m.group(1).decode()
        return found


async def ssh_banner(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether an SSH server answers at host:port (its identification line starts with ``SSH-``)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
