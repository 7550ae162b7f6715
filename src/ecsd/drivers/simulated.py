"""The simulated driver: no real machines, a configurable delay per operation, injectable faults.

State lives in the domain's tables (volumes, servers); this driver only spends time and can fail on
purpose. An image whose properties carry ``__ecsd_sim_fault`` makes the named operation fail
(``create_disk``, ``inject`` or ``start``), so that failure paths are reachable through the public
API, as a corrupt image on the cloud would make them.
"""

from __future__ import annotations

import asyncio
import threading

from ecsd.drivers.base import DiskSource, DriverError, Injection

FAULT_KEY = "__ecsd_sim_fault"


class SimulatedDriver:
    name = "simulated"

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay
        self.calls = 0
        # Cleared: every operation waits until it is set again (tests hold jobs in flight this way;
        # a threading.Event because tests run in another thread than the event loop).
        self.running = threading.Event()
        self.running.set()
        # volume id -> the fault its image declared (so that later operations on the disk can fail too)
        self._faulty: dict[str, str] = {}

    async def _spend(self) -> None:
        self.calls += 1
        while not self.running.is_set():
            await asyncio.sleep(0.002)
        if self.delay > 0:
            await asyncio.sleep(self.delay)

    def hold(self) -> None:
        """Operations started from now on wait until :meth:`release`."""
        self.running.clear()

    def release(self) -> None:
        self.running.set()

    async def create_disk(self, volume_id: str, source: DiskSource | None, size_gb: int) -> None:
        await self._spend()
        fault = source.properties.get(FAULT_KEY) if source is not None else None
        if fault == "create_disk":
            raise DriverError(f"image {source.image_id} cannot be read (simulated fault)")
        if fault:
            self._faulty[volume_id] = fault

    async def delete_disk(self, volume_id: str) -> None:
        await self._spend()
        self._faulty.pop(volume_id, None)

    async def inject(self, volume_id: str, what: Injection) -> None:
        await self._spend()
        if self._faulty.get(volume_id) == "inject":
            raise DriverError("the file system of the new disk is not writable (simulated fault)")

    async def attach(self, server_id: str, volume_id: str, device: str) -> None:
        await self._spend()

    async def detach(self, server_id: str, volume_id: str) -> None:
        await self._spend()

    async def start(self, server_id: str, boot_volume: str | None = None) -> None:
        await self._spend()
        if boot_volume is not None and self._faulty.get(boot_volume) == "start":
            raise DriverError("the server did not boot from its new disk (simulated fault)")

    async def stop(self, server_id: str, hard: bool = False) -> None:
        await self._spend()

    async def reboot(self, server_id: str, hard: bool = False) -> None:
        await self._spend()

    async def destroy(self, server_id: str) -> None:
        await self._spend()
