"""Servers as ``qemu-system-x86_64`` processes, one per running server, controlled over QMP.

Each server runs daemonized (``-daemonize -pidfile``), so servers outlive a restart of ecsd as they
would outlive one of a cloud's control plane; the driver finds them again by their pid file and
checks ``/proc/<pid>`` (not a zombie, and its command line names the server) before trusting it.
No network device, no display: the serial console goes to ``console.log`` in the server's
directory (the previous boot's to ``console.prev.log``), QMP listens on a unix socket.

Acceleration: TCG unless asked for KVM or a probe proved that KVM works on this host (a probe boot
of the driver's kernel with ``-cpu host`` that must print a marker and power off). On machines
where ``/dev/kvm`` exists but QEMU cannot use it, the probe fails fast or times out and TCG is used;
``accel=tcg`` is always passed explicitly, never ``kvm:tcg``. Under TCG a server gets one vCPU.

Start returns once the guest has come up (:meth:`Hypervisor.wait_up`): the console shows the boot
marker when one is configured, else the initramfs's hand-over line and QEMU still runs a settle
interval later. ``panic=-1`` with ``-no-reboot`` turns a kernel panic (an init that exits or cannot be
run: "Attempted to kill init!") into the end of the QEMU process, so such a boot fails there.

Stop is ACPI (QMP ``system_powerdown``, sent again every few seconds because a guest that is still
booting ignores it) until a grace period ends, then ``quit``; a hard stop is ``quit`` at once, and a
process that survives ``quit`` gets SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import hotplug, proc
from ecsd.drivers.local.boot import PROBE_OK, BootKit
from ecsd.drivers.local.helpers import Helpers
from ecsd.drivers.local.paths import Layout, qemu_escape

CONSOLE = "console.log"
PANIC = b"Kernel panic - not syncing"
PREVIOUS_CONSOLE = "console.prev.log"
PIDFILE = "qemu.pid"
ERRFILE = "qemu.err"
NIC_BUS = "nics"
KVM_CPU = "host"


@dataclass(frozen=True)
class OwnKernel:
    """The image's own kernel and initramfs (copied out of its disk) and the command line to boot them."""

    kernel: str
    initrd: str
    append: str


# --- QMP --------------------------------------------------------------------------------------------------

async def _message(reader: asyncio.StreamReader) -> dict:
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError
        msg = json.loads(line)
        if "event" not in msg:
            return msg


async def qmp(socket_path: str, command: str, arguments: dict | None = None, timeout: float = 5.0) -> dict:
    """Run one QMP command; the reply's ``return``. EOF after ``quit`` counts as success."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket_path), timeout)
    except (OSError, TimeoutError) as exc:
        raise DriverError(f"cannot reach the server's QMP socket: {exc}") from exc
    try:
        async def talk() -> dict:
            await _message(reader)                                    # greeting
            writer.write(b'{"execute": "qmp_capabilities"}\n')
            await _message(reader)
            body = {"execute": command, **({"arguments": arguments} if arguments else {})}
            writer.write(json.dumps(body).encode() + b"\n")
            try:
                reply = await _message(reader)
            except EOFError:
                if command == "quit":
                    return {}
                raise
            if "error" in reply:
                raise DriverError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return", {})

        return await asyncio.wait_for(talk(), timeout)
    except (OSError, EOFError, TimeoutError, ValueError) as exc:
        raise DriverError(f"QMP {command} failed: {exc or type(exc).__name__}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# --- processes ------------------------------------------------------------------------------------------

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read()
    except OSError:
        return b""


def _open_write(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def _alive(pid: int, marker: bytes) -> bool:
    """``pid`` runs (not a zombie) and is the QEMU of the server whose name is ``marker``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X") and marker in cmdline.split(b"\0")


class Hypervisor:
    def __init__(self, layout: Layout, *, memory_mb: int, vcpus: int, stop_timeout: float,
                 powerdown_interval: float = 5.0) -> None:
        self.layout = layout
        self.memory_mb = memory_mb
        self.vcpus = vcpus
        self.stop_timeout = stop_timeout
        self.powerdown_interval = powerdown_interval

    @staticmethod
    def _name(server_id: str) -> str:
        return f"ecsd-{server_id}"

    def _file(self, server_id: str, name: str) -> str:
        return os.path.join(self.layout.server_dir(server_id), name)

    def console(self, server_id: str) -> str:
        return self._file(server_id, CONSOLE)

    def pid(self, server_id: str) -> int | None:
        """The pid of the server's running QEMU, or None."""
        try:
            with open(self._file(server_id, PIDFILE)) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid, f"guest={self._name(server_id)}".encode()) else None

    def _cleanup_runtime(self, server_id: str) -> None:
        for path in (self.layout.qmp_socket(server_id), self.layout.vnc_socket(server_id),
                     self._file(server_id, PIDFILE)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def argv(self, server_id: str, disks: list[tuple[str, str, str, str]], kit: BootKit | None, accel: str,
             vcpus: int | None = None, memory_mb: int | None = None, own: OwnKernel | None = None,
             nics: list[list[str]] | None = None) -> list[str]:
        """The QEMU command line; ``disks`` are (path, format, volume id, device), the system disk first;
        ``vcpus`` / ``memory_mb``: the server's flavor (default: the driver's); ``own``: the image's own
        kernel, initramfs and command line instead of the driver's kit; ``nics``: the ``-netdev`` and
        ``-device`` arguments of each NIC (network.py), on a PCI bridge of their own at slot 0x1f, so
        that they never take a disk's slot (hotplug.py); ``[]``: the bridge alone (NICs hot-plugged later);
        None: no NIC bus at all (``ECSD_LOCAL_NETWORK=none``)."""
        sdir = self.layout.server_dir(server_id)
        argv = [proc.tool("qemu-system-x86_64"), "-name", f"guest={self._name(server_id)}",
                "-machine", f"pc,accel={accel}", "-smp", str(vcpus or self.vcpus),
                "-m", str(memory_mb or self.memory_mb), "-nodefaults", "-no-user-config", "-display", "none", "-vga", "std",
                "-vnc", f"unix:{qemu_escape(self.layout.vnc_socket(server_id))}",
                "-nic", "none"]
        if own is not None:
            argv += ["-kernel", own.kernel, "-initrd", own.initrd, "-append", own.append]
        elif kit is not None:
            argv += ["-kernel", kit.kernel, "-initrd", kit.initrd,
                     "-append", "console=ttyS0 root=/dev/vda rw panic=-1 quiet"]
        if accel == "kvm":
            argv += ["-cpu", KVM_CPU]
        if nics is not None:             # the bus is there with no NIC too: NICs can be hot-plugged onto it
            argv += ["-device", f"pci-bridge,id={NIC_BUS},chassis_nr=1,bus=pci.0,addr=0x1f"]
            for args in nics:
                argv += args
        for path, fmt, volume_id, device in disks:
            # Named after the volume, at a PCI slot of its device letter, as hot-plug names them
            # (hotplug.py): the guest sees vda, vdb, ... in letter order; the serial is the volume id
            # (cut to 20, as Nova).
            argv += ["-blockdev", hotplug.blockdev_arg(volume_id, path, fmt),
                     "-device", hotplug.device_arg(volume_id, device)]
        qmp_path = qemu_escape(self.layout.qmp_socket(server_id))
        argv += ["-chardev", f"file,id=console0,path={qemu_escape(os.path.join(sdir, CONSOLE))}",
                 "-serial", "chardev:console0",
                 "-chardev", f"socket,id=qmp0,path={qmp_path},server=on,wait=off",
                 "-mon", "chardev=qmp0,mode=control",
                 # entropy for the guest from the start (first-boot SSH host keys wait for it otherwise)
                 "-device", "virtio-rng-pci",
                 "-no-reboot", "-pidfile", os.path.join(sdir, PIDFILE), "-daemonize"]
        return argv

    async def launch(self, server_id: str, disks: list[tuple[str, str, str, str]], kit: BootKit | None, accel: str,
                     vcpus: int | None = None, memory_mb: int | None = None, own: OwnKernel | None = None,
                     nics: list[list[str]] | None = None) -> int:
        """Start the server's QEMU; returns its pid once it runs (QEMU daemonizes after setting up)."""
        sdir = self.layout.server_dir(server_id)
        os.makedirs(sdir, mode=0o700, exist_ok=True)
        log = os.path.join(sdir, CONSOLE)
        if os.path.exists(log):
            os.replace(log, os.path.join(sdir, PREVIOUS_CONSOLE))
        self._cleanup_runtime(server_id)
        self.layout.ensure_run()
        errfile = os.path.join(sdir, ERRFILE)
        err = _open_write(errfile)
        try:
            p = await asyncio.create_subprocess_exec(*self.argv(server_id, disks, kit, accel, vcpus, memory_mb, own, nics),
                                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                     stderr=err, start_new_session=True)
        finally:
            os.close(err)
        try:
            rc = await asyncio.wait_for(p.wait(), 60)
        except TimeoutError:
            p.kill()
            await p.wait()
            raise DriverError("QEMU did not start within 60 s") from None
        if rc != 0:
            self._cleanup_runtime(server_id)
            detail = _read(errfile).decode("utf-8", "replace").strip()
            raise DriverError(f"QEMU refused to start the server: {detail[-400:]}")
        pid = self.pid(server_id)
        if pid is None:
            raise DriverError("QEMU started but exited at once (see the server's console log)")
        return pid

    async def _wait_gone(self, server_id: str, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pid(server_id) is not None:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self, server_id: str, hard: bool = False) -> None:
        """Power the server off (ACPI, then ``quit`` after the grace period; ``hard``: ``quit`` at once)."""
        sock = self.layout.qmp_socket(server_id)
        if self.pid(server_id) is None:
            self._cleanup_runtime(server_id)
            return
        if not hard:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.stop_timeout
            while loop.time() < deadline:
                with contextlib.suppress(DriverError):
                    await qmp(sock, "system_powerdown")
                if await self._wait_gone(server_id, max(0.0, min(self.powerdown_interval, deadline - loop.time()))):
                    self._cleanup_runtime(server_id)
                    return
        with contextlib.suppress(DriverError):
            await qmp(sock, "quit")
        if not await self._wait_gone(server_id, 10):
            pid = self.pid(server_id)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not await self._wait_gone(server_id, 10):
                raise DriverError("the server's QEMU process does not end")
        self._cleanup_runtime(server_id)

    async def wait_up(self, server_id: str, *, handover: str | None, marker: str | None, settle: float,
                      timeout: float, ready: Callable[[], Awaitable[str | None]] | None = None,
                      waiting_for: str = "") -> None:
        """Return once the guest has come up; DriverError (and the caller kills it) if it does not.

        Came up: with ``marker``, the console shows it; without, the console shows ``handover`` (the
        initramfs starts the image's init) and QEMU still runs ``settle`` seconds later. An init that
        exits, or cannot be run, makes the kernel panic; with ``panic=-1`` and ``-no-reboot`` that
        ends QEMU at once, so an image that cannot start its init fails here. Fails at once when QEMU
        has ended or the console shows a kernel panic, and after ``timeout`` seconds at the latest.
        Only the new part of the console is read on each poll (every 0.1 s). ``ready`` (no marker): came
        up once it answers None (it answers what is still missing, polled every 0.5 s): the guest's
        network (driver.py); ``waiting_for`` names it in the timeout's message.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wanted = {"handover": handover.encode() if handover else None, "marker": marker.encode() if marker else None,
                  "panic": PANIC}
        found: dict[str, float] = {k: loop.time() for k, v in wanted.items() if v is None}
        keep = max(len(v) for v in wanted.values() if v) - 1
        offset, tail = 0, b""
        next_ready = loop.time()
        path = self.console(server_id)
        while True:
            chunk = _read_from(path, offset)
            offset += len(chunk)
            text, tail = tail + chunk, (tail + chunk)[-keep:]
            for key, needle in wanted.items():
                if key not in found and needle is not None and needle in text:
                    found[key] = loop.time()
            if "panic" in found:
                raise DriverError(f"the guest's kernel panicked while booting: {self.panic_line(server_id)}")
            if self.pid(server_id) is None:
                if PANIC in _read(path)[-65536:]:
                    raise DriverError(f"the guest's kernel panicked while booting: {self.panic_line(server_id)}")
                raise DriverError(f"the server powered off while booting: {self.console_tail(server_id)}")
            now = loop.time()
            if marker is not None:
                if "marker" in found:
                    return
            elif ready is not None:
                if now >= next_ready:
                    missing = await ready()
                    if missing is None:
                        return
                    waiting_for = missing
                    next_ready = loop.time() + 0.5
            elif "handover" in found and now >= found["handover"] + settle:
                return
            if now >= deadline:
                what = (f"the marker {marker!r} on the console" if marker else waiting_for if ready is not None
                        else "hand-over to the image's init on the console")
                raise DriverError(f"the server did not come up within {timeout:.0f} s (no {what})")
            await asyncio.sleep(0.1)

    def panic_line(self, server_id: str) -> str:
        text = _read(self.console(server_id))[-65536:].decode("utf-8", "replace")
        for line in text.splitlines():
            if PANIC.decode() in line:
                return line[line.index(PANIC.decode()):].strip()[:300]
        return self.console_tail(server_id)

    async def wait_console(self, server_id: str, text: str, timeout: float) -> None:
        """Wait until the console log of the current boot shows ``text``; DriverError if QEMU ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        needle = text.encode()
        log = self.console(server_id)
        while True:
            if needle in _read(log):
                return
            if self.pid(server_id) is None:
                raise DriverError(f"the server powered off while booting: {self.console_tail(server_id)}")
            if loop.time() >= deadline:
                raise DriverError(f"the server did not finish booting within {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def console_tail(self, server_id: str, lines: int = 3) -> str:
        try:
            with open(self.console(server_id), "rb") as fh:
                text = fh.read()[-4096:].decode("utf-8", "replace")
        except OSError:
            return "(no console output)"
        return " | ".join(ln.strip() for ln in text.splitlines()[-lines:] if ln.strip())[-400:]


async def probe_kvm(kit: BootKit, timeout: float = 20.0, helpers: Helpers | None = None) -> bool:
    """True if a guest boots under KVM here: the kit's initramfs prints PROBE_OK and powers off.
    With ``helpers`` the probe's QEMU is a recorded helper (a crash of ecsd cannot leave it running)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    argv = ["qemu-system-x86_64", "-machine", "pc,accel=kvm", "-cpu", KVM_CPU, "-smp", "1", "-m", "128",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none", "-nic", "none",
            "-kernel", kit.kernel, "-initrd", kit.initrd, "-append", "console=ttyS0 ecsd.probe quiet panic=-1",
            "-serial", "stdio", "-no-reboot"]
    try:
        res = await (helpers.run("kvm-probe", argv, timeout) if helpers else proc.run(argv, timeout=timeout, check=False))
    except DriverError:
        return False
    return res.rc == 0 and PROBE_OK.encode() in res.out
