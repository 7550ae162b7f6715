"""Where the local driver keeps its files, and the checks done before a path is built from an id.

Ids come from the domain (UUIDs chosen before a step runs), but they reach the driver from job
parameters that were once request data, so every id is checked against a strict pattern before it
becomes part of a path. Nothing else from a request is ever used in a path.

Layout under the driver's root (``DATA_DIR/local``)::

    images/<image_id>.raw          the image store: immutable files, read-only
    disks/<volume_id>.qcow2        disks (or .raw); ``.part`` while being created
    servers/<server_id>/           server.json (attached disks, running flag), console.log,
                                   console.prev.log, qemu.pid
    boot/<kernel release>/         the driver's kernel and initramfs
    tmp/                           debugfs scratch files, FUSE mount points
    helpers/<pid>.<start>.json     one record per running helper process (helpers.py)

QMP and VNC sockets live in a short private directory (``/tmp/ecsd-<uid>/<hash of root>/``), because a
unix socket path must stay under 108 bytes and the root may be deep. The guest networks' dnsmasq
files live in ``/tmp/ecsd-net-<uid>/<hash of root>/<bridge>/`` (network.py): derived from the
servers' records, rebuilt at each start of a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile

from ecsd.drivers.base import DriverError

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A file name inside the image store: no directory part, no leading dot.
_STORE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DEVICE = re.compile(r"/dev/[sv]d[a-z]")


def check_id(value: object, what: str = "id") -> str:
    """``value`` if it is a lower-case UUID, else DriverError (no path is built from anything else)."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise DriverError(f"{what} {value!r} is not a UUID")
    return value


def check_store_name(value: object) -> str:
    if not isinstance(value, str) or not _STORE_NAME.fullmatch(value) or ".." in value:
        raise DriverError(f"image file name {value!r} is not a plain file name inside the image store")
    return value


def check_device(value: object) -> str:
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise DriverError(f"device {value!r} is not a disk device name like /dev/vda")
    return value


def inside(base: str, path: str) -> str:
    """``path`` resolved, refusing anything that resolves outside ``base`` (symbolic links included)."""
    real_base = os.path.realpath(base)
    real = os.path.realpath(path)
    if os.path.commonpath([real_base, real]) != real_base or real == real_base:
        raise DriverError(f"{path} is outside {base}")
    return real


def qemu_escape(value: str) -> str:
    """A value inside a QEMU ``key=value,...`` option: commas are doubled."""
    return value.replace(",", ",,")


def private_dir(path: str) -> str:
    """Create (or check) a directory only this user can enter; refuse one somebody else prepared."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise DriverError(f"{path} is not a directory owned by this user")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


class Layout:
    """The paths of one driver root. Only :meth:`disk`, :meth:`server_dir` and friends join ids."""

    def __init__(self, root: str, run_dir: str | None = None) -> None:
        self.root = os.path.abspath(root)
        self.images = os.path.join(self.root, "images")
        self.disks = os.path.join(self.root, "disks")
        self.servers = os.path.join(self.root, "servers")
        self.boot = os.path.join(self.root, "boot")
        self.tmp = os.path.join(self.root, "tmp")
        self.helpers = os.path.join(self.root, "helpers")
        digest = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        self.run = run_dir or os.path.join(tempfile.gettempdir(), f"ecsd-{os.getuid()}", digest)
        # The guest networks' dnsmasq files: readable by the unprivileged user dnsmasq becomes (network.py).
        self.networks = os.path.join(tempfile.gettempdir(), f"ecsd-net-{os.getuid()}", digest)

    def ensure(self) -> None:
        private_dir(self.root)
        private_dir(self.tmp)
        private_dir(self.helpers)
        for d in (self.images, self.disks, self.servers, self.boot):
            os.makedirs(d, mode=0o700, exist_ok=True)

    def ensure_run(self) -> str:
        """The QMP socket directory, made when the first server starts."""
        private_dir(os.path.dirname(self.run))
        return private_dir(self.run)

    def ensure_networks(self) -> str:
        """The networks' directory: owned by this user, 0755 (dnsmasq re-reads its hosts file as nobody)."""
        for d in (os.path.dirname(self.networks), self.networks):
            os.makedirs(d, mode=0o755, exist_ok=True)
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                raise DriverError(f"{d} is not a directory owned by this user")
            if st.st_mode & 0o777 != 0o755:
                os.chmod(d, 0o755)
        return self.networks

    def release_run(self) -> None:
        """Remove the socket directory once no socket is left in it."""
        with contextlib.suppress(OSError):
            os.rmdir(self.run)

    def disk(self, volume_id: str, fmt: str) -> str:
        return os.path.join(self.disks, f"{check_id(volume_id, 'volume id')}.{fmt}")

    def server_dir(self, server_id: str) -> str:
        return os.path.join(self.servers, check_id(server_id, "server id"))

    def qmp_socket(self, server_id: str) -> str:
        return os.path.join(self.run, f"{check_id(server_id, 'server id')}.qmp")

    def vnc_socket(self, server_id: str) -> str:
        return os.path.join(self.run, f"{check_id(server_id, 'server id')}.vnc")
