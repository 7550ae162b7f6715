"""Issue 14's "done when": real Debian servers on the local driver that one logs into with ssh.

``ecsd images build-demo`` builds (or takes from the test image cache) two Debian images from Debian
packages and registers them; a server made from Debian 12 with key pair 1 takes its fixed IP by DHCP on
its project's network, and ``ssh -i key1 root@<fixed IP>`` reads its /etc/os-release; a change OS to
Debian 13 with key pair 2 (through the HTTP API) ends SUCCESS only once the new OS is up on its network;
then key 2 logs in and sees Debian 13 while key 1 is refused; the boot log comes through
``os-getConsoleOutput``. Slow (two TCG boots of systemd, and the image build when the cache is empty).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from starlette.testclient import TestClient

from ecsd.drivers.local import LocalDriver, LocalOptions, demo
from ecsd.drivers.local import network as net
from tests import local_images
from tests.support import VPC, Api, server_body
from tests.support import wait_success as wait

pytestmark = pytest.mark.slow

_why = (net.privileged() or demo.missing_tools()
        or (None if shutil.which("ssh") else "the ssh client is missing (Debian package openssh-client)")
        or local_images.missing_tools())
if _why is not None:
    pytest.skip(f"real servers cannot be tested here: {_why}", allow_module_level=True)

SSH = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
       "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]


def ssh(key: str, ip: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SSH, "-i", key, f"root@{ip}", command], check=False, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def demo_settings(settings, monkeypatch):
    """The usual test settings with the local driver and the two demo images registered by the CLI."""
    settings.driver = "local"
    for name, value in {"ACCEL": "tcg", "BOOT_TIMEOUT": "400", "STOP_TIMEOUT": "60", "NETWORK": "bridge"}.items():
        monkeypatch.setenv(f"ECSD_LOCAL_{name}", value)
    argv = [sys.executable, "-m", "ecsd", "images", "build-demo", "--data-dir", settings.data_dir,
            "--cache", local_images.CACHE, "--json"]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    yield settings
    leftover = LocalDriver(os.path.join(settings.data_dir, "local"), LocalOptions(accel="tcg"))
    for sid in leftover._server_ids():         # never leave a QEMU behind, whatever failed
        import asyncio
        asyncio.run(leftover.destroy(sid))


def test_log_in_change_os_log_in_again(demo_settings, creds, tmp_path):
    from ecsd.app import create_app

    bookworm, trixie = (demo.image_id(demo.RELEASES[n]) for n in ("bookworm", "trixie"))
    with TestClient(create_app(demo_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        driver = client.app.state.services.driver
        assert driver.name == "local" and driver.net_mode == "bridge"
        keys = {}
        for n in (1, 2):
            pair = api.keypair(f"key{n}")
            keys[n] = str(tmp_path / f"key{n}")
            with open(os.open(keys[n], os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                fh.write(pair["private_key"])

        t0 = time.monotonic()
        r = api.post("/v1/{pid}/cloudservers", server_body(bookworm, name="debian", flavor="s3.large.2",
                                                           key_name="key1"))
        assert r.status_code == 200, r.text
        created = wait(api, r.json()["job_id"], 600)
        took_create = time.monotonic() - t0
        sid = created["entities"]["sub_jobs"][0]["entities"]["server_id"]
        server = api.server(sid)
        ip = server["addresses"][VPC][0]["addr"]
        mac = server["addresses"][VPC][0]["OS-EXT-IPS-MAC:mac_addr"]

        # SUCCESS means up on its network: the lease of the fixed IP was taken, sshd answers at once.
        first = ssh(keys[1], ip, "cat /etc/os-release; ip -o -4 addr show; cat /proc/cmdline; "
                                 "echo cpus=$(nproc) mem=$(awk '/MemTotal/{print $2}' /proc/meminfo); "
                                 "cat /sys/class/net/*/address")
        assert first.returncode == 0, first.stderr
        assert 'VERSION_CODENAME=bookworm' in first.stdout and f"inet {ip}/16" in first.stdout
        assert mac in first.stdout                                    # the MAC the API reports
        assert "console=ttyS0" in first.stdout and "root=UUID=" in first.stdout     # its own kernel
        cpus, mem = (int(w.split("=")[1]) for w in next(ln for ln in first.stdout.splitlines()
                                                        if ln.startswith("cpus=")).split())
        assert cpus == 2 and 3_500_000 < mem <= 4_194_304           # the flavor's 2 vCPUs and 4 GB

        t1 = time.monotonic()
        r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                     {"os-change": {"imageid": trixie, "keyname": "key2", "mode": "withStopServer"}})
        assert r.status_code == 200, r.text
        wait(api, r.json()["job_id"], 600)
        took_change = time.monotonic() - t1

        second = ssh(keys[2], ip, "cat /etc/os-release")
        assert second.returncode == 0, second.stderr
        assert "VERSION_CODENAME=trixie" in second.stdout and "bookworm" not in second.stdout
        refused = ssh(keys[1], ip, "true")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr

        r = api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {"os-getConsoleOutput": {"length": 50}})
        assert r.status_code == 200, r.text
        tail = r.json()["output"]
        assert 0 < len(tail.splitlines()) <= 50
        r = api.post(f"/v2.1/{{pid}}/servers/{sid}/action", {"os-getConsoleOutput": {"length": -1}})
        log = r.json()["output"]
        assert "Linux version" in log and "Debian" in log and tail.splitlines()[-1] in log

        r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
        assert r.status_code == 200, r.text
        wait(api, r.json()["job_id"], 120)
        assert driver.networks.known() == []                       # its network went with its last server
        print(f"\nlocal driver, Debian under TCG: create to SSH {took_create:.1f} s, change OS to SSH "
              f"{took_change:.1f} s; {', '.join(f'{op} {sec:.1f} s' for op, _i, sec in driver.timings[-12:])}")


def test_without_bridges_ssh_goes_through_the_forwarded_port(demo_settings, creds, tmp_path, monkeypatch):
    """User-mode networking (what a process without root gets): the guest still takes the API's fixed IP
    by DHCP, and its SSH is reached at the port the server's metadata names (ecsd_ssh_forward)."""
    from ecsd.app import create_app

    monkeypatch.setenv("ECSD_LOCAL_NETWORK", "user")
    bookworm = demo.image_id(demo.RELEASES["bookworm"])
    with TestClient(create_app(demo_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        assert client.app.state.services.driver.net_mode == "user"
        pair = api.keypair("key1")
        key = str(tmp_path / "key1")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
            fh.write(pair["private_key"])
        r = api.post("/v1/{pid}/cloudservers", server_body(bookworm, name="debian-user", key_name="key1"))
        assert r.status_code == 200, r.text
        sid = wait(api, r.json()["job_id"], 600)["entities"]["sub_jobs"][0]["entities"]["server_id"]
        server = api.server(sid)
        ip = server["addresses"][VPC][0]["addr"]
        forward = server["metadata"]["ecsd_ssh_forward"]
        host, port = forward.split(":")
        assert host == "127.0.0.1"
        res = subprocess.run([*SSH, "-i", key, "-p", port, "root@127.0.0.1",
                              "grep VERSION_CODENAME /etc/os-release; ip -o -4 addr show"],
                             check=False, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert "VERSION_CODENAME=bookworm" in res.stdout and f"inet {ip}/16" in res.stdout
        r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
        assert r.status_code == 200, r.text
        wait(api, r.json()["job_id"], 120)


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_a_larger_disk_grows_the_image_root_partition(tmp_path, release):
    """A system disk larger than its image: the root partition (MBR partition 1; GPT partition 2 after a
    BIOS-boot one) reaches the end of the disk and its file system fills it, cleanly (partitions.py)."""
    import json as _json

    from ecsd.drivers.base import DiskSource
    from ecsd.drivers.local import partitions
    from ecsd.drivers.local.images import import_image

    (image,) = demo.build_demo_images(local_images.CACHE, releases=[release], echo=lambda _text: None)
    d = LocalDriver(str(tmp_path / "local"), LocalOptions(accel="tcg"))
    row = import_image(d.layout.images, str(image), name=release)
    vid = "5a9d8c1e-0000-4000-8000-00000000000" + ("1" if release == "bookworm" else "2")
    import asyncio

    def inspect(view: str) -> tuple[dict, int, str, str]:
        root = partitions.root_of(view)
        spec = root.spec(view)
        head = subprocess.run(["dumpe2fs", "-h", spec], capture_output=True, text=True, check=True).stdout
        fsck = subprocess.run(["e2fsck", "-fn", spec], capture_output=True, text=True, check=False)
        release_file = subprocess.run(["debugfs", "-R", "cat /usr/lib/os-release", spec], capture_output=True,
                                      text=True, check=True).stdout
        return (partitions.table(view), root.offset, head,
                release_file if fsck.returncode == 0 else "fsck: " + fsck.stdout)

    async def grown() -> tuple[dict, int, str, str]:
        await d.create_disk(vid, DiskSource(row["id"], "raw", 2, _json.loads(row["properties"])), 4)
        async with d.disks.raw_view(vid) as view:
            return await asyncio.to_thread(inspect, view)

    table, offset, head, release_file = asyncio.run(grown())
    disk_sectors = 4 * 1024**3 // 512
    last = table["partitions"][-1]
    assert last["start"] * 512 == offset                          # the root is the last partition
    assert last["start"] + last["size"] >= disk_sectors - 2048    # ... and now ends at the disk's end (GPT: backup)
    blocks = int(next(ln for ln in head.splitlines() if ln.startswith("Block count:")).split()[-1])
    size = int(next(ln for ln in head.splitlines() if ln.startswith("Block size:")).split()[-1])
    assert blocks * size > 3.5 * 1024**3                          # the file system fills it
    assert f"VERSION_CODENAME={release}" in release_file          # intact (e2fsck -fn clean)
    asyncio.run(d.delete_disk(vid))
