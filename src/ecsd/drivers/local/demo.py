"""Two small but real Debian images for the local driver, built from Debian packages (``ecsd images build-demo``).

Each image is a partitioned raw disk holding a minimal Debian made by ``debootstrap --variant=minbase``
with systemd, udev, openssh-server, a cloud kernel and its initramfs, and no cloud-init: what a user
would get from a distribution's cloud image, only smaller and built here, so that a demo (and the slow
CI test of issue 14) can create a server, log in with ``ssh`` and see a change OS in ``/etc/os-release``.

Two releases, two partition tables, so that both table kinds and a root that is not partition 1 are
exercised:

* bookworm (Debian 12): MBR, one Linux partition from 1 MiB;
* trixie (Debian 13): GPT, an empty 1 MiB BIOS-boot partition, then the root partition.

What each image carries, and why:

* no boot loader: the local driver boots the image's own ``/boot/vmlinuz-*`` and ``/boot/initrd.img-*``
  with ``root=UUID=<root fs uuid> ro console=tty0 console=ttyS0,115200``; systemd then starts a serial
  getty on ttyS0 by itself (a login there needs a root password, set by a change OS with ``adminpass``);
* systemd-networkd with DHCP on ``en*``/``eth*`` and the MAC as DHCP client id, because the driver's
  dnsmasq hands each server its fixed IP by a lease reserved for its MAC. No systemd-resolved, so the
  guest has no DNS server configured (logging in needs none);
* openssh-server, enabled, with Debian's ``PermitRootLogin prohibit-password``, but no host keys: every
  server made from the image would otherwise share them. ``ecsd-ssh-hostkeys.service`` makes an
  Ed25519 and an ECDSA key before ``ssh.service`` starts (sshd refuses to start without host keys);
* an empty ``/etc/machine-id`` (each server gets its own at first boot) and ``systemd-firstboot``
  masked, since on a first boot it would wait on the console for a locale and a root password;
* root's password locked (``*``) and no ``/root/.ssh``: the driver writes ``authorized_keys`` at create
  and change OS;
* ``/etc/fstab`` mounting ``/`` by the file system's UUID, ``/etc/hostname``, and the release's own
  ``/etc/os-release`` (PRETTY_NAME ``Debian GNU/Linux 12 (bookworm)``), which is how tests tell them apart;
* apt caches and lists, documentation, man pages and translations removed (about 200 MB), with a dpkg
  rule that keeps later installs from bringing them back; kernel modules are kept whole.

The disk is built without loop devices or mounting: a sparse file, a table written by ``sfdisk`` on the
file, and the root file system made by ``mke2fs -d <tree> -E offset=<partition start>`` straight into
the file. :func:`check_image` reads it back the same way (``sfdisk --json``, ``debugfs file?offset=N``).

Finished images are cached as ``debian-<version>-<codename>-<recipe hash>.raw``: a changed recipe (a
bump of :data:`RECIPE_VERSION`, another package list or file) builds afresh, and a file is only ever
renamed into that name once complete, so a killed build never counts. A per-image lock file keeps two
processes from building the same image at once. The debootstrap tree lives only as long as the build
(it is some 400 MB). Building needs root (debootstrap, chroot) and takes a few minutes per release; the
two releases are built concurrently. Taking an image from the cache needs neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import partitions, proc

# Bump when the build steps below change in a way the recipe dict does not show.
RECIPE_VERSION = 1
DISK_BYTES = 2 * 1024**3
SECTOR = 512
MIB_SECTORS = 1024 * 1024 // SECTOR
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Fixed namespace: image ids and file system UUIDs follow from the recipe hash, so a rebuilt image with
# the same recipe keeps its id (``ecsd images build-demo`` stays idempotent).
NAMESPACE = uuid.UUID("5b0f3f1e-6a57-4a7e-9c1d-ec5d0de30001")

BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69ED47C4E4"

# e2fsprogs: trixie's minbase no longer has it, and an ext4 root wants its fsck.
PACKAGES = ("systemd-sysv", "udev", "dbus", "openssh-server", "linux-image-cloud-amd64", "initramfs-tools",
            "e2fsprogs", "iproute2", "iputils-ping", "procps")

# Tools and the Debian packages that bring them.
TOOLS = {"debootstrap": "debootstrap", "chroot": "coreutils", "sfdisk": "fdisk", "mke2fs": "e2fsprogs",
         "debugfs": "e2fsprogs", "dumpe2fs": "e2fsprogs"}


@dataclass(frozen=True)
class Release:
    codename: str
    version: str
    table: str  # "dos" or "gpt"

    @property
    def pretty_name(self) -> str:
        return f"Debian GNU/Linux {self.version} ({self.codename})"

    @property
    def image_name(self) -> str:
        return f"Debian {self.version} (demo)"


RELEASES = {
    "bookworm": Release("bookworm", "12", "dos"),
    "trixie": Release("trixie", "13", "gpt"),
}
DEFAULT_RELEASES = ("bookworm", "trixie")

# --- what goes into the image ----------------------------------------------------------------------------------

NETWORK = """\
# ecsd demo image: DHCP on every Ethernet NIC. The MAC is the client id, because ecsd's dnsmasq
# reserves each server's fixed IP for the MAC the API reports.
[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
"""

# Ed25519 and ECDSA only: an RSA key takes 7-18 s more of a first boot under TCG, and every current
# client takes Ed25519. sshd is told to load just these two, so it does not look for the RSA key.
HOST_KEY_TYPES = ("ed25519", "ecdsa")
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate the SSH host keys the ecsd demo image ships without
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
""" + "".join(f"ExecStart=/bin/sh -c 'test -e /etc/ssh/ssh_host_{t}_key || "
              f"ssh-keygen -q -t {t} -N \"\" -f /etc/ssh/ssh_host_{t}_key'\n" for t in HOST_KEY_TYPES) + """
[Install]
WantedBy=ssh.service
"""

SSHD_HOSTKEYS = "# ecsd demo image: the host keys ecsd-ssh-hostkeys.service makes on first boot.\n" + "".join(
    f"HostKey /etc/ssh/ssh_host_{t}_key\n" for t in HOST_KEY_TYPES)

NODOC = """\
# ecsd demo image: keep documentation and translations out, as the image was built.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
"""

# Run as ``systemctl ARGS`` inside the tree (offline: systemctl only edits the unit links).
SYSTEMCTL = (
    ("enable", "systemd-networkd.service", "ssh.service", "ecsd-ssh-hostkeys.service"),
    # trixie's own first-boot key maker would add the RSA key: this image has one key maker.
    ("mask", "systemd-firstboot.service", "sshd-keygen.service"),
    # Periodic jobs that cost a small TCG guest CPU at boot and do nothing useful in a demo server.
    ("disable", "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service"),
)

RESOLV = "# ecsd demo image: no DNS server configured (systemd-resolved is not installed).\n"

# Removed after debootstrap (relative globs; copyright files and locale.alias stay).
TRIM = ("var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "usr/share/man/*",
        "usr/share/info/*", "var/log/*.log", "var/log/apt/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old",
        "etc/ssh/ssh_host_*", "root/.ssh", "var/lib/dbus/machine-id", "tmp/*")


def _sources(codename: str) -> str:
    return (f"deb http://deb.debian.org/debian {codename} main\n"
            f"deb http://deb.debian.org/debian {codename}-updates main\n"
            f"deb http://security.debian.org/debian-security {codename}-security main\n")


def _hosts(hostname: str) -> str:
    return (f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def hostname(release: Release) -> str:
    return f"debian-{release.version}-demo"


def recipe(release: Release) -> dict:
    """Everything that decides an image's content (the mirror does not: any mirror serves the same packages)."""
    return {
        "version": RECIPE_VERSION, "codename": release.codename, "table": release.table, "disk": DISK_BYTES,
        "packages": PACKAGES, "network": NETWORK, "hostkeys": HOSTKEYS_UNIT, "sshd": SSHD_HOSTKEYS, "nodoc": NODOC,
        "resolv": RESOLV, "systemctl": SYSTEMCTL,
        "trim": TRIM, "sources": _sources(release.codename), "hostname": hostname(release),
    }


def recipe_hash(release: Release) -> str:
    return hashlib.sha256(json.dumps(recipe(release), sort_keys=True).encode()).hexdigest()[:12]


def file_name(release: Release) -> str:
    return f"debian-{release.version}-{release.codename}-{recipe_hash(release)}.raw"


def image_id(release: Release) -> str:
    """The image id ``build-demo`` registers: the same for the same recipe, on every host."""
    return str(uuid.uuid5(NAMESPACE, f"image:{file_name(release)}"))


def root_uuid(release: Release) -> str:
    return str(uuid.uuid5(NAMESPACE, f"rootfs:{file_name(release)}"))


def default_cache() -> Path:
    return Path(os.environ.get("ECSD_DEMO_CACHE") or Path.home() / ".cache" / "ecsd-demo-images")


def default_mirror() -> str:
    return os.environ.get("ECSD_DEMO_MIRROR") or DEFAULT_MIRROR


def missing_tools() -> str | None:
    """Why images cannot be built here (not root, a tool missing, with its Debian package), or None."""
    if os.geteuid() != 0:
        return "building the demo images needs root (debootstrap and chroot); run it with sudo"
    for tool, package in TOOLS.items():
        if proc.which(tool) is None:
            return f"{tool} is missing (apt-get install --no-install-recommends {package})"
    return None


# --- reading an image back -------------------------------------------------------------------------------------


def partition_table(disk: str | os.PathLike) -> dict:
    """``sfdisk --json``'s ``partitiontable`` of ``disk`` (label, partitions with start and size in sectors)."""
    found = partitions.table(os.fspath(disk))
    if found is None:
        raise DriverError(f"{disk} has no partition table")
    return found


def root_partition(disk: str | os.PathLike) -> tuple[int, int]:
    """(offset, size) in bytes of the Linux partition that holds the root file system (the last one)."""
    table = partition_table(disk)
    linux = [p for p in table.get("partitions", []) if p["type"].upper() in ("83", LINUX_FS)]
    if not linux:
        raise DriverError(f"{disk} has no Linux partition")
    sector = int(table.get("sectorsize", SECTOR))
    return int(linux[-1]["start"]) * sector, int(linux[-1]["size"]) * sector


def _fs(disk: str | os.PathLike) -> str:
    """The root file system as e2fsprogs names a file system inside a file: ``disk?offset=N``."""
    return f"{os.fspath(disk)}?offset={root_partition(disk)[0]}"


def read_file(disk: str | os.PathLike, path: str) -> bytes | None:
    """The content of ``path`` in the root file system, following symbolic links; None if it is not there."""
    return partitions.read(_fs(disk), path)


def list_dir(disk: str | os.PathLike, path: str) -> list[str] | None:
    """Names in directory ``path`` of the root file system (None if it is not there)."""
    found = partitions.names(_fs(disk), path)
    return None if found is None else list(found)


def exists(disk: str | os.PathLike, path: str) -> bool:
    return partitions.exists(_fs(disk), path)


def fs_uuid(disk: str | os.PathLike) -> str | None:
    return partitions.fs_uuid(_fs(disk))


def check_image(disk: str | os.PathLike, release: Release) -> list[str]:
    """What is wrong with a built image of ``release`` (empty when it is as this module describes)."""
    problems: list[str] = []
    table = partition_table(disk)
    parts = table.get("partitions", [])
    if table.get("label") != release.table:
        problems.append(f"partition table {table.get('label')!r}, expected {release.table!r}")
    if release.table == "dos" and [(p["start"], p["type"]) for p in parts] != [(MIB_SECTORS, "83")]:
        problems.append(f"expected one Linux partition from 1 MiB, found {parts}")
    if release.table == "gpt" and [p["type"].upper() for p in parts] != [BIOS_BOOT, LINUX_FS]:
        problems.append(f"expected a BIOS-boot and a Linux partition, found {parts}")
    if fs_uuid(disk) != root_uuid(release):
        problems.append("the root file system does not carry the recipe's UUID")
    release_text = (read_file(disk, "/etc/os-release") or b"").decode("utf-8", "replace")
    if f'PRETTY_NAME="{release.pretty_name}"' not in release_text:
        problems.append(f"/etc/os-release is not {release.pretty_name}'s")
    for path in ("/sbin/init", "/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/sbin/e2fsck",
                 "/etc/systemd/network/50-ecsd-dhcp.network",
                 "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
                 "/etc/systemd/system/multi-user.target.wants/ssh.service",
                 "/etc/systemd/system/ssh.service.wants/ecsd-ssh-hostkeys.service"):
        if not exists(disk, path):
            problems.append(f"{path} is missing")
    boot = list_dir(disk, "/boot") or []
    for prefix in ("vmlinuz-", "initrd.img-"):
        if not any(n.startswith(prefix) for n in boot):
            problems.append(f"no /boot/{prefix}*")
    if any(n.startswith("ssh_host_") for n in list_dir(disk, "/etc/ssh") or []):
        problems.append("the image carries SSH host keys")
    for path in ("/root/.ssh", "/usr/bin/cloud-init", "/etc/cloud"):
        if exists(disk, path):
            problems.append(f"{path} should not be in the image")
    fstab = (read_file(disk, "/etc/fstab") or b"").decode()
    if f"UUID={root_uuid(release)} / ext4" not in fstab:
        problems.append("/etc/fstab does not mount / by UUID")
    shadow = (read_file(disk, "/etc/shadow") or b"").decode()
    if not re.search(r"^root:[*!]", shadow, re.MULTILINE):
        problems.append("root has a usable password")
    if read_file(disk, "/etc/machine-id") != b"":
        problems.append("/etc/machine-id is not empty")
    return problems


# --- building --------------------------------------------------------------------------------------------------

Echo = Callable[[str], None]


def _write(tree: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = tree / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def _remove(tree: Path, patterns: Iterable[str]) -> None:
    for pattern in patterns:
        for path in tree.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def debootstrap(tree: Path, release: Release, mirror: str, log: Path) -> None:
    """A minimal Debian of ``release`` in ``tree`` (no recommends, so no cloud-init can creep in)."""
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", release.codename,
            str(tree), mirror]
    res = proc.run_sync(argv, timeout=3600, check=False)
    log.write_bytes(res.out + res.err)
    if res.rc != 0:
        tail = " | ".join(res.text.strip().splitlines()[-4:] + res.error_text.splitlines()[-4:])
        raise DriverError(f"debootstrap of {release.codename} failed (exit {res.rc}; log {log}): {tail[-600:]}")


def configure(tree: Path, release: Release) -> None:
    """Turn the debootstrap tree into an image: network, SSH, fstab, identity, no secrets of this host."""
    name = hostname(release)
    _write(tree, "etc/systemd/network/50-ecsd-dhcp.network", NETWORK)
    _write(tree, "etc/systemd/system/ecsd-ssh-hostkeys.service", HOSTKEYS_UNIT)
    _write(tree, "etc/ssh/sshd_config.d/ecsd-hostkeys.conf", SSHD_HOSTKEYS)
    _write(tree, "etc/dpkg/dpkg.cfg.d/ecsd-nodoc", NODOC)
    _write(tree, "etc/fstab", f"# / is the ext4 file system made by ecsd images build-demo\n"
                              f"UUID={root_uuid(release)} / ext4 errors=remount-ro 0 1\n")
    _write(tree, "etc/hostname", name + "\n")
    _write(tree, "etc/hosts", _hosts(name))
    # debootstrap copied this host's resolv.conf and wrote sources for the build mirror.
    _write(tree, "etc/resolv.conf", RESOLV)
    _write(tree, "etc/apt/sources.list", _sources(release.codename))
    _write(tree, "etc/machine-id", "", 0o444)
    shadow = tree / "etc/shadow"
    shadow.write_text(re.sub(r"^root:[^:]*:", "root:*:", shadow.read_text(), count=1, flags=re.MULTILINE))
    for argv in SYSTEMCTL:
        proc.run_sync(["chroot", str(tree), "systemctl", *argv], timeout=120)


def trim(tree: Path) -> None:
    """Remove what a small image can do without; copyright files and locale.alias stay."""
    _remove(tree, TRIM)
    for doc in (tree / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for item in doc.iterdir():
                if item.name != "copyright":
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        else:
            doc.unlink()
    for item in (tree / "usr/share/locale").glob("*"):
        if item.name != "locale.alias":
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def _table_script(release: Release) -> str:
    seed = file_name(release)
    if release.table == "dos":
        label_id = "0x" + hashlib.sha256(seed.encode()).hexdigest()[:8]
        return f"label: dos\nlabel-id: {label_id}\nstart={MIB_SECTORS}, type=83\n"
    disk_id = uuid.uuid5(NAMESPACE, f"disk:{seed}")
    part_id = uuid.uuid5(NAMESPACE, f"part:{seed}")
    return (f"label: gpt\nlabel-id: {disk_id}\n"
            f"start={MIB_SECTORS}, size={MIB_SECTORS}, type={BIOS_BOOT}, name=bios-boot\n"
            f"start={2 * MIB_SECTORS}, type={LINUX_FS}, uuid={part_id}, name=root\n")


def make_disk(tree: Path, out: Path, release: Release) -> None:
    """A sparse raw disk with ``release``'s partition table and ``tree`` as the ext4 root partition."""
    if _mounts_under(tree):
        raise DriverError(f"file systems are still mounted under {tree}; not making an image of it")
    with open(out, "wb") as fh:
        fh.truncate(DISK_BYTES)
    proc.run_sync(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(out)],
                  input=_table_script(release).encode(), timeout=60)
    offset, size = root_partition(out)
    proc.run_sync(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), "-U", root_uuid(release), "-L", "root",
                   "-E", f"offset={offset},nodiscard", str(out), f"{size // 1024}k"], timeout=1800)


def _mounts_under(tree: Path) -> list[str]:
    prefix = str(tree.resolve()).rstrip("/") + "/"
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1].replace("\\040", " ") for line in fh]
    return [p for p in points if (p + "/").startswith(prefix)]


def _remove_tree(tree: Path) -> None:
    """Delete a build tree, never crossing into a file system mounted inside it (a killed debootstrap can
    leave /proc or /sys mounted there)."""
    for point in sorted(_mounts_under(tree), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if tree.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(tree)], check=False, capture_output=True)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_echo_lock = threading.Lock()


def build_image(cache_dir: Path, release: Release, mirror: str, echo: Echo) -> Path:
    """The cached image of ``release``, built first if the cache has none for this recipe."""
    final = cache_dir / file_name(release)
    if final.is_file():
        _forget_older(cache_dir, release, final)
        return final

    def say(text: str) -> None:
        with _echo_lock:
            echo(f"[{release.codename}] {text}")

    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{final.name}.lock"):
        if final.is_file():  # another process finished it while this one waited
            return final
        why = missing_tools()
        if why:
            raise DriverError(why)
        # Under the lock, leftovers of this image's earlier builds are stale (killed runs): clear them.
        for stale in cache_dir.glob(f".{final.name}.build-*"):
            _remove_tree(stale) if stale.is_dir() else stale.unlink()
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=cache_dir))
        try:
            tree, part = work / "tree", work / "disk.raw"
            started = time.monotonic()
            t = time.monotonic()
            say(f"debootstrap from {mirror} (a few minutes) ...")
            debootstrap(tree, release, mirror, cache_dir / f"{final.stem}.debootstrap.log")
            say(f"debootstrap done in {time.monotonic() - t:.0f} s")
            t = time.monotonic()
            configure(tree, release)
            trim(tree)
            say(f"configured and trimmed in {time.monotonic() - t:.1f} s")
            t = time.monotonic()
            make_disk(tree, part, release)
            _remove_tree(tree)
            say(f"{release.table} disk with the ext4 root made in {time.monotonic() - t:.1f} s")
            problems = check_image(part, release)
            if problems:
                raise DriverError(f"the {release.codename} image is not as intended: {'; '.join(problems)}")
            part.chmod(0o444)
            os.replace(part, final)
            used = os.stat(final).st_blocks * 512 / 1024**2
            say(f"ready in {time.monotonic() - started:.0f} s: {final} ({used:.0f} MiB allocated)")
        finally:
            _remove_tree(work)
    _forget_older(cache_dir, release, final)
    return final


def _forget_older(cache_dir: Path, release: Release, current: Path) -> None:
    """Remove this release's images of earlier recipes from the cache. An image store that imported one
    keeps it: it holds a hard link (or a copy) of its own."""
    for old in cache_dir.glob(f"debian-{release.version}-{release.codename}-*"):
        if not old.name.startswith(current.stem):
            old.unlink(missing_ok=True)
            (cache_dir / f".{old.name}.lock").unlink(missing_ok=True)


def build_demo_images(cache_dir: str | os.PathLike | None = None, mirror: str | None = None,
                      releases: Iterable[str] = DEFAULT_RELEASES, echo: Echo = print) -> list[Path]:
    """The raw demo images of ``releases``, from the cache or built (concurrently) into it; DriverError
    when one cannot be built (not root, a tool missing, debootstrap failing)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache()
    mirror = mirror or default_mirror()
    if not re.match(r"^(https?|file)://\S+$", mirror):
        raise DriverError(f"the mirror must be an http://, https:// or file:// URL, not {mirror!r}")
    chosen = []
    for codename in releases:
        if codename not in RELEASES:
            raise DriverError(f"unknown release {codename!r} (known: {', '.join(RELEASES)})")
        chosen.append(RELEASES[codename])
    if len(chosen) == 1:
        return [build_image(cache, chosen[0], mirror, echo)]
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        futures = [pool.submit(build_image, cache, r, mirror, echo) for r in chosen]
        return [f.result() for f in futures]
