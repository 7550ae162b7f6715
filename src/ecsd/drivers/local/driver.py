"""LocalDriver: the ComputeDriver that really does it on this host, with QEMU.

How the protocol maps onto files and processes (every method idempotent, ids from the domain):

==============  ==================================================================================
create_disk     ``disks/<id>.qcow2``: an overlay on the image's file, sized max(size, image), file
                system grown; ``source=None``: a blank disk
delete_disk     remove the file (refused while a running server uses it)
inject          key pair / password / user data into the disk's ext4 (debugfs on a raw view)
attach/detach   record the disk at a device in ``servers/<id>/server.json``; a running server gets it
                hot-plugged (QMP ``blockdev-add`` + ``device_add``) or unplugged (``device_del``, wait
                until the guest let it go, ``blockdev-del``): hotplug.py
set_flavor      record vCPUs and RAM in server.json: the next start uses them (admission: memory budget)
plug/unplug_nic record the NIC (port id, MAC, fixed IP, network, PCI slot) in server.json; a running
                server gets it hot-plugged or unplugged: server_nics.py, network.py
start           boot a QEMU process from the attached disks with the image's own kernel (partitions.py)
                or the driver's kernel and initramfs, on the server's networks, and return once the
                guest has come up: on its network, or its console (else kill it and fail)
stop            ACPI power-down, ``quit`` after the grace period (``hard``: at once)
reboot          stop, then start with the same disks
destroy         stop hard, remove the server's directory, socket, logs
==============  ==================================================================================

Limits (:class:`LocalOptions`, from ``ECSD_LOCAL_*``): the memory budget of the running servers, the
largest disk, the network mode, the boot check's bounds. See docs/drivers.md.

After a crash, :meth:`LocalDriver.recover` (run at start-up, before jobs resume) ends the helper
processes a killed ecsd left behind (helpers.py); servers keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ecsd.drivers.base import DiskSource, DriverError, Injection
from ecsd.drivers.local import boot, hotplug, images, partitions, proc
from ecsd.drivers.local import inject as injection
from ecsd.drivers.local import network as net
from ecsd.drivers.local.disks import DiskStore, fuse_usable
from ecsd.drivers.local.helpers import Helpers, start_time
from ecsd.drivers.local.paths import Layout, check_device, check_id
from ecsd.drivers.local.qemu import Hypervisor, OwnKernel, probe_kvm
from ecsd.drivers.local.server_nics import ServerNics

log = logging.getLogger("ecsd.driver.local")

STATE = "server.json"
PAUSED = "test-paused"
# Where ECSD_LOCAL_TEST_PAUSE can hold the driver: each after the method's effect, before it returns
# (create_disk and inject: while the disk's FUSE view is open; start: QEMU launched, boot not confirmed).
PAUSE_POINTS = ("stop", "create_disk", "inject", "detach", "attach", "delete_disk", "start")
# Settings of earlier versions, and what took their place.
RETIRED = {"MAX_SERVERS": "admission is by memory, ECSD_LOCAL_MEMORY_BUDGET_MB (docs/drivers.md)",
           "MAX_MEMORY_MB": "servers get their flavor's RAM; admission is by ECSD_LOCAL_MEMORY_BUDGET_MB"}
TOOLS = ("qemu-system-x86_64", "qemu-img", "debugfs", "dumpe2fs", "e2fsck", "resize2fs", "sfdisk")


def _default_memory_budget() -> int:
    """Half of this host's memory (MB): what servers may be given together by default."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return max(256, int(line.split()[1]) // 1024 // 2)
    except (OSError, ValueError, IndexError):
        pass
    return 2048


@dataclass
class LocalOptions:
    """The local driver's settings and limits; each can be set with ``ECSD_LOCAL_<NAME>``."""

    memory_mb: int = 256              # -m of a server whose flavor was never set (set_flavor)
    vcpus: int = 1                    # -smp of a server whose flavor was never set
    # The memory (MB) the running servers may be given together: admission at create and start.
    memory_budget_mb: int = field(default_factory=_default_memory_budget)
    max_disk_gb: int = 100            # largest disk create_disk accepts
    accel: str = "auto"               # auto (probe KVM once, else TCG) | tcg | kvm
    network: str = "auto"             # auto (bridge when root, else user) | bridge | user | none (network.py)
    disk_format: str = "auto"         # auto (qcow2 when a FUSE view is possible, else raw) | qcow2 | raw
    kernel: str | None = None         # a prepared kernel + initramfs ...
    initrd: str | None = None
    kernel_deb: str | None = None     # ... or the Debian kernel package to build them from
    boot_marker: str | None = None    # when set, start waits until the console shows this text
    boot_timeout: float = 120.0       # start fails when the guest has not come up by then
    boot_settle: float = 2.0          # without a marker: QEMU must still run this long after the hand-over
    stop_timeout: float = 30.0        # grace period of a soft stop before QMP quit
    test_pause: str | None = None     # tests only: wait forever at this point (see LocalDriver._pause)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalOptions:
        env = os.environ if env is None else env
        for name, instead in RETIRED.items():
            if env.get(f"ECSD_LOCAL_{name}"):
                log.warning("ECSD_LOCAL_%s is no longer read: %s", name, instead)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ECSD_LOCAL_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                values[f.name] = (int(raw) if kind == "int" else float(raw) if kind == "float" else raw)
            except ValueError:
                raise SystemExit(f"ECSD_LOCAL_{f.name.upper()} must be a number, not {raw!r}") from None
        opts = cls(**values)
        opts.check()
        return opts

    def check(self) -> None:
        if self.accel not in ("auto", "tcg", "kvm"):
            raise SystemExit("ECSD_LOCAL_ACCEL must be auto, tcg or kvm")
        if self.disk_format not in ("auto", "qcow2", "raw"):
            raise SystemExit("ECSD_LOCAL_DISK_FORMAT must be auto, qcow2 or raw")
        if self.memory_mb < 64 or self.memory_budget_mb < 64 or self.vcpus < 1 or self.max_disk_gb < 1:
            raise SystemExit("the local driver's limits must be positive (memory at least 64 MB)")
        if self.boot_timeout <= 0 or self.boot_settle < 0:
            raise SystemExit("ECSD_LOCAL_BOOT_TIMEOUT must be positive, ECSD_LOCAL_BOOT_SETTLE not negative")
        if self.test_pause is not None and self.test_pause not in PAUSE_POINTS:
            raise SystemExit(f"ECSD_LOCAL_TEST_PAUSE must be one of {', '.join(PAUSE_POINTS)}")
        if (self.kernel is None) != (self.initrd is None):
            raise SystemExit("ECSD_LOCAL_KERNEL and ECSD_LOCAL_INITRD go together")


def check_host(options: LocalOptions) -> list[str]:
    """What this host lacks for the local driver (empty: it can run)."""
    problems = [f"{t} is missing" for t in TOOLS if proc.which(t) is None]
    if options.disk_format == "qcow2" and not fuse_usable():
        problems.append("qcow2 disks need qemu-storage-daemon, /dev/fuse and root (or use ECSD_LOCAL_DISK_FORMAT=raw)")
    if options.kernel is not None and not (os.path.isfile(options.kernel) and os.path.isfile(options.initrd or "")):
        problems.append("ECSD_LOCAL_KERNEL / ECSD_LOCAL_INITRD do not name files")
    return problems


def _read_json(path: str) -> dict:
    try:
        with open(path) as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: str, value: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(value, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def make_local_driver(settings: Any) -> LocalDriver:
    """The driver for ``--driver local``: root ``DATA_DIR/local``, options from ``ECSD_LOCAL_*``."""
    options = LocalOptions.from_env()
    problems = check_host(options)
    if problems:
        raise SystemExit("the local driver cannot run on this host: " + "; ".join(problems))
    if (options.kernel is None and options.kernel_deb is None and boot.find_kernel_package() is None
            and boot.installed_kernel() is None):
        log.warning("local driver: no kernel of its own (ECSD_LOCAL_KERNEL_DEB): only images that carry their "
                    "own kernel (partitioned cloud images, ecsd images build-demo) can boot, under TCG")
    return LocalDriver(os.path.join(settings.data_dir, "local"), options)


class LocalDriver(ServerNics):
    name = "local"
    # Only images imported into this host's image store (``ecsd images import``) have a file to boot.
    boot_property = images.FILE_KEY

    def unusable_image(self, properties: Mapping[str, Any]) -> str | None:
        try:
            images.source_file(self.layout.images, DiskSource("", "", 0, dict(properties)))
        except DriverError as exc:
            return str(exc)
        return None

    def __init__(self, root: str, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self.layout = Layout(root)
        self.layout.ensure()
        fmt = self.options.disk_format
        if fmt == "auto":
            fmt = "qcow2" if fuse_usable() else "raw"
        self.helpers = Helpers(self.layout.helpers, self.layout.tmp)
        self.disks = DiskStore(self.layout, fmt, self.options.max_disk_gb, self.helpers, self._pause)
        self.hv = Hypervisor(self.layout, memory_mb=self.options.memory_mb, vcpus=self.options.vcpus,
                             stop_timeout=self.options.stop_timeout)
        self.net_mode, why = net.choose_mode(self.options.network)
        self.networks = net.Networks(self.layout.networks)
        if why is not None:
            log.warning("local driver: no guest bridges (%s): servers get user-mode networking, SSH through a "
                        "port on 127.0.0.1 (each server's metadata ecsd_ssh_forward; docs/drivers.md)", why)
        self._kit: boot.BootKit | None = None
        self._accel: str | None = None
        self._start_lock: asyncio.Lock | None = None
        self._recovered = False
        self._recover_lock: asyncio.Lock | None = None
        self.timings: list[tuple[str, str, float]] = []     # (operation, id, seconds), newest last

    # --- start-up after a crash, and the test hook ----------------------------------------------------

    async def recover(self) -> None:
        """End what a killed ecsd left behind, before jobs resume: its helper processes (FUSE views of
        disks, a KVM probe), their FUSE mounts and records (helpers.py), and mount points no live helper
        serves. Servers (QEMU) are not touched. Idempotent; also run by the first call that needs it."""
        if self._recovered:
            return
        if self._recover_lock is None:
            self._recover_lock = asyncio.Lock()
        async with self._recover_lock:
            if self._recovered:
                return
            reaped = await self.helpers.reap()
            swept = await self.disks.sweep_views()
            if reaped or swept:
                log.warning("local driver: ended %d helper process(es) and removed %d stale mount point(s) "
                            "left by a previous ecsd", reaped, swept)
            await self._repair_networks()
            self._recovered = True

    async def _pause(self, point: str) -> None:
        """Tests only (ECSD_LOCAL_TEST_PAUSE=<point>, unset by default): at ``point`` write its name to
        ``<root>/test-paused`` and wait until the process is killed, so that a crash test can kill ecsd
        exactly there (tests/test_local_crash.py)."""
        if self.options.test_pause != point:
            return
        log.warning("local driver: paused at %s (ECSD_LOCAL_TEST_PAUSE)", point)
        await asyncio.to_thread(_write_text, os.path.join(self.layout.root, PAUSED), point)
        await asyncio.Event().wait()

    @contextlib.contextmanager
    def _timed(self, op: str, ident: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - t0
            self.timings.append((op, ident, took))
            del self.timings[:-200]
            log.info("%s %s took %.3f s", op, ident, took)

    # --- server records ---------------------------------------------------------------------------

    def _state_path(self, server_id: str) -> str:
        return os.path.join(self.layout.server_dir(server_id), STATE)

    def _load(self, server_id: str) -> dict[str, Any]:
        try:
            with open(self._state_path(server_id)) as fh:
                state = json.load(fh)
        except FileNotFoundError:
            return {"disks": {}, "running": False}
        except ValueError as exc:
            raise DriverError(f"the record of server {server_id} is damaged: {exc}") from exc
        state.setdefault("disks", {})
        state.setdefault("running", False)
        return state

    def _save(self, server_id: str, state: dict[str, Any]) -> None:
        os.makedirs(self.layout.server_dir(server_id), mode=0o700, exist_ok=True)
        _write_json(self._state_path(server_id), state)

    def _server_ids(self) -> list[str]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.layout.servers):
                try:
                    out.append(check_id(name))
                except DriverError:
                    continue
        return out

    def _holder(self, volume_id: str) -> str | None:
        """The server that has ``volume_id`` attached, if any."""
        for sid in self._server_ids():
            with contextlib.suppress(DriverError):
                if volume_id in self._load(sid)["disks"].values():
                    return sid
        return None

    def _check_not_running_with(self, volume_id: str) -> None:
        holder = self._holder(volume_id)
        if holder is not None and self.hv.pid(holder) is not None:
            raise DriverError(f"disk {volume_id} is in use by running server {holder}")

    # --- disks ----------------------------------------------------------------------------------------

    async def create_disk(self, volume_id: str, source: DiskSource | None, size_gb: int) -> None:
        check_id(volume_id, "volume id")
        image = None if source is None else images.source_file(self.layout.images, source)
        await self.recover()
        with self._timed("create_disk", volume_id):
            await self.disks.create(volume_id, image, size_gb)

    async def delete_disk(self, volume_id: str) -> None:
        check_id(volume_id, "volume id")
        self._check_not_running_with(volume_id)
        await self.recover()
        with self._timed("delete_disk", volume_id):
            await self.disks.delete(volume_id)
        await self._pause("delete_disk")

    async def inject(self, volume_id: str, what: Injection) -> None:
        check_id(volume_id, "volume id")
        self._check_not_running_with(volume_id)
        await self.recover()
        with self._timed("inject", volume_id):
            async with self.disks.raw_view(volume_id) as view:
                root = await asyncio.to_thread(partitions.root_of, view)
                await injection.inject(root.spec(view), what, self.layout.tmp)
                await self._pause("inject")           # while the FUSE view (qcow2) holds the disk

    async def attach(self, server_id: str, volume_id: str, device: str) -> None:
        """Record the disk at ``device``; hot-plug it when the server runs. Idempotent: attaching the
        same disk at the same device again finishes an interrupted hot-plug or does nothing."""
        check_id(server_id, "server id")
        check_id(volume_id, "volume id")
        check_device(device)
        state = self._load(server_id)
        found = self.disks.find(volume_id)
        if state["disks"].get(device) != volume_id:
            if found is None:
                raise DriverError(f"disk {volume_id} does not exist")
            if device in state["disks"]:
                raise DriverError(f"{device} of server {server_id} already holds disk {state['disks'][device]}")
            holder = self._holder(volume_id)
            if holder is not None:
                raise DriverError(f"disk {volume_id} is attached to server {holder}")
        if self.hv.pid(server_id) is not None:
            if found is None:
                raise DriverError(f"disk {volume_id} does not exist")
            with self._timed("hotplug", volume_id):
                await hotplug.plug(self.layout.qmp_socket(server_id), volume_id, found[0], found[1], device)
        if state["disks"].get(device) != volume_id:
            state["disks"][device] = volume_id
            self._save(server_id, state)
        await self._pause("attach")

    async def detach(self, server_id: str, volume_id: str) -> None:
        """Forget the disk; unplug it first when the server runs (the guest must release it). Idempotent."""
        check_id(server_id, "server id")
        check_id(volume_id, "volume id")
        state = self._load(server_id)
        devices = [d for d, v in state["disks"].items() if v == volume_id]
        if not devices:
            return
        if self.hv.pid(server_id) is not None:
            with self._timed("unplug", volume_id):
                await hotplug.unplug(self.layout.qmp_socket(server_id), volume_id)
        for d in devices:
            del state["disks"][d]
        self._save(server_id, state)
        await self._pause("detach")

    async def plugged(self, server_id: str) -> set[str]:
        """The volumes the server's running QEMU has (its QMP block nodes); empty when it is off."""
        if self.hv.pid(check_id(server_id, "server id")) is None:
            return set()
        return await hotplug.plugged(self.layout.qmp_socket(server_id))

    # --- flavor and NICs ---------------------------------------------------------------------------------

    def machine_size(self, server_id: str) -> tuple[int, int]:
        """(vCPUs, MB) of the server's next start: its flavor's (set_flavor), else the defaults. vCPUs
        beyond the host's CPUs are allowed (QEMU runs each as a thread, as a cloud overcommits CPUs)."""
        flavor = self._load(server_id).get("flavor")
        if not flavor:
            return self.options.vcpus, self.options.memory_mb
        return max(1, min(int(flavor["vcpus"]), 255)), max(64, int(flavor["ram_mb"]))

    def memory_budget(self) -> int | None:
        """The memory (MB) this host gives its running servers together (``ECSD_LOCAL_MEMORY_BUDGET_MB``):
        the domain admits a create or start only while the servers it counts fit (domain/capacity.py)."""
        return self.options.memory_budget_mb

    def memory_in_use(self, but: str | None = None) -> int:
        """The memory (MB) the running QEMU processes were given (recorded at launch), ``but`` one server."""
        total = 0
        for sid in self.running():
            if sid != but:
                total += int(self._load_quietly(sid).get("memory_mb") or self.options.memory_mb)
        return total

    def vnc_socket(self, server_id: str) -> str | None:
        """The unix socket of the running server's VNC display (QEMU's own VNC server), or None."""
        if self.hv.pid(check_id(server_id, "server id")) is None:
            return None
        path = self.layout.vnc_socket(server_id)
        return path if os.path.exists(path) else None

    async def set_flavor(self, server_id: str, vcpus: int, ram_mb: int) -> None:
        check_id(server_id, "server id")
        if vcpus < 1 or ram_mb < 1:
            raise DriverError(f"a flavor of {vcpus} vCPUs and {ram_mb} MB cannot run")
        state = self._load(server_id)
        if state.get("flavor") != {"vcpus": vcpus, "ram_mb": ram_mb}:
            state["flavor"] = {"vcpus": vcpus, "ram_mb": ram_mb}
            self._save(server_id, state)

    # --- power ----------------------------------------------------------------------------------------

    async def boot_kit(self) -> boot.BootKit:
        if self._kit is None:
            o = self.options
            if o.kernel and o.initrd:
                try:
                    ours = await asyncio.to_thread(boot.initrd_announces_handover, o.initrd)
                except OSError:
                    ours = False
                self._kit = boot.BootKit(os.path.abspath(o.kernel), os.path.abspath(o.initrd), "configured",
                                         boot.HANDOVER if ours else None)
            else:
                known = boot.existing_kit(self.layout.boot) if o.kernel_deb is None else None
                if known is not None and known.handover is not None:
                    self._kit = known
                else:
                    try:
                        self._kit = await asyncio.to_thread(boot.build_boot_kit, self.layout.boot, o.kernel_deb)
                    except DriverError:
                        if known is None:
                            raise
                        self._kit = known       # built from an older /init, and the kernel is gone
            if self._kit.handover is None:
                log.warning("local driver: the initramfs %s does not announce the hand-over to the image's init; "
                            "start counts ECSD_LOCAL_BOOT_SETTLE from QEMU's start (set ECSD_LOCAL_BOOT_MARKER "
                            "for a stronger check)", self._kit.initrd)
        return self._kit

    async def accel(self) -> str:
        """tcg or kvm: as configured, or (auto) what a probe found, remembered per host kernel."""
        if self._accel is None:
            if self.options.accel != "auto":
                self._accel = self.options.accel
            else:
                self._accel = await self._probed_accel()
        return self._accel

    async def _probed_accel(self) -> str:
        try:
            kit = await self.boot_kit()
        except DriverError as exc:
            log.warning("local driver: no kernel to probe KVM with (%s); servers run under TCG", exc)
            return "tcg"
        key = f"{os.uname().release} {kit.release}"
        memo = os.path.join(self.layout.boot, "accel.json")
        known = _read_json(memo)
        if known.get("key") == key and known.get("accel") in ("tcg", "kvm"):
            return known["accel"]
        found = "kvm" if await probe_kvm(kit, helpers=self.helpers) else "tcg"
        log.warning("local driver: KVM %s on this host; servers run under %s",
                    "works" if found == "kvm" else "is not usable", found.upper())
        with contextlib.suppress(OSError):
            _write_json(memo, {"key": key, "accel": found})
        return found

    def running(self) -> list[str]:
        return [sid for sid in self._server_ids() if self.hv.pid(sid) is not None]

    async def start(self, server_id: str, boot_volume: str | None = None) -> None:
        check_id(server_id, "server id")
        if boot_volume is not None:
            check_id(boot_volume, "volume id")
        await self.recover()
        if self.hv.pid(server_id) is None:
            with self._timed("start", server_id):
                await self._launch(server_id, boot_volume)
        await self._pause("start")
        await self._confirm_up(server_id)

    async def _confirm_up(self, server_id: str) -> None:
        """Return once the server's guest has come up (qemu.Hypervisor.wait_up: the boot marker, or the
        hand-over to the image's init and QEMU still running ``boot_settle`` s later, within
        ``boot_timeout``); else kill it and raise DriverError. A QEMU process confirmed before (same
        pid and start time, kept in server.json) is not checked again: start stays idempotent."""
        pid = self.hv.pid(server_id)
        identity = [pid, start_time(pid)] if pid is not None else None
        state = self._load(server_id)
        if identity is not None and state.get("up") == identity:
            return
        # The hand-over text of the initramfs this QEMU booted (None: launched by an older ecsd, or an
        # initramfs that does not print it; then the settle interval counts from now).
        handover = state.get("handover")
        o = self.options
        with self._timed("boot", server_id):
            try:
                await self.hv.wait_up(server_id, handover=handover, marker=o.boot_marker, settle=o.boot_settle,
                                      timeout=o.boot_timeout, ready=self._ready_check(state))
            except DriverError:
                await self.hv.stop(server_id, hard=True)
                self._set_running(server_id, False)
                raise
        state = self._load(server_id)
        state.update(running=True, up=identity)
        self._save(server_id, state)

    async def _launch(self, server_id: str, boot_volume: str | None) -> None:
        state = self._load(server_id)
        attached = state["disks"]
        if boot_volume is not None and boot_volume not in attached.values():
            raise DriverError(f"disk {boot_volume} is not attached to server {server_id}")
        if not attached:
            raise DriverError(f"server {server_id} has no disk to boot from")
        system = boot_volume or attached.get("/dev/vda") or attached[min(attached)]
        order = [system] + [attached[d] for d in sorted(attached) if attached[d] != system]
        device_of = {v: d for d, v in attached.items()}
        disks = []
        for vid in order:
            found = self.disks.find(vid)
            if found is None:
                raise DriverError(f"disk {vid} of server {server_id} does not exist")
            disks.append((found[0], found[1], vid, device_of[vid]))
        own, sshd = await self._guest_kernel(server_id, system)
        kit = await self.boot_kit() if own is None else None      # the driver's kernel: whole-disk images only
        accel = await self.accel()
        nics, facts = await self._nic_args(server_id, state)
        vcpus, memory_mb = self.machine_size(server_id)
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            used = self.memory_in_use(but=server_id)
            if used + memory_mb > self.options.memory_budget_mb:
                raise DriverError(f"this host's memory budget is {self.options.memory_budget_mb} MB; running servers "
                                  f"have {used} MB, this one needs {memory_mb} MB")
            await self.hv.launch(server_id, disks, kit, accel, vcpus, memory_mb, own, nics)
        state.update(running=True, up=None, handover=kit.handover if kit else None, memory_mb=memory_mb, vcpus=vcpus,
                     sshd=sshd, kernel=own.append if own else None, **facts)
        self._save(server_id, state)

    async def _guest_kernel(self, server_id: str, volume_id: str) -> tuple[OwnKernel | None, bool]:
        """The image's own kernel and initramfs, copied out of the system disk into the server's directory,
        with the command line to boot them (None: a whole-disk image without a kernel boots the driver's
        kit); and whether the image has an SSH server (the boot check waits for it). partitions.py."""
        sdir = self.layout.server_dir(server_id)
        os.makedirs(sdir, mode=0o700, exist_ok=True)
        kernel_path, initrd_path = os.path.join(sdir, "vmlinuz"), os.path.join(sdir, "initrd.img")
        async with self.disks.raw_view(volume_id) as view:
            def look() -> tuple[partitions.FileSystem, partitions.Kernel | None, bool]:
                root = partitions.root_of(view)
                found = partitions.kernel_of(view, root)
                sshd = any(partitions.exists(root.spec(view), p) for p in ("/usr/sbin/sshd", "/sbin/sshd"))
                if found is not None:
                    partitions.dump(view, found.fs, found.kernel, kernel_path)
                    partitions.dump(view, found.fs, found.initrd, initrd_path)
                return root, found, sshd

            with self._timed("read_kernel", server_id):
                root, found, sshd = await asyncio.to_thread(look)
        if found is None:
            if root.number is not None:
                raise DriverError("the image is partitioned but its root file system has no /boot/vmlinuz-* "
                                  "with its initramfs: the local driver cannot boot it")
            return None, sshd
        append = f"root=UUID={root.uuid} ro console=tty0 console=ttyS0,115200 panic=-1"
        return OwnKernel(kernel_path, initrd_path, append), sshd

    def _set_running(self, server_id: str, running: bool) -> None:
        if os.path.isdir(self.layout.server_dir(server_id)):
            state = self._load(server_id)
            if state["running"] != running:
                state["running"] = running
                self._save(server_id, state)

    async def stop(self, server_id: str, hard: bool = False) -> None:
        check_id(server_id, "server id")
        with self._timed("stop_hard" if hard else "stop", server_id):
            await self.hv.stop(server_id, hard)
        self._set_running(server_id, False)
        await self._pause("stop")

    async def reboot(self, server_id: str, hard: bool = False) -> None:
        check_id(server_id, "server id")
        await self.stop(server_id, hard)
        await self.start(server_id)

    async def destroy(self, server_id: str) -> None:
        """Kill the server's QEMU, remove its TAP devices, its directory (record, logs) and QMP socket,
        then its leases (and a network it was the last on). Idempotent; what a crash in between leaves
        (a lease, a network nobody uses) is settled by the next change of that network or at start-up."""
        check_id(server_id, "server id")
        with self._timed("destroy", server_id):
            nics = net.nics_of(self._load_quietly(server_id))
            await self.hv.stop(server_id, hard=True)
            if self.net_mode == "bridge":
                for nic in nics:
                    await self.networks.unplug_tap(nic)
            shutil.rmtree(self.layout.server_dir(server_id), ignore_errors=True)
            for network in dict.fromkeys(n.network for n in nics if n.network):
                if self.net_mode == "bridge":
                    await self._refresh_network(network)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.layout.qmp_socket(server_id))
            self.layout.release_run()

    # --- reconciliation and inspection -------------------------------------------------------------

    async def dead_servers(self) -> list[str]:
        """Servers this driver started and never stopped whose QEMU process is gone (crashed, killed,
        powered off from inside the guest, host rebooted). The caller decides what they become."""
        return [sid for sid in self._server_ids()
                if self._load_quietly(sid).get("running") and self.hv.pid(sid) is None]

    def _load_quietly(self, server_id: str) -> dict[str, Any]:
        try:
            return self._load(server_id)
        except DriverError:
            return {}

    def console_log(self, server_id: str) -> str:
        """The serial console of the server's current (or last) boot."""
        return self.hv.console(server_id)

    async def console_output(self, server_id: str) -> str:
        """The text of that console (its last MiB), read off the event loop."""
        path = self.console_log(check_id(server_id))

        def read() -> str:
            try:
                with open(path, "rb") as fh:
                    fh.seek(max(0, os.path.getsize(path) - 1024 * 1024))
                    return fh.read().decode("utf-8", "replace")
            except OSError:
                return ""

        return await asyncio.to_thread(read)

    async def wait_console(self, server_id: str, text: str, timeout: float = 120.0) -> None:
        await self.hv.wait_console(server_id, text, timeout)
