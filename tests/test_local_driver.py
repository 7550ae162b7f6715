"""The local QEMU driver: driver-level checks (no boot, about 2 s); through the public HTTP API, images
it cannot boot refused and hidden (no boot), one real change OS (three boots under TCG, about 15-30 s),
and a change OS to an image whose init exits, which must FAIL with Ecs.0226 (two boots, about 15 s).

Skipped, with the reason, where the host lacks QEMU, e2fsprogs, static busybox or a Debian kernel
package (see tests/local_images.py and docs/drivers.md for the packages).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import subprocess
import time
import uuid

import pytest
from starlette.testclient import TestClient

from ecsd.drivers.base import DiskSource, DriverError, Injection
from ecsd.drivers.local import LocalDriver, LocalOptions
from ecsd.drivers.local.disks import fuse_usable
from ecsd.drivers.local.images import FILE_KEY, import_image, register
from tests import local_images
from tests import support as s
from tests.support import Api, assert_error, server_body
from tests.support import wait_success as _wait

pytestmark = pytest.mark.slow

local_images.skip_unless_testable()

FORMATS = ["raw"] + (["qcow2"] if fuse_usable() else [])
KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1Key1Key1Key1Key1Key1Key1Key1Key1Key1 one@test"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey2Key2Key2Key2Key2Key2Key2Key2Key2Key2 two@test"


def run(coro):
    return asyncio.run(coro)


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def kit():
    return local_images.boot_kit()


@pytest.fixture(scope="module")
def os_files():
    return {letter: local_images.os_image(letter) for letter in "ABX"}


def make_driver(root: str, fmt: str = "raw", **kw) -> LocalDriver:
    # No boot in the driver-level tests: the kernel is never read.
    return LocalDriver(root, LocalOptions(accel="tcg", disk_format=fmt, kernel="/dev/null", initrd="/dev/null", **kw))


def source(row: dict) -> DiskSource:
    return DiskSource(row["id"], row["disk_format"], row["min_disk"], json.loads(row["properties"]))


def debugfs(path: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["debugfs", "-R", command, path], capture_output=True, text=True, check=True)


def fsck(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["e2fsck", "-fn", path], capture_output=True, text=True, check=False)


def read_text(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def cmdline(driver: LocalDriver, sid: str) -> list[str]:
    with open(f"/proc/{driver.hv.pid(sid)}/cmdline", "rb") as fh:
        return fh.read().decode().split("\0")


def read_back(driver: LocalDriver, vid: str, path: str) -> str:
    async def go():
        async with driver.disks.raw_view(vid) as view:
            return debugfs(view, f"cat {path}").stdout
    return run(go())


@pytest.fixture(params=FORMATS)
def fmt(request):
    return request.param


@pytest.fixture
def driver(tmp_path, fmt, os_files):
    d = make_driver(str(tmp_path / "local"), fmt)
    d.image_a = import_image(d.layout.images, os_files["A"], name="A")
    yield d
    for sid in d._server_ids():
        run(d.destroy(sid))


# --- disks ----------------------------------------------------------------------------------------------

def test_create_disk_is_constant_time_and_small(driver, os_files):
    vid = new_id()
    t0 = time.monotonic()
    run(driver.create_disk(vid, source(driver.image_a), 0))   # the image's own size: nothing to grow
    took = time.monotonic() - t0
    path, fmt = driver.disks.find(vid)
    allocated = os.stat(path).st_blocks * 512
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", path], capture_output=True,
                                     check=True).stdout)
    if fmt == "qcow2":
        assert info["full-backing-filename"] == os.path.join(driver.layout.images, f"{driver.image_a['id']}.raw")
        assert allocated < 1024 * 1024           # an overlay: no image data copied
    else:
        assert allocated <= os.stat(os_files["A"]).st_blocks * 512 + 1024 * 1024   # sparse copy
    assert info["virtual-size"] == 64 * 1024 * 1024
    assert took < 2.0, took
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_disk_grows_to_the_requested_size(driver):
    vid = new_id()
    run(driver.create_disk(vid, source(driver.image_a), 2))
    path, _ = driver.disks.find(vid)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", path], capture_output=True,
                                     check=True).stdout)
    assert info["virtual-size"] == 2 * 1024**3

    async def fs_size():
        async with driver.disks.raw_view(vid) as view:
            out = debugfs(view, "stats").stdout
            check = fsck(view)
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return int(fields["Block count"]) * int(fields["Block size"]), check.returncode
    size, rc = run(fs_size())
    assert size == 2 * 1024**3 and rc == 0


def test_blank_data_disk(driver):
    vid = new_id()
    run(driver.create_disk(vid, None, 3))
    path, _ = driver.disks.find(vid)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", path], capture_output=True,
                                     check=True).stdout)
    assert info["virtual-size"] == 3 * 1024**3 and "backing-filename" not in info


def test_inject_then_read_back(driver):
    vid = new_id()
    run(driver.create_disk(vid, source(driver.image_a), 1))
    run(driver.inject(vid, Injection(public_keys=(KEY1,))))
    run(driver.inject(vid, Injection(public_keys=(KEY1, KEY2), admin_pass="Passw0rd-x", user_data=b"#!/bin/sh\n")))
    assert read_back(driver, vid, "/root/.ssh/authorized_keys").splitlines() == [KEY1, KEY2]
    # The password is root's SHA-512 crypt hash in /etc/shadow (no agent needed), the file keeps its mode.
    shadow = read_back(driver, vid, "/etc/shadow")
    hashed = shadow.split(":")[1]
    assert shadow.startswith("root:$6$") and "Passw0rd-x" not in shadow and shadow.endswith(":0:99999:7:::\n")
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", hashed.split("$")[2], "Passw0rd-x"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert again == hashed
    assert read_back(driver, vid, "/var/lib/ecsd/user-data") == "#!/bin/sh\n"

    async def modes():
        async with driver.disks.raw_view(vid) as view:
            stats = {p: debugfs(view, f"stat {p}").stdout
                     for p in ("/root/.ssh", "/root/.ssh/authorized_keys", "/etc/shadow")}
            check = fsck(view)
        return stats, check
    stats, check = run(modes())
    assert "Mode:  0700" in stats["/root/.ssh"] and "Mode:  0600" in stats["/root/.ssh/authorized_keys"]
    assert "User:     0   Group:     0" in stats["/root/.ssh/authorized_keys"]
    assert "Mode:  0640" in stats["/etc/shadow"]
    assert check.returncode == 0, check.stdout
    assert not glob.glob(os.path.join(driver.layout.tmp, "*")), "scratch files or mount points left behind"


def test_inject_refuses_a_key_that_is_not_one_line(driver):
    vid = new_id()
    run(driver.create_disk(vid, source(driver.image_a), 1))
    with pytest.raises(DriverError):
        run(driver.inject(vid, Injection(public_keys=(KEY1 + "\n" + KEY2,))))


def test_every_method_twice_is_harmless(driver):
    sid, vid, data = new_id(), new_id(), new_id()
    # a crash during an earlier attempt left a half-made disk behind
    with open(driver.layout.disk(vid, driver.disks.fmt) + ".part", "wb") as fh:
        fh.write(b"junk")
    for _ in range(2):
        run(driver.create_disk(vid, source(driver.image_a), 1))
        run(driver.create_disk(data, None, 1))
        run(driver.inject(vid, Injection(public_keys=(KEY1,))))
        run(driver.attach(sid, vid, "/dev/vda"))
        run(driver.attach(sid, data, "/dev/vdb"))
    assert read_back(driver, vid, "/root/.ssh/authorized_keys").splitlines() == [KEY1]
    assert driver._load(sid)["disks"] == {"/dev/vda": vid, "/dev/vdb": data}
    for _ in range(2):
        run(driver.stop(sid))
        run(driver.stop(sid, hard=True))
        run(driver.detach(sid, vid))
    assert driver._load(sid)["disks"] == {"/dev/vdb": data}
    for _ in range(2):
        run(driver.destroy(sid))
        run(driver.delete_disk(vid))
        run(driver.delete_disk(data))
    assert os.listdir(driver.layout.disks) == []
    assert os.listdir(driver.layout.servers) == []


def test_attach_refuses_a_taken_device_or_disk(driver):
    a, b, vid, other = new_id(), new_id(), new_id(), new_id()
    run(driver.create_disk(vid, None, 1))
    run(driver.create_disk(other, None, 1))
    run(driver.attach(a, vid, "/dev/vda"))
    with pytest.raises(DriverError):
        run(driver.attach(a, other, "/dev/vda"))        # detach first
    with pytest.raises(DriverError):
        run(driver.attach(b, vid, "/dev/vda"))          # attached to a
    with pytest.raises(DriverError):
        run(driver.attach(b, new_id(), "/dev/vda"))     # no such disk


def test_paths_from_ids_are_sanitised(driver, tmp_path):
    outside = tmp_path / "x"
    outside.write_bytes(b"keep")
    good = new_id()
    for bad in ("../x", "../../x", "/etc/passwd", "", "A" * 36, good.upper(), good + "/..", None):
        with pytest.raises(DriverError):
            run(driver.create_disk(bad, None, 1))
        with pytest.raises(DriverError):
            run(driver.delete_disk(bad))
        with pytest.raises(DriverError):
            run(driver.inject(bad, Injection(public_keys=(KEY1,))))
        with pytest.raises(DriverError):
            run(driver.attach(good, bad, "/dev/vda"))
        with pytest.raises(DriverError):
            run(driver.start(bad))
        with pytest.raises(DriverError):
            run(driver.destroy(bad))
    with pytest.raises(DriverError):
        run(driver.attach(good, good, "/dev/../x"))
    for name in ("../x", "../../../etc/passwd", "/etc/passwd", ".hidden", "a/b"):
        with pytest.raises(DriverError):
            run(driver.create_disk(good, DiskSource("i", "raw", 1, {FILE_KEY: name}), 1))
    assert outside.read_bytes() == b"keep"
    assert os.listdir(driver.layout.disks) == []


def test_an_image_without_a_file_here_cannot_be_used(driver):
    with pytest.raises(DriverError, match="no file in this host's image store"):
        run(driver.create_disk(new_id(), DiskSource(new_id(), "zvhd2", 10, {}), 10))


def test_limits(driver):
    with pytest.raises(DriverError, match="limit"):
        run(driver.create_disk(new_id(), None, driver.options.max_disk_gb + 1))
    sid, vid = new_id(), new_id()
    run(driver.create_disk(vid, source(driver.image_a), 1))
    run(driver.attach(sid, vid, "/dev/vda"))
    run(driver.set_flavor(sid, 2, 300))
    assert driver.machine_size(sid) == (2, 300)          # the flavor's vCPUs and RAM, TCG or not
    driver.options.memory_budget_mb = 512
    driver.memory_in_use = lambda but=None: 400          # the running servers were given 400 MB
    with pytest.raises(DriverError, match="memory budget is 512 MB; running servers have 400 MB, this one needs 300"):
        run(driver.start(sid, vid))
    assert driver.hv.pid(sid) is None


def test_user_mode_network_hands_out_the_fixed_ip_and_forwards_ssh(tmp_path, os_files, kit):
    """Without bridges: QEMU's user-mode network gives the guest the API's fixed IP by DHCP, and the
    server's SSH is forwarded from a port on 127.0.0.1 that stays the server's (its metadata shows it)."""
    d = LocalDriver(str(tmp_path / "local"), LocalOptions(
        accel="tcg", disk_format="raw", kernel=kit.kernel, initrd=kit.initrd, network="user", boot_timeout=90,
        boot_marker="ecsd-test-os: eth0 inet addr:192.168.77.9"))      # the guest says which address it got
    image = import_image(d.layout.images, os_files["A"], name="A")
    sid, vid, port = new_id(), new_id(), new_id()
    try:
        run(d.create_disk(vid, source(image), 1))
        run(d.attach(sid, vid, "/dev/vda"))
        run(d.plug_nic(sid, port, "fa:16:3e:77:00:09", "192.168.77.9", "project/subnet"))
        forward = d.forwarded_ssh(sid)
        assert forward is not None and forward.startswith("127.0.0.1:")
        run(d.start(sid))
        argv = cmdline(d, sid)
        netdev = argv[argv.index("-netdev") + 1]
        assert "dhcpstart=192.168.77.9" in netdev and f"hostfwd=tcp:{forward}-192.168.77.9:22" in netdev
        assert "mac=fa:16:3e:77:00:09" in argv[argv.index("-netdev") + 3]
        run(d.stop(sid, hard=True))
        run(d.start(sid))
        assert d.forwarded_ssh(sid) == forward                     # the same port at the next start
    finally:
        run(d.destroy(sid))


def test_a_guest_that_never_takes_its_lease_does_not_come_up(tmp_path, os_files, kit):
    """Bridge networks: a guest that boots but never asks for its address is not up: start kills it and
    fails, naming the lease it waited for (the job then ends FAIL with its step's boot code)."""
    from ecsd.drivers.local import network as net

    if net.privileged() is not None:
        pytest.skip(f"no bridge networks here: {net.privileged()}")
    d = LocalDriver(str(tmp_path / "local"), LocalOptions(
        accel="tcg", disk_format="raw", kernel=kit.kernel, initrd=kit.initrd, network="bridge", boot_timeout=30))
    image = import_image(d.layout.images, local_images.os_image("N"), name="N")
    sid, vid, port = new_id(), new_id(), new_id()
    try:
        run(d.create_disk(vid, source(image), 1))
        run(d.attach(sid, vid, "/dev/vda"))
        run(d.plug_nic(sid, port, "fa:16:3e:66:00:01", "192.168.66.1", "project/subnet-n"))
        with pytest.raises(DriverError, match=r"did not come up within 30 s \(no DHCP lease of 192.168.66.1 "
                                              r"taken by fa:16:3e:66:00:01\)"):
            run(d.start(sid))
        assert d.hv.pid(sid) is None
        assert "handing over to /sbin/init" in read_text(d.console_log(sid))     # it did boot its init
    finally:
        run(d.destroy(sid))
    assert "project/subnet-n" not in d.networks.known()


def test_dead_servers_are_reported(driver):
    sid, vid = new_id(), new_id()
    run(driver.create_disk(vid, None, 1))
    run(driver.attach(sid, vid, "/dev/vda"))
    assert run(driver.dead_servers()) == []
    driver._set_running(sid, True)               # it ran, and its QEMU is gone
    assert run(driver.dead_servers()) == [sid]
    run(driver.stop(sid))
    assert run(driver.dead_servers()) == []


def test_import_checks_what_it_stores(tmp_path, os_files):
    store = str(tmp_path / "images")
    junk = tmp_path / "junk.raw"
    junk.write_bytes(b"\0" * (1 << 20))
    with pytest.raises(DriverError, match="ext2/3/4"):
        import_image(store, str(junk), name="junk")
    qcow = str(tmp_path / "a.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", os_files["A"], qcow], check=True)
    row = import_image(store, qcow, name="A from qcow2")
    assert row["disk_format"] == "qcow2" and row["os_version"] == "ecsd test OS A" and row["min_disk"] == 1
    stored = os.path.join(store, json.loads(row["properties"])[FILE_KEY])
    assert stored == os.path.join(store, f"{row['id']}.raw")
    assert os.stat(stored).st_mode & 0o777 == 0o444
    overlay = str(tmp_path / "overlay.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", qcow, "-F", "qcow2", overlay], check=True)
    with pytest.raises(DriverError, match="backing file"):
        import_image(store, overlay, name="overlay")
    with pytest.raises(DriverError, match="never replaced"):
        import_image(store, os_files["A"], name="again", image_id=row["id"])


# --- the real thing: change OS through the public API -----------------------------------------------------

def _seconds(job: dict) -> float:
    from datetime import datetime

    def ts(v: str) -> float:
        return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() if "." in v else \
            datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").timestamp()
    return ts(job["end_time"]) - ts(job["begin_time"])


def _import(settings, os_files, letters: str) -> dict[str, dict]:
    """Images imported into the local driver's store and registered, as ``ecsd images import`` does."""
    from ecsd.store.db import Store

    root = os.path.join(settings.data_dir, "local")
    rows = {k: import_image(os.path.join(root, "images"), os_files[k], name=f"ecsd-test-os-{k}") for k in letters}
    store = Store(settings.url)
    with store.tx() as conn:
        for row in rows.values():
            register(conn, row)
    store.close()
    return rows


@pytest.fixture
def local_settings(settings, kit, monkeypatch):
    """The usual test settings (copied database, demo tenant) with the local driver."""
    settings.driver = "local"
    for name, value in {"KERNEL": kit.kernel, "INITRD": kit.initrd, "ACCEL": "tcg", "MEMORY_MB": "256",
                        "BOOT_MARKER": local_images.MARKER_END, "BOOT_TIMEOUT": "90",
                        "STOP_TIMEOUT": "20"}.items():
        monkeypatch.setenv(f"ECSD_LOCAL_{name}", value)
    yield settings
    leftover = LocalDriver(os.path.join(settings.data_dir, "local"), LocalOptions(accel="tcg"))
    for sid in leftover._server_ids():         # never leave a QEMU behind, whatever failed
        run(leftover.destroy(sid))


def test_change_os_boots_the_new_image_with_the_new_key(local_settings, creds, os_files):
    from ecsd.app import create_app

    rows = _import(local_settings, os_files, "AB")
    with TestClient(create_app(local_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        driver = client.app.state.services.driver
        assert driver.name == "local"
        key1 = api.keypair("kp1")["public_key"].strip()
        key2 = api.keypair("kp2")["public_key"].strip()

        r = api.post("/v1/{pid}/cloudservers", server_body(rows["A"]["id"], name="real", key_name="kp1"))
        assert r.status_code == 200, r.text
        created = _wait(api, r.json()["job_id"], 120)
        sid = created["entities"]["sub_jobs"][0]["entities"]["server_id"]
        first = read_text(driver.console_log(sid))
        boots = local_images.console_boots(first)
        assert len(boots) == 1 and 'PRETTY_NAME="ecsd test OS A"' in boots[0] and key1 in boots[0]
        old_disk = [v["id"] for v in api.server(sid)["os-extended-volumes:volumes_attached"]]
        pid_a = driver.hv.pid(sid)

        mark = len(driver.timings)
        t0 = time.monotonic()
        r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                     {"os-change": {"imageid": rows["B"]["id"], "keyname": "kp2", "mode": "withStopServer"}})
        assert r.status_code == 200, r.text
        changed = _wait(api, r.json()["job_id"], 120)
        change_took = time.monotonic() - t0
        steps = ", ".join(f"{op} {sec:.3f} s" for op, _id, sec in driver.timings[mark:])

        console = read_text(driver.console_log(sid))
        boots = local_images.console_boots(console)
        assert len(boots) == 1, console
        assert 'PRETTY_NAME="ecsd test OS B"' in boots[0] and "ecsd test OS A" not in console
        assert key2 in boots[0] and key1 not in console
        previous = read_text(os.path.join(driver.layout.server_dir(sid), "console.prev.log"))
        assert "ecsd test OS A" in previous and key1 in previous      # the boot before the change

        server = api.server(sid)
        assert server["status"] == "ACTIVE" and server["image"]["id"] == rows["B"]["id"]
        assert server["key_name"] == "kp2"
        new_disk = [v["id"] for v in server["os-extended-volumes:volumes_attached"]]
        assert new_disk != old_disk and len(new_disk) == 1
        assert sorted(os.listdir(driver.layout.disks)) == [f"{new_disk[0]}.{driver.disks.fmt}"]
        pid_b = driver.hv.pid(sid)
        assert pid_b is not None and pid_b != pid_a

        run(driver.start(sid))                    # idempotent: already running, no new boot
        assert driver.hv.pid(sid) == pid_b and read_text(driver.console_log(sid)) == console

        # A reboot (stop, then start from the attached disk) comes up with OS B and key 2 again.
        r = api.post("/v1/{pid}/cloudservers/action", {"reboot": {"type": "SOFT", "servers": [{"id": sid}]}})
        assert r.status_code == 200, r.text
        _wait(api, r.json()["job_id"], 120)
        rebooted = local_images.console_boots(read_text(driver.console_log(sid)))
        assert len(rebooted) == 1 and "ecsd test OS B" in rebooted[0] and key2 in rebooted[0]
        assert "ecsd test OS B" in read_text(os.path.join(driver.layout.server_dir(sid), "console.prev.log"))

        r = api.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
        assert r.status_code == 200, r.text
        _wait(api, r.json()["job_id"], 60)
        assert driver.hv.pid(sid) is None
        assert os.listdir(driver.layout.disks) == [] and os.listdir(driver.layout.servers) == []
        assert not os.path.exists(driver.layout.qmp_socket(sid)) and not os.path.exists(driver.layout.run)

        print(f"\nlocal driver: create+boot {_seconds(created):.1f} s, change OS {change_took:.1f} s "
              f"(job {_seconds(changed):.1f} s): {steps}")


def test_images_this_driver_cannot_boot_are_refused_and_not_listed(local_settings, creds, os_files):
    """The seeded catalogue has no files here: change OS and create refuse it (Ecs.0007), listings hide it."""
    from ecsd.app import create_app

    local_settings.driver = "simulated"        # a server made earlier, when the simulated driver ran
    with TestClient(create_app(local_settings), raise_server_exceptions=False) as client:
        sid = Api(client, creds).create_servers(s.UBUNTU)[0]
    local_settings.driver = "local"
    rows = _import(local_settings, os_files, "A")
    with TestClient(create_app(local_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        assert client.app.state.services.driver.name == "local"
        before = api.server(sid)
        disks = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()
        for path, body in ((f"/v1/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {"imageid": s.DEBIAN}}),
                           (f"/v2/{{pid}}/cloudservers/{sid}/changeos", {"os-change": {"imageid": s.DEBIAN}}),
                           ("/v1/{pid}/cloudservers", server_body(s.DEBIAN, name="x"))):
            err = assert_error(api.post(path, body), 400, "Ecs.0007")
            assert "local driver" in err["message"], err
        after = api.server(sid)
        assert (after["status"], after["image"]["id"], after["OS-EXT-STS:task_state"]) == \
            (before["status"], s.UBUNTU, before["OS-EXT-STS:task_state"])
        assert api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json() == disks
        assert os.listdir(os.path.join(local_settings.data_dir, "local", "disks")) == []
        assert api.get("/v1/{pid}/cloudservers/detail").json()["count"] == 1      # nothing was created

        only_a = {rows["A"]["id"]}
        ims = api.get("/v2/cloudimages?limit=1000").json()["images"]
        glance = api.get("/v2/images?limit=1000").json()["images"]
        nova = api.get("/v2.1/{pid}/images/detail").json()["images"]
        assert {i["id"] for i in ims} == {i["id"] for i in glance} == {i["id"] for i in nova} == only_a


def test_change_os_to_an_image_that_does_not_boot_fails(local_settings, creds, os_files, monkeypatch):
    """Without a boot marker: the generic check (a server with a NIC: its DHCP lease taken) passes for a
    healthy image and fails a change OS to an image whose init exits (the kernel panics at once)."""
    from ecsd.app import create_app

    monkeypatch.delenv("ECSD_LOCAL_BOOT_MARKER")
    rows = _import(local_settings, os_files, "AX")
    with TestClient(create_app(local_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        driver = client.app.state.services.driver
        assert driver.options.boot_marker is None
        r = api.post("/v1/{pid}/cloudservers", server_body(rows["A"]["id"], name="broken"))
        assert r.status_code == 200, r.text
        created = _wait(api, r.json()["job_id"], 120)
        sid = created["entities"]["sub_jobs"][0]["entities"]["server_id"]
        # Up means its lease was taken (the boot check); its console report may follow a moment later.
        run(driver.wait_console(sid, local_images.MARKER_END, 60))
        boot_a = [sec for op, ident, sec in driver.timings if op == "boot" and ident == sid]

        r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                     {"os-change": {"imageid": rows["X"]["id"], "mode": "withStopServer"}})
        assert r.status_code == 200, r.text
        job = api.wait_job(r.json()["job_id"], timeout=120)
        assert job["status"] == "FAIL" and job["error_code"] == "Ecs.0226", job
        assert "Attempted to kill init" in job["fail_reason"], job
        assert "init exits with status 1" in read_text(driver.console_log(sid))
        server = api.server(sid)
        assert server["status"] == "ERROR" and server["image"]["id"] == rows["X"]["id"]
        assert driver.hv.pid(sid) is None and run(driver.dead_servers()) == []
        disks = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
        assert [d["bootIndex"] for d in disks] == [0]
        assert os.listdir(driver.layout.disks) == [f"{disks[0]['volumeId']}.{driver.disks.fmt}"]
        boot_x = [sec for op, ident, sec in driver.timings if op == "boot" and ident == sid][len(boot_a):]
        print(f"\nboot check without a marker: healthy image up after {boot_a[0]:.1f} s "
              f"(settle {driver.options.boot_settle} s), broken image failed after {boot_x[0]:.1f} s")


def test_images_import_command(tmp_path, os_files):
    from click.testing import CliRunner

    from ecsd.drivers.local.cli import images
    from ecsd.store.db import Store, sqlite_url

    data_dir = str(tmp_path / "data")
    runner = CliRunner()
    res = runner.invoke(images, ["import", os_files["B"], "--name", "OS B", "--platform", "Debian",
                                 "--min-disk", "2", "--json", "--data-dir", data_dir])
    assert res.exit_code == 0, res.output
    made = json.loads(res.output)
    assert made["os_version"] == "ecsd test OS B" and made["min_disk"] == 2
    assert os.path.isfile(os.path.join(data_dir, "local", "images", f"{made['id']}.raw"))
    store = Store(sqlite_url(data_dir))
    row = store.run_sync(lambda conn: conn.exec_driver_sql(
        "SELECT name, status, platform, properties FROM images WHERE id = ?", (made["id"],)).one())
    store.close()
    assert row[:3] == ("OS B", "active", "Debian")
    assert json.loads(row[3]) == {FILE_KEY: f"{made['id']}.raw"}
    listed = runner.invoke(images, ["list", "--data-dir", data_dir])
    assert listed.exit_code == 0 and made["id"] in listed.output
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"\0" * 4096)
    res = runner.invoke(images, ["import", str(bad), "--name", "bad", "--data-dir", data_dir])
    assert res.exit_code != 0 and "ext2/3/4" in res.output
