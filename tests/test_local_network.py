"""The local driver's guest networks (drivers/local/network.py) without booting anything: each "guest"
is a network namespace whose veth end sits on the network's bridge where a server's TAP device would,
and takes its address from the network's dnsmasq with busybox's DHCP client, as a guest does.

Checked: the reserved lease hands each MAC the fixed IP the API reports; guests of one network reach
each other and the host reaches every guest; a guest of another project's network (same subnet id,
even the same range) reaches neither, also when it sends through the host (with forwarding on); the
network and everything it made go away with it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid

import pytest

from ecsd.drivers.local import network as net
from ecsd.drivers.local.boot import static_busybox

pytestmark = pytest.mark.slow

if net.privileged() is not None or not os.path.exists("/bin/busybox"):
    pytest.skip(f"guest networks not testable here: {net.privileged() or 'no busybox'}", allow_module_level=True)

DHCP_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew) ip addr add "$ip/${mask:-16}" dev "$interface"; [ -n "$router" ] && ip route add default via "$router" ;;
esac
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


def in_ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


def reaches(ns: str | None, ip: str) -> bool:
    argv = ["ping", "-c", "1", "-W", "2", ip]
    if ns is None:
        return sh(static_busybox(), *argv, check=False).returncode == 0
    return in_ns(ns, static_busybox(), *argv, check=False).returncode == 0


@pytest.fixture
def guests(tmp_path):
    """Make fake guests: name -> (namespace, Nic); everything is removed afterwards."""
    made: list[tuple[str, str]] = []
    script = tmp_path / "dhcp.sh"
    script.write_text(DHCP_SCRIPT)
    script.chmod(0o755)

    def make(nic: net.Nic) -> str:
        tag = uuid.uuid4().hex[:8]
        ns, host_end = f"ecsdtest-{tag}", f"ecsdv{tag}"
        sh("ip", "netns", "add", ns)
        made.append((ns, host_end))
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        in_ns(ns, "ip", "link", "set", "eth0", "address", nic.mac)
        in_ns(ns, "ip", "link", "set", "lo", "up")
        return host_end

    def lease(ns_of: str) -> None:
        ns = next(n for n, h in made if h == ns_of)
        res = in_ns(ns, static_busybox(), "udhcpc", "-i", "eth0", "-n", "-q", "-t", "10", "-T", "1", "-A", "1",
                    "-s", str(script), check=False)
        assert res.returncode == 0, res.stdout + res.stderr

    make.lease = lease
    make.ns = lambda host_end: next(n for n, h in made if h == host_end)
    yield make
    for ns, host_end in made:
        sh("ip", "link", "del", host_end, check=False)
        sh("ip", "netns", "del", ns, check=False)


def test_networks_hand_out_fixed_ips_connect_their_guests_and_isolate_projects(guests):
    # dnsmasq re-reads its hosts file as nobody: the directory must be reachable (pytest's tmp_path is 0700)
    root = tempfile.mkdtemp(prefix="ecsd-nettest-")
    os.chmod(root, 0o755)
    networks = net.Networks(root)
    project_a, project_b, subnet = uuid.uuid4().hex, uuid.uuid4().hex, str(uuid.uuid4())
    net_a, net_b = f"{project_a}/{subnet}", f"{project_b}/{subnet}"          # the same subnet id, two projects
    a1 = net.Nic(str(uuid.uuid4()), "fa:16:3e:aa:00:01", "192.168.40.11", net_a)
    a2 = net.Nic(str(uuid.uuid4()), "fa:16:3e:aa:00:02", "192.168.40.12", net_a)
    b1 = net.Nic(str(uuid.uuid4()), "fa:16:3e:bb:00:01", "192.168.40.13", net_b)

    left = net.Nic(str(uuid.uuid4()), "fa:16:3e:aa:00:03", "192.168.40.14", net_a)    # a TAP a crash left

    async def build() -> dict[str, str]:
        # Servers of one network starting at the same moment (a create of several): one network.
        await asyncio.gather(*(networks.ensure(net_a, [a1, a2]) for _ in range(4)))
        ends = {}
        for nic in (a1, a2, b1):
            bridge = await networks.ensure(nic.network, [n for n in (a1, a2, b1) if n.network == nic.network])
            ends[nic.mac] = guests(nic)
            await networks.attach(ends[nic.mac], nic, bridge)
        await networks.plug_tap(left, net.bridge_name(net_a))
        return ends

    forwarding = "/proc/sys/net/ipv4/ip_forward"
    with open(forwarding) as fh:
        was = fh.read().strip()
    try:
        ends = asyncio.run(build())
        assert net.bridge_name(net_a) != net.bridge_name(net_b)
        for nic in (a1, a2, b1):
            guests.lease(ends[nic.mac])
            ns = guests.ns(ends[nic.mac])
            assert f"inet {nic.ip}/16" in in_ns(ns, "ip", "-4", "addr", "show", "eth0").stdout
            assert networks.acked(nic.network, nic.mac, 0) == nic.ip                  # what the boot check reads
        ns_a1, ns_b1 = guests.ns(ends[a1.mac]), guests.ns(ends[b1.mac])
        assert reaches(ns_a1, a2.ip)                      # one network: guests reach each other
        assert reaches(None, a1.ip) and reaches(None, a2.ip) and reaches(None, b1.ip)   # the host reaches all
        assert reaches(ns_b1, str(net.GATEWAY))           # a guest reaches the host side
        assert not reaches(ns_b1, a1.ip)                  # another project's network: not on its link ...
        with open(forwarding, "w") as fh:                 # ... nor through the host, even if it forwards
            fh.write("1\n")
        in_ns(ns_b1, "ip", "route", "add", f"{a1.ip}/32", "via", str(net.GATEWAY))
        assert not reaches(ns_b1, a1.ip)
        in_ns(ns_a1, "ip", "route", "add", f"{b1.ip}/32", "via", str(net.GATEWAY))
        assert not reaches(ns_a1, b1.ip)
    finally:
        with open(forwarding, "w") as fh:
            fh.write(was + "\n")

        async def remove() -> None:
            for network in networks.known():
                await networks.remove(network)
        asyncio.run(remove())
    links = sh("ip", "-br", "link").stdout
    assert net.bridge_name(net_a) not in links and net.bridge_name(net_b) not in links
    assert net.tap_name(left.port) not in links                 # removing a network ends its TAP devices
    assert f"{left.ip} " not in sh("ip", "route").stdout
    assert net.bridge_name(net_a) not in sh("ip", "rule").stdout
    assert networks.known() == []
    assert os.listdir(root) == []
    os.rmdir(root)


def test_nic_checks():
    net.check_nic("fa:16:3e:00:00:01", "192.168.3.4", "p/s")
    net.check_nic("fa:16:3e:00:00:01", None, None)
    for mac, ip, network in (("nope", "192.168.3.4", "p/s"), ("fa:16:3e:00:00:01", "10.0.0.5", "p/s"),
                             ("fa:16:3e:00:00:01", str(net.GATEWAY), "p/s"), ("fa:16:3e:00:00:01", "192.168.3.4", None),
                             ("fa:16:3e:00:00:01", "fe80::1", "p/s")):
        with pytest.raises(net.DriverError):
            net.check_nic(mac, ip, network)
