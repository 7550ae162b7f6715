"""The simulated driver: no real machines, a configurable delay per operation, injectable faults.

For crash tests it can also keep its disks as empty files in ``disk_dir`` (so that orphans can be
found) and append every operation's start and end to ``oplog`` (so that overlapping executions of
one job can be found); both are off unless configured (``ECSD_SIM_DISK_DIR``, ``ECSD_SIM_OPLOG``).
``ECSD_SIM_MEMORY_BUDGET_MB`` gives it a host memory budget, as the local driver has one (unset: none).

State lives in the domain's tables (volumes, servers); this driver only spends time and can fail on
purpose. An image whose properties carry ``__ecsd_sim_fault`` makes the named operation fail
(``create_disk``, ``inject`` or ``start``), so that failure paths are reachable through the public
API, as a corrupt image on the cloud would make them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import threading
import time

from ecsd.drivers.base import FAULT_KEY, DiskSource, DriverError, Injection

__all__ = ["FAULT_KEY", "SimulatedDriver"]
_ID = re.compile(r"^[0-9a-f-]{36}$")


class SimulatedDriver:
    name = "simulated"
    boot_property = None            # every image can be "booted"

    def unusable_image(self, properties) -> str | None:
        return None

    async def recover(self) -> None:
        """Nothing outside the database to settle."""

    async def console_output(self, server_id: str) -> str:
        """A short synthetic boot log (there is no machine): enough for clients that read it."""
        return (f"[    0.000000] ecsd simulated machine for server {server_id}\n"
                "[    0.512000] Run /sbin/init as init process\n"
                "[    1.024000] systemd[1]: Reached target Multi-User System.\n")

    def memory_budget(self) -> int | None:
        """The memory (MB) the "running" servers may be given together (``ECSD_SIM_MEMORY_BUDGET_MB``), so
        that admission by memory (domain/capacity.py) can be tried without QEMU; None (the default): no limit."""
        return self.memory_budget_mb

    async def remote_console(self, server_id: str) -> str | None:
        """No display (drivers/base.py, RemoteConsoles): ecsd's simulated console page stands in."""
        return None

    def __init__(self, delay: float = 0.3, disk_dir: str | None = None, oplog: str | None = None,
                 memory_budget_mb: int | None = None) -> None:
        self.delay = delay
        self.memory_budget_mb = memory_budget_mb
        self.disk_dir = disk_dir
        if disk_dir:
            os.makedirs(disk_dir, exist_ok=True)
        self._oplog = open(oplog, "a", buffering=1, encoding="utf-8") if oplog else None  # noqa: SIM115
        self._seq = itertools.count()
        self.calls = 0
        # Cleared: every operation waits until it is set again (tests hold jobs in flight this way;
        # a threading.Event because tests run in another thread than the event loop).
        self.running = threading.Event()
        self.running.set()
        # volume id -> the fault its image declared (so that later operations on the disk can fail too)
        self._faulty: dict[str, str] = {}
        # Servers whose simulated machine stopped on its own (power_off), until they are started again.
        self._dead: set[str] = set()

    async def _spend(self, op: str = "", *targets: str) -> None:
        self.calls += 1
        while not self.running.is_set():
            await asyncio.sleep(0.002)
        if self._oplog is None:
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            return
        seq = next(self._seq)
        self._log(seq, "start", op, targets)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        self._log(seq, "end", op, targets)

    def _log(self, seq: int, phase: str, op: str, targets: tuple[str, ...]) -> None:
        assert self._oplog is not None
        self._oplog.write(json.dumps({"pid": os.getpid(), "seq": seq, "phase": phase, "op": op,
                                      "targets": list(targets), "t": time.time()}) + "\n")

    def _disk_path(self, volume_id: str) -> str | None:
        if not self.disk_dir:
            return None
        if not _ID.match(volume_id):
            raise DriverError(f"invalid volume id {volume_id!r}")
        return os.path.join(self.disk_dir, volume_id)

    def disks(self) -> list[str]:
        return sorted(os.listdir(self.disk_dir)) if self.disk_dir else []

    def reset(self) -> None:
        """Forget what earlier operations left (faulty disks, machines that stopped on their own)."""
        self._faulty.clear()
        self._dead.clear()
        self.running.set()

    def hold(self) -> None:
        """Operations started from now on wait until :meth:`release`."""
        self.running.clear()

    def release(self) -> None:
        self.running.set()

    async def create_disk(self, volume_id: str, source: DiskSource | None, size_gb: int) -> None:
        await self._spend("create_disk", volume_id)
        fault = source.properties.get(FAULT_KEY) if source is not None else None
        if fault == "create_disk":
            raise DriverError(f"image {source.image_id} cannot be read (simulated fault)")
        if fault:
            self._faulty[volume_id] = fault
        path = self._disk_path(volume_id)
        if path:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))

    async def delete_disk(self, volume_id: str) -> None:
        await self._spend("delete_disk", volume_id)
        self._faulty.pop(volume_id, None)
        path = self._disk_path(volume_id)
        if path and os.path.exists(path):
            os.unlink(path)

    async def inject(self, volume_id: str, what: Injection) -> None:
        await self._spend("inject", volume_id)
        if self._faulty.get(volume_id) == "inject":
            raise DriverError("the file system of the new disk is not writable (simulated fault)")

    async def attach(self, server_id: str, volume_id: str, device: str) -> None:
        await self._spend("attach", server_id, volume_id)

    async def detach(self, server_id: str, volume_id: str) -> None:
        await self._spend("detach", server_id, volume_id)

    async def start(self, server_id: str, boot_volume: str | None = None) -> None:
        await self._spend("start", server_id)
        self._dead.discard(server_id)
        if boot_volume is not None and self._faulty.get(boot_volume) == "start":
            raise DriverError("the server did not boot from its new disk (simulated fault)")

    async def stop(self, server_id: str, hard: bool = False) -> None:
        await self._spend("stop", server_id)

    async def reboot(self, server_id: str, hard: bool = False) -> None:
        await self._spend("reboot", server_id)

    async def destroy(self, server_id: str) -> None:
        await self._spend("destroy", server_id)
        self._dead.discard(server_id)

    async def set_flavor(self, server_id: str, vcpus: int, ram_mb: int) -> None:
        await self._spend("set_flavor", server_id)

    async def plug_nic(self, server_id: str, port_id: str, mac: str, ip: str | None = None,
                       network: str | None = None) -> None:
        await self._spend("plug_nic", server_id, port_id)

    async def unplug_nic(self, server_id: str, port_id: str) -> None:
        await self._spend("unplug_nic", server_id, port_id)

    def power_off(self, server_id: str) -> None:
        """The guest shuts itself down (or its machine dies): what a real host reports on its own."""
        self._dead.add(server_id)

    async def dead_servers(self) -> list[str]:
        """Servers started here whose machine is gone (drivers/local has the real one)."""
        return sorted(self._dead)
