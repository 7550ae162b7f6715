"""Disks plugged into and out of a running QEMU over QMP, with names that stay the same across restarts.

Every disk of a server, whether on QEMU's command line at launch or hot-plugged later, is one block node
and one ``virtio-blk-pci`` device named after its volume (:func:`node_name`, :func:`device_id`) at a PCI
slot fixed by its device letter (:func:`pci_slot`: /dev/vda at 0x5, /dev/vdb at 0x6, ...), so that:

* a disk booted with the server can be unplugged like a hot-plugged one (the same ids);
* the guest, which names virtio disks in PCI order, sees them in device-letter order after any restart.

Plug: ``blockdev-add`` (qcow2 or raw over a file node) then ``device_add``; each is skipped when QEMU
already has it, so a repeated plug after a crash finishes the work. Unplug: ``device_del``, then wait until
the guest has released the device (ACPI PCI hot-plug: the device leaves ``/machine/peripheral``, the
moment QEMU emits DEVICE_DELETED), then ``blockdev-del``; a device or node already gone is skipped.
A guest that never releases the device (no ACPI hot-plug support) fails the unplug after
:data:`UNPLUG_TIMEOUT` seconds; the disk then stays attached.
"""

from __future__ import annotations

import asyncio
import json

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import qemu  # qemu.py imports this module too: qemu.qmp is looked up when called
from ecsd.drivers.local.paths import check_device, check_id

UNPLUG_TIMEOUT = 60.0
QMP_TIMEOUT = 15.0      # per command: a busy host answers slowly, and a step may be repeated anyway
FIRST_SLOT = 5          # 0: host bridge, 1: ISA bridge/IDE; the rest of the low slots are left free


def node_name(volume_id: str) -> str:
    """The block node of a volume (QEMU allows 31 characters: 24 hex digits of the UUID)."""
    return "vol" + check_id(volume_id, "volume id").replace("-", "")[:24]


def device_id(volume_id: str) -> str:
    return "blk" + check_id(volume_id, "volume id").replace("-", "")[:24]


def pci_slot(device: str) -> str:
    """The PCI address of the disk at ``device`` (/dev/vda .. /dev/vdz: 0x5 .. 0x1e)."""
    letter = check_device(device)[-1]
    return hex(FIRST_SLOT + ord(letter) - ord("a"))


def blockdev_options(volume_id: str, path: str, fmt: str) -> dict:
    return {"driver": fmt, "node-name": node_name(volume_id), "discard": "unmap",
            "cache": {"direct": False, "no-flush": False},
            "file": {"driver": "file", "filename": path, "discard": "unmap"}}


def blockdev_arg(volume_id: str, path: str, fmt: str) -> str:
    """The same node as a ``-blockdev`` command-line value (JSON: no escaping of commas needed)."""
    return json.dumps(blockdev_options(volume_id, path, fmt), separators=(",", ":"))


def device_arg(volume_id: str, device: str) -> str:
    return (f"virtio-blk-pci,drive={node_name(volume_id)},id={device_id(volume_id)},"
            f"serial={volume_id[:20]},bus=pci.0,addr={pci_slot(device)}")


async def devices(sock: str) -> set[str]:
    """The ids of the devices given to the running QEMU behind ``sock`` (command line and hot-plugged)."""
    return await _devices(sock)


async def _devices(sock: str) -> set[str]:
    children = await qemu.qmp(sock, "qom-list", {"path": "/machine/peripheral"}, QMP_TIMEOUT)
    return {c["name"] for c in children if c.get("type", "").startswith("child<")}


async def _nodes(sock: str) -> set[str]:
    return {n.get("node-name") for n in await qemu.qmp(sock, "query-named-block-nodes", {"flat": True}, QMP_TIMEOUT)}


async def plug(sock: str, volume_id: str, path: str, fmt: str, device: str) -> None:
    """Add the disk to the running QEMU behind ``sock`` (idempotent)."""
    if node_name(volume_id) not in await _nodes(sock):
        await qemu.qmp(sock, "blockdev-add", blockdev_options(volume_id, path, fmt), QMP_TIMEOUT)
    if device_id(volume_id) not in await _devices(sock):
        await qemu.qmp(sock, "device_add", {"driver": "virtio-blk-pci", "drive": node_name(volume_id),
                                       "id": device_id(volume_id), "serial": volume_id[:20], "bus": "pci.0",
                                       "addr": pci_slot(device)}, QMP_TIMEOUT)


async def unplug(sock: str, volume_id: str, timeout: float = UNPLUG_TIMEOUT) -> None:
    """Remove the disk from the running QEMU once the guest has let it go (idempotent)."""
    dev = device_id(volume_id)
    loop = asyncio.get_running_loop()
    if dev in await _devices(sock):
        try:
            await qemu.qmp(sock, "device_del", {"id": dev}, QMP_TIMEOUT)
        except DriverError as exc:
            if "already in the process of unplug" not in str(exc) and "not found" not in str(exc):
                raise
        until = loop.time() + timeout
        while dev in await _devices(sock):
            if loop.time() >= until:
                raise DriverError(f"the guest did not release disk {volume_id} within {timeout:.0f} s "
                                  "(does it support ACPI PCI hot-plug?)")
            await asyncio.sleep(0.1)
    # The device has left the tree, but QEMU may still hold its node for a moment (the device is finalized
    # after it is unparented): "is in use" is asked again until the node is free.
    deadline = loop.time() + 10.0
    while node_name(volume_id) in await _nodes(sock):
        try:
            await qemu.qmp(sock, "blockdev-del", {"node-name": node_name(volume_id)}, QMP_TIMEOUT)
        except DriverError as exc:
            if "is in use" not in str(exc) or loop.time() >= deadline:
                raise
            await asyncio.sleep(0.1)


async def plugged(sock: str) -> set[str]:
    """The block nodes of the running QEMU that are volumes (for checks and tests)."""
    return {n for n in await _nodes(sock) if n and n.startswith("vol")}
