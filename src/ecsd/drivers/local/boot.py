"""The driver's boot kit: a Debian kernel and a tiny initramfs, shared by every server (like Nova's
AKI/ARI), never part of an image.

Debian builds the virtio disk driver and ext4 as modules, so a direct kernel boot needs an initramfs
that loads them. Ours holds static busybox, the modules in :data:`MODULES` (those the kernel does not
have built in), and an ``/init`` that mounts the server's disk (``root=``, default ``/dev/vda``) and
``switch_root``s into the image's ``/sbin/init``, after printing :data:`HANDOVER` on the console (the
point from which the driver's boot check counts, see qemu.py). When it cannot, it says why on the
console and powers off, so that the QEMU process ends.

The kernel comes from a Debian kernel package taken apart with ``dpkg-deb --fsys-tarfile`` (nothing
is installed, no initramfs-tools hook runs, /boot is left alone), or from an installed kernel
(``/boot/vmlinuz-R`` with ``/lib/modules/R``). The kit is built once into ``<boot dir>/<release>/``.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import proc

# Load order matters: each module after those it depends on.
MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
           "virtio_blk", "crc16", "crc32c_generic", "mbcache", "jbd2", "ext4", "button", "evdev",
           "failover", "net_failover", "virtio_net")
PROBE_OK = "ECSD-PROBE-OK"
_DEB = re.compile(r"linux-image-(\d[^_]*)_[^_]+_amd64\.deb")
_MODULE_FILE = re.compile(r"/lib/modules/([^/]+)/kernel/.*/([^/]+)\.ko(\.xz|\.gz)?$")
KIT_FILE = "kit.json"

INIT = """#!/bin/busybox sh
# ecsd initramfs: load the disk and file system modules, mount the server's disk, run its /sbin/init.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
$B --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
for m in $(cat /lib/modules/load); do
  insmod "/lib/modules/$m.ko" || echo "ecsd-initramfs: cannot load $m"
done
root=/dev/vda
probe=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${arg#root=}" ;;
    ecsd.probe) probe=1 ;;
  esac
done
if [ -n "$probe" ]; then echo "ECSD-PROBE-OK"; poweroff -f; fi
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if ! mount -o rw "$root" /newroot; then
  echo "ecsd-initramfs: cannot mount $root"; poweroff -f
fi
if [ ! -e /newroot/sbin/init ] && [ ! -L /newroot/sbin/init ]; then
  echo "ecsd-initramfs: $root has no /sbin/init"; poweroff -f
fi
umount /sys
umount /proc
if [ -d /newroot/dev ]; then mount --move /dev /newroot/dev; else umount /dev; fi
echo "ecsd-initramfs: handing over to /sbin/init of $root"
exec switch_root /newroot /sbin/init
"""
# The console line that says the kernel and this initramfs are done and the image's own init starts.
HANDOVER = "ecsd-initramfs: handing over to /sbin/init"
# Kits record which /init they carry; a kit built from another one is rebuilt (when the kernel is at hand).
INIT_VERSION = hashlib.sha256((INIT + " ".join(MODULES)).encode()).hexdigest()[:12]
assert PROBE_OK in INIT and HANDOVER in INIT


@dataclass(frozen=True)
class BootKit:
    kernel: str
    initrd: str
    release: str
    # The console text that marks the hand-over to the image's init (None: this initramfs does not print it).
    handover: str | None = HANDOVER


def find_kernel_package(dirs: tuple[str, ...] = ()) -> str | None:
    """The newest ``linux-image-<release>_<version>_amd64.deb`` in ``dirs`` or apt's cache."""
    found = []
    for d in (*dirs, "/var/cache/apt/archives"):
        for path in glob.glob(os.path.join(d, "linux-image-*_amd64.deb")):
            m = _DEB.fullmatch(os.path.basename(path))
            if m and "-dbg" not in m.group(1) and "unsigned" not in m.group(1):
                found.append(path)
    return max(found, key=os.path.basename) if found else None


def installed_kernel() -> str | None:
    """The release of a kernel installed on this host with its modules, if any."""
    releases = [os.path.basename(p)[len("vmlinuz-"):] for p in glob.glob("/boot/vmlinuz-*")]
    usable = [r for r in releases if os.path.isdir(f"/lib/modules/{r}/kernel")]
    return max(usable) if usable else None


def _kit_in(d: str) -> BootKit | None:
    """The kit built into directory ``d``, if complete; ``handover`` is None for a kit of an older /init."""
    try:
        with open(os.path.join(d, KIT_FILE)) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    current = isinstance(meta, dict) and meta.get("init") == INIT_VERSION
    kit = BootKit(os.path.join(d, "vmlinuz"), os.path.join(d, "initramfs.img"), os.path.basename(d),
                  HANDOVER if current else None)
    return kit if os.path.isfile(kit.kernel) and os.path.isfile(kit.initrd) else None


def existing_kit(boot_dir: str) -> BootKit | None:
    """The newest kit already built here, preferring kits of the current /init."""
    kits = [k for k in (_kit_in(os.path.dirname(m)) for m in glob.glob(os.path.join(boot_dir, "*", KIT_FILE))) if k]
    return max(kits, key=lambda k: (k.handover is not None, k.release)) if kits else None


def initrd_announces_handover(initrd: str) -> bool:
    """Whether a prepared initramfs (gzip or uncompressed cpio) prints :data:`HANDOVER`: one of ours."""
    with open(initrd, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return False
    return HANDOVER.encode() in data


def _unpack(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def _from_deb(deb: str) -> tuple[bytes, str, dict[str, bytes], set[str]]:
    """(vmlinuz, release, {module: .ko bytes}, built-in module names) read from a kernel package."""
    kernel, release, modules, builtin = None, None, {}, set()
    p = subprocess.Popen([proc.tool("dpkg-deb"), "--fsys-tarfile", deb], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name
                base = os.path.basename(name)
                if "/boot/" in "/" + name.lstrip("./") and base.startswith("vmlinuz-"):
                    kernel, release = tar.extractfile(member).read(), base[len("vmlinuz-"):]
                elif base == "modules.builtin" and "/lib/modules/" in name:
                    builtin = _builtin_names(tar.extractfile(member).read().decode())
                else:
                    m = _MODULE_FILE.search(name)
                    if m and m.group(2) in MODULES:
                        modules[m.group(2)] = _unpack(name, tar.extractfile(member).read())
    except tarfile.TarError as exc:
        raise DriverError(f"{deb} is not a readable kernel package: {exc}") from exc
    finally:
        if p.stdout:
            p.stdout.close()
        p.wait()
    if p.returncode != 0:
        raise DriverError(f"dpkg-deb cannot read {deb}: {p.stderr.read().decode(errors='replace')[-200:]}")
    if kernel is None or release is None:
        raise DriverError(f"{deb} holds no /boot/vmlinuz-*")
    return kernel, release, modules, builtin


def _from_installed(release: str) -> tuple[bytes, str, dict[str, bytes], set[str]]:
    with open(f"/boot/vmlinuz-{release}", "rb") as fh:
        kernel = fh.read()
    root = f"/lib/modules/{release}"
    builtin = set()
    with contextlib.suppress(OSError), open(os.path.join(root, "modules.builtin")) as fh:
        builtin = _builtin_names(fh.read())
    modules = {}
    for dirpath, _dirs, files in os.walk(os.path.join(root, "kernel")):
        for f in files:
            m = _MODULE_FILE.search(os.path.join(dirpath, f))
            if m and m.group(2) in MODULES:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    modules[m.group(2)] = _unpack(f, fh.read())
    return kernel, release, modules, builtin


def _builtin_names(text: str) -> set[str]:
    return {os.path.basename(line.strip()).split(".ko")[0] for line in text.splitlines() if line.strip()}


def _cpio(entries: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A newc cpio archive of (name, mode, data, rdev major, rdev minor), the format the kernel unpacks."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, major, minor) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0, 0)], 1):
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(name) + 1, 0)
        out += b"070701" + b"".join(b"%08x" % f for f in fields) + name.encode() + b"\0"
        pad()
        out += data
        pad()
    return bytes(out)


def build_initramfs(modules: dict[str, bytes], busybox: str) -> bytes:
    with open(busybox, "rb") as fh:
        bb = fh.read()
    d, x, r = 0o040755, 0o100755, 0o100644
    order = [m for m in MODULES if m in modules]
    entries = [("bin", d, b"", 0, 0), ("bin/busybox", x, bb, 0, 0), ("dev", d, b"", 0, 0),
               ("dev/console", 0o020600, b"", 5, 1), ("proc", d, b"", 0, 0), ("sys", d, b"", 0, 0),
               ("newroot", d, b"", 0, 0), ("tmp", 0o041777, b"", 0, 0), ("lib", d, b"", 0, 0),
               ("lib/modules", d, b"", 0, 0), ("lib/modules/load", r, ("\n".join(order) + "\n").encode(), 0, 0),
               ("init", x, INIT.encode(), 0, 0)]
    entries += [(f"lib/modules/{m}.ko", r, modules[m], 0, 0) for m in order]
    return gzip.compress(_cpio(entries), compresslevel=6, mtime=0)


def static_busybox() -> str:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
            # A dynamically linked ELF names its interpreter; a static one does not.
            if head.startswith(b"\x7fELF") and b"ld-linux" not in head:
                return path
    raise DriverError("a static busybox is needed for the initramfs (Debian package busybox-static)")


def build_boot_kit(boot_dir: str, deb: str | None = None, busybox: str | None = None) -> BootKit:
    """Build (once) the kit from ``deb``, else from a package in apt's cache, else the installed kernel."""
    deb = deb or find_kernel_package()
    installed = None if deb else installed_kernel()
    if deb is None and installed is None:
        raise DriverError("no kernel for the local driver: download the Debian kernel package with "
                          "`apt-get download $(apt-cache depends linux-image-amd64 | "
                          "awk '/Depends: linux-image-/{print $2}')` and pass it as ECSD_LOCAL_KERNEL_DEB")
    named = _DEB.fullmatch(os.path.basename(deb)) if deb else None
    expected = named.group(1) if named else installed
    built = _kit_in(os.path.join(boot_dir, expected)) if expected else None
    if built is not None and built.handover is not None:
        return built
    busybox = busybox or static_busybox()
    kernel, release, modules, builtin = _from_deb(deb) if deb else _from_installed(installed or "")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", release):
        raise DriverError(f"unexpected kernel release name {release!r}")
    missing = [m for m in MODULES if m not in modules and m not in builtin]
    if missing:
        raise DriverError(f"the kernel {release} has neither modules nor built-in drivers for: {', '.join(missing)}")
    os.makedirs(boot_dir, mode=0o755, exist_ok=True)
    final = os.path.join(boot_dir, release)
    built = _kit_in(final)
    if built is not None and built.handover is not None:
        return built
    work = tempfile.mkdtemp(prefix=f".{release}-", dir=boot_dir)
    try:
        with open(os.path.join(work, "vmlinuz"), "wb") as fh:
            fh.write(kernel)
        with open(os.path.join(work, "initramfs.img"), "wb") as fh:
            fh.write(build_initramfs(modules, busybox))
        with open(os.path.join(work, KIT_FILE), "w") as fh:
            json.dump({"release": release, "source": deb or f"/boot/vmlinuz-{release}", "init": INIT_VERSION,
                       "modules": [m for m in MODULES if m in modules]}, fh)
        os.chmod(work, 0o755)
        if os.path.isdir(final):   # an incomplete kit, or one of an older /init: move it aside, then replace it
            old = tempfile.mkdtemp(prefix=f".{release}-old-", dir=boot_dir)
            os.rename(final, os.path.join(old, "kit"))
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(work, final)
        except OSError:           # built by someone else meanwhile
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _kit_in(final) or BootKit(os.path.join(final, "vmlinuz"), os.path.join(final, "initramfs.img"), release)
