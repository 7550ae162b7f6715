"""Hot-plug with the real QEMU (local driver): a blank data disk attached to a running server, seen by the
guest, detached again; a stopped server's attachment and flavor in its next launch; attachments kept by a
restart of ecsd (a new driver on the same root). Two boots under TCG, about 20-40 s.

The guest of the test images has no shell on its console, so "seen by the guest" is QEMU's own report
that the guest's virtio driver took the device (``x-query-virtio-status``: DRIVER_OK), and a detach
completes only once the guest's ACPI hot-plug code has released the device (hotplug.py).

Skipped, with the reason, where the host lacks QEMU, e2fsprogs, static busybox or a Debian kernel package.
"""

from __future__ import annotations

import json
import time

import pytest

from ecsd.drivers.base import DiskSource, DriverError
from ecsd.drivers.local import LocalDriver, LocalOptions, hotplug
from ecsd.drivers.local.images import import_image
from ecsd.drivers.local.qemu import qmp
from tests import local_images
from tests.support import Api, server_body
from tests.test_local_driver import _import, _wait, cmdline, local_settings, new_id, os_files, run  # noqa: F401

pytestmark = pytest.mark.slow

local_images.skip_unless_testable()


@pytest.fixture(scope="module")
def kit():
    return local_images.boot_kit()


@pytest.fixture
def driver(tmp_path, kit):
    d = LocalDriver(str(tmp_path / "local"), options(kit))
    yield d
    for sid in d._server_ids():
        run(d.destroy(sid))


def options(kit) -> LocalOptions:
    return LocalOptions(accel="tcg", disk_format="raw", kernel=kit.kernel, initrd=kit.initrd, memory_mb=256,
                        boot_marker=local_images.MARKER_END, boot_timeout=180, stop_timeout=20)


def driver_ok(driver: LocalDriver, sid: str, volume_id: str, path: str | None = None) -> bool:
    """QEMU says the guest's virtio driver has set the device up (the guest sees the disk, or ``path``)."""
    path = path or f"/machine/peripheral/{hotplug.device_id(volume_id)}/virtio-backend"
    try:
        status = run(qmp(driver.layout.qmp_socket(sid), "x-query-virtio-status", {"path": path}, 15.0))
    except DriverError:            # a slow answer on a busy host: ask again
        return False
    return "DRIVER_OK" in json.dumps(status.get("status", {}))


def booted_server(driver: LocalDriver) -> tuple[str, str]:
    image = import_image(driver.layout.images, local_images.os_image("A"), name="A")
    sid, system = new_id(), new_id()
    run(driver.create_disk(system, DiskSource(image["id"], image["disk_format"], image["min_disk"],
                                              json.loads(image["properties"])), 0))
    run(driver.attach(sid, system, "/dev/vda"))
    run(driver.start(sid, system))
    return sid, system


def test_a_data_disk_is_hot_plugged_and_unplugged(driver, kit):
    sid, system = booted_server(driver)
    data = new_id()
    run(driver.create_disk(data, None, 1))
    pid = driver.hv.pid(sid)

    run(driver.attach(sid, data, "/dev/vdb"))
    assert hotplug.node_name(data) in run(driver.plugged(sid))
    assert driver._load(sid)["disks"] == {"/dev/vda": system, "/dev/vdb": data}
    deadline = time.monotonic() + 60
    while not driver_ok(driver, sid, data):
        assert time.monotonic() < deadline, "the guest never took the hot-plugged disk"
        time.sleep(0.2)
    run(driver.attach(sid, data, "/dev/vdb"))                  # again: nothing changes
    assert driver.hv.pid(sid) == pid

    # a restart of ecsd: a new driver on the same root finds the attachment and unplugs it
    again = LocalDriver(driver.layout.root, options(kit))
    run(again.detach(sid, data))
    assert hotplug.node_name(data) not in run(driver.plugged(sid))
    assert driver._load(sid)["disks"] == {"/dev/vda": system}
    run(again.detach(sid, data))                               # again: a no-op
    assert driver.hv.pid(sid) == pid                           # the server ran throughout

    # stopped: recorded only; the next launch has the disk and the flavor's vCPUs and RAM
    run(driver.stop(sid))
    run(driver.attach(sid, data, "/dev/vdc"))
    run(driver.set_flavor(sid, 2, 384))
    run(driver.plug_nic(sid, new_id(), "fa:16:3e:00:00:01"))
    assert run(driver.plugged(sid)) == set()
    run(driver.start(sid))
    argv = cmdline(driver, sid)
    assert hotplug.device_arg(data, "/dev/vdc") in argv and hotplug.device_arg(system, "/dev/vda") in argv
    assert argv[argv.index("-m") + 1] == "384" and argv[argv.index("-smp") + 1] == "2"
    assert run(driver.plugged(sid)) == {hotplug.node_name(system), hotplug.node_name(data)}
    assert local_images.MARKER_END in run(driver.console_output(sid))

    # a disk that was on the command line is unplugged like a hot-plugged one
    run(driver.detach(sid, data))
    assert run(driver.plugged(sid)) == {hotplug.node_name(system)}
    assert driver._load(sid)["disks"] == {"/dev/vda": system}
    took = [(op, round(sec, 2)) for op, _ident, sec in driver.timings if op in ("hotplug", "unplug", "boot")]
    print(f"\nlocal hot-plug: {took}")


def test_attach_and_detach_jobs_hot_plug_a_running_server(local_settings, creds, os_files):  # noqa: F811
    """Through the public API with the local driver: a server created with a blank data disk; detaching it
    while the server runs unplugs it, attaching it at another device plugs it in again."""
    from starlette.testclient import TestClient

    from ecsd.app import create_app

    rows = _import(local_settings, os_files, "A")
    with TestClient(create_app(local_settings), raise_server_exceptions=False) as client:
        api = Api(client, creds)
        driver = client.app.state.services.driver
        r = api.post("/v1/{pid}/cloudservers", server_body(
            rows["A"]["id"], name="hot", data_volumes=[{"volumetype": "SSD", "size": 10}]))
        assert r.status_code == 200, r.text
        sid = _wait(api, r.json()["job_id"], 120)["entities"]["sub_jobs"][0]["entities"]["server_id"]
        disks = api.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device").json()["volumeAttachments"]
        (data,) = [d["volumeId"] for d in disks if d["bootIndex"] != 0]
        pid = driver.hv.pid(sid)
        assert hotplug.node_name(data) in run(driver.plugged(sid))

        r = api.delete(f"/v1/{{pid}}/cloudservers/{sid}/detachvolume/{data}")
        _wait(api, r.json()["job_id"], 60)
        assert hotplug.node_name(data) not in run(driver.plugged(sid))
        r = api.post(f"/v1/{{pid}}/cloudservers/{sid}/attachvolume",
                     {"volumeAttachment": {"volumeId": data, "device": "/dev/vdc"}})
        _wait(api, r.json()["job_id"], 60)
        assert hotplug.node_name(data) in run(driver.plugged(sid))
        assert driver._load(sid)["disks"]["/dev/vdc"] == data and driver.hv.pid(sid) == pid
        assert api.server(sid)["status"] == "ACTIVE"


def test_a_nic_is_hot_plugged_and_unplugged(driver):
    """A NIC added to a running server (addNics) appears in its machine at once with the API's MAC, its
    network's reserved lease and TAP device with it, and leaves again on deleteNics."""
    from ecsd.drivers.local import network as net

    if driver.net_mode == "none":
        pytest.skip("networks are off")
    sid, _system = booted_server(driver)
    port = new_id()
    nic = net.Nic(port, "fa:16:3e:12:34:56", "192.168.99.7", "project/subnet")
    run(driver.plug_nic(sid, port, nic.mac, nic.ip, nic.network))
    devices = run(hotplug.devices(driver.layout.qmp_socket(sid)))
    assert nic.device_id in devices
    info = run(qmp(driver.layout.qmp_socket(sid), "human-monitor-command", {"command-line": "info network"}))
    assert f"macaddr={nic.mac}" in info
    deadline = time.monotonic() + 60
    while not driver_ok(driver, sid, "", path=f"/machine/peripheral/{nic.device_id}/virtio-backend"):
        assert time.monotonic() < deadline, "the guest never set the hot-plugged NIC up"
        time.sleep(0.5)
    run(driver.plug_nic(sid, port, nic.mac, nic.ip, nic.network))            # again: a no-op
    if driver.net_mode == "bridge":
        assert net.tap_name(port) in run(driver.networks._ip("-br", "link")).text
        with open(f"{driver.networks.root}/{net.bridge_name(nic.network)}/hosts") as fh:
            assert f"{nic.mac},{nic.ip},infinite" in fh.read()

    run(driver.unplug_nic(sid, port))
    assert nic.device_id not in run(hotplug.devices(driver.layout.qmp_socket(sid)))
    assert port not in driver._load(sid).get("nics", {})
    if driver.net_mode == "bridge":
        assert net.tap_name(port) not in run(driver.networks._ip("-br", "link")).text
        assert nic.network not in driver.networks.known()          # its last NIC: the network went too
    run(driver.unplug_nic(sid, port))                                         # again: a no-op
