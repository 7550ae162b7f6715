"""Helper processes of the local driver, recorded durably so that a restart after a crash ends them.

A *helper* is a process the driver starts for a while on behalf of one call: the
``qemu-storage-daemon`` FUSE export that shows a qcow2 disk as a raw file (disks.py), the KVM probe
(qemu.py). Servers (daemonized ``qemu-system-x86_64``) are not helpers: they are meant to outlive
ecsd, and qemu.py finds them again by their pid files.

When ecsd is killed (``kill -9``, OOM, host trouble) its helpers keep running: a FUSE export keeps
the disk's write lock, so the resumed job could not open the disk again (``Ecs.0202``). Therefore:

* **Recorded before it can do harm.** :meth:`Helpers.spawn` starts the helper behind a gate
  (``sh -c 'read go && exec HELPER ...'``), writes ``helpers/<pid>.<start>.json`` under the driver's
  root (temporary file, fsync, rename, fsync of the directory), and only then opens the gate. If ecsd
  dies before the record is on disk, the gate reads end-of-file and exits: no helper ran.
* **Enough identity to never kill a stranger.** The record holds the pid, the process start time
  (field 22 of ``/proc/PID/stat``), the expected ``argv[0]`` (the helper, or the gate before it
  opened), the host's boot id, and the owner: the ecsd process (pid and start time) that started it.
* **Removed when the helper ends normally** (:meth:`Helpers.forget`).
* **Reaped at start-up** (:meth:`Helpers.reap`, run by ``LocalDriver.recover`` before jobs resume):
  every record whose owner is no longer alive is settled: if its process is still alive and still the
  same process, SIGTERM, up to 5 s, SIGKILL, up to 5 s; then its FUSE mount point is unmounted and
  removed, and the record deleted. Records of a live owner (another ecsd sharing this directory)
  are left alone; records from before a host reboot are only deleted. A process is never signalled
  unless a record names it and its start time and ``argv[0]`` still match.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from typing import Any

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import proc

log = logging.getLogger("ecsd.driver.local")

# The gate: wait for "go" on stdin (sent once the record is on disk), then become the helper.
GATE = 'read -r go || exit 125; [ "$go" = go ] || exit 125; exec "$0" "$@"'
TERM_WAIT = 5.0
KILL_WAIT = 5.0


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def argv0(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            first = fh.read().split(b"\0", 1)[0]
    except OSError:
        return None
    return os.path.basename(first.decode("utf-8", "replace")) if first else None


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def same_process(pid: int, start: int | None, names: tuple[str, ...] = ()) -> bool:
    """``pid`` runs, started at ``start``, and (if ``names``) its argv[0] is one of them."""
    if start is None or start_time(pid) != start:
        return False
    return not names or argv0(pid) in names


def _unescape_mountinfo(field: str) -> str:
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def is_mounted(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            return any(_unescape_mountinfo(line.split()[4]) == path for line in fh if len(line.split()) > 4)
    except OSError:
        return False


async def unmount(path: str) -> None:
    """Detach the (FUSE) mount at ``path`` if there is one; works when its daemon is dead, too."""
    if is_mounted(path):
        await proc.run(["umount", "-l", path], check=False, timeout=30)


def _write_durably(directory: str, name: str, value: dict) -> None:
    tmp = os.path.join(directory, f".{name}.tmp")
    with open(tmp, "w") as fh:
        json.dump(value, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(directory, name))
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _gone(pid: int, start: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while start_time(pid) == start:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Helpers:
    """The helper records of one driver root (``<root>/helpers``); mount points live in ``views``."""

    def __init__(self, directory: str, views: str) -> None:
        self.dir = directory
        self.views = views
        self.owner = {"pid": os.getpid(), "start": start_time(os.getpid())}
        self._started: dict[int, int] = {}      # pid -> start time of the helpers this process runs

    # --- starting and forgetting ----------------------------------------------------------------------

    async def spawn(self, kind: str, argv: list[str], *, mountpoint: str | None = None,
                    **kwargs: Any) -> asyncio.subprocess.Process:
        """Start ``argv`` as a recorded helper (see the module's docstring). ``kwargs`` go to
        ``create_subprocess_exec`` (stdin is the gate's)."""
        exe = proc.tool(argv[0])
        gate = proc.tool("sh")
        p = await asyncio.create_subprocess_exec(gate, "-c", GATE, exe, *argv[1:], stdin=subprocess.PIPE, **kwargs)
        record = {"kind": kind, "pid": p.pid, "start": start_time(p.pid), "names": [os.path.basename(exe),
                  os.path.basename(gate)], "boot": boot_id(), "owner": self.owner, "mountpoint": mountpoint,
                  "argv": [exe, *argv[1:]], "since": time.time()}
        try:
            if record["start"] is None:
                raise DriverError(f"{os.path.basename(exe)} ended before it could be recorded")
            await asyncio.to_thread(_write_durably, self.dir, self._name(p.pid, record["start"]), record)
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
            p.stdin.close()
        except BaseException:
            if p.returncode is None:
                p.kill()
            await p.wait()
            self.forget(p)
            raise
        self._started[p.pid] = record["start"]
        return p

    @staticmethod
    def _name(pid: int, start: int) -> str:
        return f"{pid}.{start}.json"

    def forget(self, p: asyncio.subprocess.Process) -> None:
        """The helper ended: remove its record (a missing record is fine)."""
        start = self._started.pop(p.pid, None)
        names = [self._name(p.pid, start)] if start is not None else \
            [n for n in self._names() if n.startswith(f"{p.pid}.")]
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, name))

    async def run(self, kind: str, argv: list[str], timeout: float) -> proc.Result:
        """Run a recorded helper to its end (output captured); killed after ``timeout`` seconds."""
        p = await self.spawn(kind, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await proc.communicate(p, argv[0], timeout)
        finally:
            if p.returncode is not None:
                self.forget(p)
        return proc.Result(p.returncode if p.returncode is not None else -1, out, err)

    # --- after a crash ------------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith(".")]
        except FileNotFoundError:
            return []

    def records(self) -> list[tuple[str, dict]]:
        out = []
        for name in self._names():
            try:
                with open(os.path.join(self.dir, name)) as fh:
                    value = json.load(fh)
            except (OSError, ValueError):
                value = {}
            out.append((name, value if isinstance(value, dict) else {}))
        return out

    def _owner_alive(self, record: dict) -> bool:
        owner = record.get("owner") or {}
        if record.get("boot") != boot_id() or not isinstance(owner.get("pid"), int):
            return False
        return same_process(owner["pid"], owner.get("start"))

    def live_mountpoints(self) -> set[str]:
        """Mount points of helpers whose owner still runs (this process or another ecsd)."""
        return {r["mountpoint"] for _n, r in self.records() if r.get("mountpoint") and self._owner_alive(r)}

    async def reap(self, mountpoint: str | None = None) -> int:
        """End the helpers of dead owners (only those at ``mountpoint`` if given); returns how many
        processes were signalled. Idempotent."""
        signalled = 0
        for name, record in self.records():
            if mountpoint is not None and record.get("mountpoint") != mountpoint:
                continue
            if self._owner_alive(record):
                continue
            pid, start = record.get("pid"), record.get("start")
            names = tuple(record.get("names") or ())
            if record.get("boot") == boot_id() and isinstance(pid, int) and names and same_process(pid, start, names):
                signalled += 1
                log.warning("ending %s helper %d left behind by ecsd process %s", record.get("kind"), pid,
                            (record.get("owner") or {}).get("pid"))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                if not await _gone(pid, start, TERM_WAIT):
                    if same_process(pid, start, names):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    if not await _gone(pid, start, KILL_WAIT):
                        raise DriverError(f"helper process {pid} does not end")
            point = record.get("mountpoint")
            if isinstance(point, str) and os.path.dirname(point) == self.views:
                await unmount(point)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(point)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, name))
        return signalled
