"""Inside a disk: its partition table, its root file system, and the kernel that file system boots.

Images come in two shapes:

* **whole disk**: the disk is one ext2/3/4 file system (the driver's first image format): the driver
  boots it with its own kernel and initramfs (boot.py) unless it carries a kernel of its own;
* **partitioned**, as distributions publish cloud images: an MBR or GPT partition table (``sfdisk
  --json`` reads both, from a file) and an ext2/3/4 root partition. The root is the ext partition
  that has ``/sbin/init`` (a file or a link; the first one in table order); a BIOS-boot partition or
  an EFI system partition beside it is left alone. xfs or btrfs roots are refused: nothing here can
  write into them without mounting (debugfs is for ext only).

No partition is ever mounted and no loop device is used: e2fsprogs open a file system inside a file
at a byte offset with the ``FILE?offset=N`` syntax of their unix I/O manager (:meth:`RootFs.spec`), and
``sfdisk`` edits a table in a file.

The image's own kernel: the newest ``/boot/vmlinuz-R`` of the root file system with its
``/boot/initrd.img-R`` (Debian and Ubuntu name them so; ``initramfs-R.img`` as Fedora and openEuler
do is found too), or, for a separate ``/boot`` partition, the same names at the top of another ext
partition. The driver copies both out of the disk at each start (``debugfs dump``) and boots them
with ``root=UUID=<root fs UUID>``, as the image's boot loader would (docs/drivers.md).

Everything here is synchronous (subprocesses with a timeout); the driver calls it in a thread.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import proc

SECTOR = 512
_UUID = re.compile(r"^Filesystem UUID:\s*([0-9a-f-]{36})$", re.MULTILINE)
_LS_ENTRY = re.compile(r"^/\d+/(\d+)/\d+/\d+/([^/]+)/", re.MULTILINE)
_KERNEL = re.compile(r"vmlinuz-(\S+)")
_INITRDS = ("initrd.img-{}", "initramfs-{}.img")


@dataclass(frozen=True)
class FileSystem:
    """An ext2/3/4 file system of a disk: at ``offset`` bytes, ``size`` bytes long (None: to the end)."""

    offset: int
    size: int | None
    number: int | None          # its partition number (None: the whole disk)
    uuid: str
    table: str | None           # "dos" or "gpt" (None: no partition table)
    last: bool = True           # the last partition of the table (it can grow)

    def spec(self, view: str) -> str:
        """The name e2fsprogs open it by."""
        return f"{view}?offset={self.offset}" if self.offset else view


def _superblock(spec: str) -> str | None:
    res = proc.run_sync(["dumpe2fs", "-h", spec], check=False, timeout=60)
    return res.text if res.rc == 0 and _UUID.search(res.text) else None


def fs_uuid(spec: str) -> str | None:
    """The UUID of the ext file system ``spec`` names, or None when there is none."""
    text = _superblock(spec)
    return _UUID.search(text).group(1) if text else None


def exists(spec: str, path: str) -> bool:
    res = proc.run_sync(["debugfs", "-R", f"stat {path}", spec], check=False, timeout=60)
    return "not found" not in res.error_text and "Inode:" in res.text


def table(view: str) -> dict | None:
    """The partition table of the disk file ``view`` as ``sfdisk --json`` reads it, or None."""
    if proc.which("sfdisk") is None:
        raise DriverError("sfdisk is not installed (Debian package fdisk): partitioned images need it")
    res = proc.run_sync(["sfdisk", "--json", view], check=False, timeout=60)
    if res.rc != 0:
        return None
    try:
        found = json.loads(res.out)["partitiontable"]
    except (ValueError, KeyError, TypeError):
        return None
    return found if isinstance(found, dict) else None


def _number(node: str, default: int) -> int:
    m = re.search(r"(\d+)$", node)
    return int(m.group(1)) if m else default


def file_systems(view: str) -> list[FileSystem]:
    """Every ext2/3/4 file system of the disk: the whole disk's, or one per partition that has one."""
    whole = _superblock(view)
    if whole is not None:
        return [FileSystem(0, None, None, _UUID.search(whole).group(1), None)]
    found = table(view)
    if found is None:
        return []
    parts = [p for p in found.get("partitions") or [] if isinstance(p, dict)]
    sector = int(found.get("sectorsize") or SECTOR)
    out = []
    ends = [int(p.get("start", 0)) + int(p.get("size", 0)) for p in parts]
    for n, p in enumerate(parts):
        start, size = int(p.get("start", 0)), int(p.get("size", 0))
        if start <= 0 or size <= 0:
            continue
        node = str(p.get("node", ""))
        number = _number(node, n + 1)
        text = _superblock(f"{view}?offset={start * sector}")
        if text is not None:
            out.append(FileSystem(start * sector, size * sector, number, _UUID.search(text).group(1),
                                  str(found.get("label") or "dos"), last=start + size == max(ends)))
    return out


def root_of(view: str) -> FileSystem:
    """The root file system: the first ext file system with ``/sbin/init``; DriverError if none."""
    systems = file_systems(view)
    if not systems:
        raise DriverError("the disk holds no ext2/3/4 file system, on the whole disk or in a partition "
                          "(the local driver reads and writes ext file systems only)")
    for fs in systems:
        if exists(fs.spec(view), "/sbin/init"):
            return fs
    raise DriverError("no ext2/3/4 file system of the disk has /sbin/init")


def names(spec: str, directory: str) -> dict[str, int] | None:
    """{name: mode} of the entries of ``directory`` (``.`` and ``..`` left out); None when it is not there."""
    res = proc.run_sync(["debugfs", "-R", f"ls -p {directory}", spec], check=False, timeout=60)
    if res.rc != 0 or "not found" in res.error_text:
        return None
    return {m.group(2): int(m.group(1), 8) for m in _LS_ENTRY.finditer(res.text) if m.group(2) not in (".", "..")}


def _link_target(spec: str, path: str) -> str | None:
    res = proc.run_sync(["debugfs", "-R", f"stat {path}", spec], check=False, timeout=60)
    m = re.search(r'^Fast link dest: "(.*)"$', res.text, re.MULTILINE)
    return m.group(1) if "Type: symlink" in res.text and m else None


def read(spec: str, path: str) -> bytes | None:
    """The content of file ``path``, following symbolic links inside the file system (``/etc/os-release``
    is one on Debian); None when it is not there."""
    for _ in range(8):
        target = _link_target(spec, path)
        if target is None:
            break
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    res = proc.run_sync(["debugfs", "-R", f"cat {path}", spec], check=False, timeout=60)
    return None if res.rc != 0 or "not found" in res.error_text else res.out


def _version_key(release: str) -> list:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~]", release)]


@dataclass(frozen=True)
class Kernel:
    fs: FileSystem          # where the files are
    kernel: str             # their paths in that file system
    initrd: str
    release: str


def kernel_of(view: str, root: FileSystem) -> Kernel | None:
    """The image's own newest kernel with its initramfs (see the module's docstring), or None."""
    places = [(root, "/boot")] + [(fs, "/") for fs in file_systems(view) if fs != root]
    for fs, directory in places:
        names_ = names(fs.spec(view), directory) or {}
        best = None
        for name in names_:
            m = _KERNEL.fullmatch(name)
            if not m:
                continue
            release = m.group(1)
            initrd = next((t.format(release) for t in _INITRDS if t.format(release) in names_), None)
            if initrd is not None and (best is None or _version_key(release) > _version_key(best[0])):
                best = (release, initrd)
        if best is not None:
            base = directory.rstrip("/")
            return Kernel(fs, f"{base}/vmlinuz-{best[0]}", f"{base}/{best[1]}", best[0])
    return None


def dump(view: str, fs: FileSystem, path: str, dest: str) -> None:
    """Copy file ``path`` of ``fs`` to the host file ``dest`` (following the debugfs rules: inside the
    image only)."""
    tmp = dest + ".part"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    proc.run_sync(["debugfs", "-R", f"dump {path} {tmp}", fs.spec(view)], timeout=120)
    if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
        raise DriverError(f"cannot read {path} from the disk")
    os.replace(tmp, dest)


def grow_partition(view: str, fs: FileSystem) -> FileSystem | None:
    """Move the end of the root partition to the end of the (larger) disk: the GPT backup header moved to
    the new end first. Returns the partition as it is now; None when it cannot grow (not the last
    partition: the guest can still use the rest). The file system inside is grown by the caller, on a
    view of the partition alone: resize2fs truncates a regular file to the file system's size, which
    at an offset would cut the end of the disk off."""
    if fs.number is None or not fs.last or fs.size is None:
        return None
    if fs.table == "gpt":
        proc.run_sync(["sfdisk", "--relocate", "gpt-bak-std", view], timeout=60)
    proc.run_sync(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", str(fs.number), view],
                  input=b", +\n", timeout=60)
    found = table(view) or {}
    sector = int(found.get("sectorsize") or SECTOR)
    part = next((p for p in found.get("partitions") or [] if int(p.get("start", 0)) * sector == fs.offset), None)
    if part is None:
        raise DriverError("the root partition is gone after growing it")
    return FileSystem(fs.offset, int(part["size"]) * sector, fs.number, fs.uuid, fs.table, fs.last)
