"""Disks as files: a system disk is made from an image in O(1) of the image's size, a data disk is blank.

* ``qcow2`` (the default): ``qemu-img create -f qcow2 -b IMAGE -F raw DISK SIZE``, an overlay that
  holds only what the server writes; the image file underneath is never changed (the image store
  keeps it read-only and never replaces it, since every overlay names it by absolute path).
* ``raw``: a sparse copy (``cp --sparse=always --reflink=auto``; a reflink where the host file system
  can, else O(allocated data), which is small for sparse images). Needs no FUSE.

A disk is built under ``<id>.<fmt>.part`` and renamed when complete, so "exists" means "complete"
and a repeated create after a crash starts over. The file system is grown to the disk's size
(``e2fsck -fp`` then ``resize2fs``), so that the server sees the size it was created with.

debugfs, e2fsck and resize2fs read raw files only. :func:`raw_view` gives one: the raw disk itself,
or for qcow2 a FUSE export of ``qemu-storage-daemon`` (run in the foreground, stopped with SIGTERM,
absolute mount point), which also takes QEMU's image lock: a disk a running server holds cannot be
opened. The daemon is a recorded helper (helpers.py): one that a killed ecsd left running is ended
before the disk is opened again, and at the driver's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import partitions, proc
from ecsd.drivers.local.helpers import Helpers, is_mounted, unmount
from ecsd.drivers.local.paths import Layout, check_id, qemu_escape

GIB = 1024**3
FORMATS = ("qcow2", "raw")


def fuse_usable() -> bool:
    """qcow2 disks need a FUSE view for injection: /dev/fuse, root, and qemu-storage-daemon."""
    return os.path.exists("/dev/fuse") and os.geteuid() == 0 and proc.which("qemu-storage-daemon") is not None


def _touch(path: str) -> None:
    with open(path, "wb"):
        pass


async def image_info(path: str, fmt: str | None = None) -> dict:
    argv = ["qemu-img", "info", "--output=json", "-U"]
    if fmt:
        argv += ["-f", fmt]
    res = await proc.run([*argv, path], timeout=30)
    return json.loads(res.out)


async def _no_pause(point: str) -> None:
    return None


class DiskStore:
    def __init__(self, layout: Layout, fmt: str, max_gb: int, helpers: Helpers | None = None,
                 pause: Callable[[str], Awaitable[None]] = _no_pause) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"disk format must be one of {FORMATS}")
        self.layout = layout
        self.fmt = fmt
        self.max_gb = max_gb
        self.helpers = helpers or Helpers(layout.helpers, layout.tmp)
        self.pause = pause        # the driver's test hook (ECSD_LOCAL_TEST_PAUSE), a no-op by default

    def find(self, volume_id: str) -> tuple[str, str] | None:
        """(path, format) of a complete disk, or None."""
        for fmt in FORMATS:
            path = self.layout.disk(volume_id, fmt)
            if os.path.isfile(path):
                return path, fmt
        return None

    async def create(self, volume_id: str, image: tuple[str, str] | None, size_gb: int) -> str:
        """Create disk ``volume_id`` from ``image`` ((path, format) or None: blank). Idempotent."""
        check_id(volume_id, "volume id")
        found = self.find(volume_id)
        if found is not None:
            return found[0]
        if size_gb > self.max_gb:
            raise DriverError(f"a disk of {size_gb} GB is larger than this host's limit of {self.max_gb} GB")
        path = self.layout.disk(volume_id, self.fmt)
        part = path + ".part"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        size = max(size_gb, 0) * GIB
        try:
            if image is None:
                await self._blank(part, max(size, GIB))
            else:
                base, base_fmt = image
                base_size = int((await image_info(base, base_fmt))["virtual-size"])
                size = max(size, base_size)
                if self.fmt == "qcow2":
                    await proc.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", base_fmt, part,
                                    str(size)], timeout=60)
                elif base_fmt == "raw":
                    await proc.run(["cp", "--sparse=always", "--reflink=auto", base, part], timeout=3600)
                    os.truncate(part, size)
                else:
                    await proc.run(["qemu-img", "convert", "-f", base_fmt, "-O", "raw", base, part], timeout=3600)
                    os.truncate(part, size)
                if size > base_size:
                    await self._grow(part)
            os.chmod(part, 0o600)
            os.replace(part, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            raise
        return path

    async def _grow(self, path: str) -> None:
        """Grow the root file system of the new disk ``path`` to the disk's size (partitions.py): a whole-disk
        file system at once; a partitioned disk's root partition first (the table, on a view of the
        disk), then its file system on a view of that partition alone. Without FUSE a raw partitioned
        disk keeps the file system of its image (the partition view needs qemu-storage-daemon)."""
        async with self._view(path, self.fmt) as view:
            root = await asyncio.to_thread(partitions.root_of, view)
            if root.number is None:
                await grow_filesystem(view)
                await self.pause("create_disk")      # while the (FUSE) view shows the new disk
                return
            grown = await asyncio.to_thread(partitions.grow_partition, view, root)
        if grown is None or grown.size is None or not fuse_usable():
            return
        async with self._view(path, self.fmt, (grown.offset, grown.size)) as view:
            await grow_filesystem(view)
            await self.pause("create_disk")

    async def _blank(self, part: str, size: int) -> None:
        if self.fmt == "qcow2":
            await proc.run(["qemu-img", "create", "-q", "-f", "qcow2", part, str(size)], timeout=60)
        else:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(fd, size)
            os.close(fd)

    async def delete(self, volume_id: str) -> None:
        """Remove the disk and any leftover of its creation or of a view on it. Idempotent."""
        check_id(volume_id, "volume id")
        view = self._view_path(volume_id)
        await self.helpers.reap(view)
        await unmount(view)
        for fmt in FORMATS:
            path = self.layout.disk(volume_id, fmt)
            for p in (path, path + ".part"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(view)

    async def sweep_views(self, min_age: float = 60.0) -> int:
        """Unmount and remove the FUSE mount points that no live helper serves (a crash left them); an
        unmounted one only when older than ``min_age`` s, as another process may be setting it up."""
        live = self.helpers.live_mountpoints()
        swept = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.layout.tmp):
                path = os.path.join(self.layout.tmp, name)
                if not name.endswith(".view") or path in live:
                    continue
                if is_mounted(path):
                    await unmount(path)
                else:
                    try:
                        if time.time() - os.stat(path).st_mtime < min_age:
                            continue
                    except FileNotFoundError:
                        continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                swept += 1
        return swept

    def _view_path(self, volume_id_or_file: str) -> str:
        return os.path.join(self.layout.tmp, os.path.basename(volume_id_or_file).split(".")[0] + ".view")

    @contextlib.asynccontextmanager
    async def raw_view(self, volume_id: str) -> AsyncIterator[str]:
        """A raw file showing disk ``volume_id``, writable, for as long as the context lasts."""
        found = self.find(volume_id)
        if found is None:
            raise DriverError(f"disk {volume_id} does not exist")
        async with self._view(*found) as view:
            yield view

    @contextlib.asynccontextmanager
    async def partition_view(self, volume_id: str, offset: int, size: int) -> AsyncIterator[str]:
        """A raw file showing ``size`` bytes of disk ``volume_id`` from ``offset`` (one partition)."""
        found = self.find(volume_id)
        if found is None:
            raise DriverError(f"disk {volume_id} does not exist")
        async with self._view(*found, (offset, size)) as view:
            yield view

    @contextlib.asynccontextmanager
    async def _view(self, path: str, fmt: str, window: tuple[int, int] | None = None) -> AsyncIterator[str]:
        """A raw file of the disk (``window``: of ``(offset, size)`` bytes of it, through a raw node with
        those options); the disk itself when it is raw and whole."""
        if fmt == "raw" and window is None:
            yield path
            return
        mountpoint = self._view_path(path)
        # A helper that a dead ecsd left on this disk still holds its lock: end it first (helpers.py).
        await self.helpers.reap(mountpoint)
        await unmount(mountpoint)           # left behind by a crash: nothing can use it any more
        _touch(mountpoint)
        export = f"type=fuse,id=view0,node-name=disk0,mountpoint={qemu_escape(mountpoint)},writable=on"
        nodes = ["--blockdev", f"driver=file,node-name=file0,filename={qemu_escape(path)}"]
        if window is None:
            nodes += ["--blockdev", f"driver={fmt},node-name=disk0,file=file0"]
        elif fmt == "raw":
            nodes += ["--blockdev", f"driver=raw,node-name=disk0,file=file0,offset={window[0]},size={window[1]}"]
        else:
            nodes += ["--blockdev", f"driver={fmt},node-name=whole0,file=file0",
                      "--blockdev", f"driver=raw,node-name=disk0,file=whole0,offset={window[0]},size={window[1]}"]
        daemon = await self.helpers.spawn(
            "fuse-view", ["qemu-storage-daemon", *nodes, "--export", export],
            mountpoint=mountpoint, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await self._wait_mounted(daemon, mountpoint)
            yield mountpoint
        finally:
            if daemon.returncode is None:
                daemon.terminate()
                try:
                    await asyncio.wait_for(daemon.wait(), 10)
                except TimeoutError:
                    daemon.kill()
                    await daemon.wait()
            await unmount(mountpoint)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mountpoint)
            self.helpers.forget(daemon)

    @staticmethod
    async def _wait_mounted(daemon: asyncio.subprocess.Process, mountpoint: str, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not is_mounted(mountpoint):
            if daemon.returncode is not None or loop.time() > deadline:
                if daemon.returncode is None:
                    daemon.kill()
                    await daemon.wait()
                err = (await daemon.stderr.read()).decode("utf-8", "replace").strip() if daemon.stderr else ""
                raise DriverError(f"cannot open the disk through qemu-storage-daemon: {err[-300:] or 'timeout'}")
            await asyncio.sleep(0.01)


async def grow_filesystem(view: str) -> None:
    """Grow the ext2/3/4 file system on ``view`` (a raw file) to the file's size."""
    res = await proc.run(["e2fsck", "-f", "-p", view], check=False, timeout=600)
    if res.rc >= 4:
        raise DriverError(f"the image's file system has errors e2fsck cannot repair: {res.error_text[-200:]}")
    await proc.run(["resize2fs", view], timeout=600)
