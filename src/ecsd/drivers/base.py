"""The compute driver interface. Every method is idempotent: a step resumed after a crash calls it again.

Ids (server, volume) are chosen by the domain before a step runs and kept in the job's params, so a
repeated call names the same resource: "create disk V" when V exists is a no-op, "delete disk V"
when V is gone is a no-op, "attach V" when attached is a no-op. ``attach`` and ``detach`` work on a running machine too
(hot-plug) and on a stopped one (the disk is part of its next start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# An image property naming the operation that fails on purpose with the simulated driver
# (``create_disk``, ``inject`` or ``start``): the fault images of docs/testing-with-ecsd.md.
FAULT_KEY = "__ecsd_sim_fault"


class DriverError(Exception):
    """The backend refused or failed an operation; the job fails with the step's ECS error code."""


@dataclass(frozen=True)
class DiskSource:
    """The image a system disk is created from, as the driver needs it."""

    image_id: str
    disk_format: str
    min_disk: int
    properties: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Injection:
    """What goes into a new system disk so that the owner can log in (images without Cloud-Init too)."""

    public_keys: tuple[str, ...] = ()
    admin_pass: str | None = None
    user_data: bytes | None = None


class ComputeDriver(Protocol):
    name: str
    # Which images this driver can make a bootable system disk from. ``boot_property``: a property
    # that every such image carries (None: any image); listings show only those images.
    # ``unusable_image(properties)``: why this image cannot be booted here, or None; acceptance
    # refuses such an image with Ecs.0007 (domain/images.py: check_boot_image).
    boot_property: str | None

    def unusable_image(self, properties: Mapping[str, Any]) -> str | None: ...

    # The text of the server's console (its current or last boot); "" when there is none. Read-only.
    async def console_output(self, server_id: str) -> str: ...

    # Called once at start-up, before jobs resume: settle what a crash of this process left behind
    # on the host (the local driver ends its recorded helper processes, docs/drivers.md). Idempotent.
    async def recover(self) -> None: ...

    async def create_disk(self, volume_id: str, source: DiskSource | None, size_gb: int) -> None: ...
    # source None: a blank data disk
    async def delete_disk(self, volume_id: str) -> None: ...
    async def inject(self, volume_id: str, what: Injection) -> None: ...
    async def attach(self, server_id: str, volume_id: str, device: str) -> None: ...
    async def detach(self, server_id: str, volume_id: str) -> None: ...
    async def start(self, server_id: str, boot_volume: str | None = None) -> None: ...
    async def stop(self, server_id: str, hard: bool = False) -> None: ...
    async def reboot(self, server_id: str, hard: bool = False) -> None: ...
    async def destroy(self, server_id: str) -> None: ...
    # The vCPUs and RAM (MB) the server's machine gets from its next start on (resize, revert resize).
    async def set_flavor(self, server_id: str, vcpus: int, ram_mb: int) -> None: ...
    # A NIC of the server (its port id, MAC and fixed IP, chosen by the domain, on ``network``: the project
    # and subnet, domain/nics.py driver_network) appears on / leaves its machine.
    async def plug_nic(self, server_id: str, port_id: str, mac: str, ip: str | None = None,
                       network: str | None = None) -> None: ...
    async def unplug_nic(self, server_id: str, port_id: str) -> None: ...


class RemoteConsoles(Protocol):
    """An optional capability of a driver: a remote (VNC) console of a running server.

    ``remote_console(server_id)``: the URL of the server's own noVNC page, or None when its machine has
    no display (the simulated driver: the API then answers with ecsd's simulated console page,
    domain/consoles.py). A driver without the method has no remote consoles (the API answers Ecs.0321).
    """

    async def remote_console(self, server_id: str) -> str | None: ...


def remote_consoles(driver: Any) -> RemoteConsoles | None:
    """The driver if it serves remote consoles, else None."""
    return driver if callable(getattr(driver, "remote_console", None)) else None
