"""Writing the login key pair, the admin password and user data into a disk's file system, without
mounting it and without anything running in the guest: ``debugfs -w`` on a raw view of the disk.

What goes where (the contract with the image, see docs/drivers.md):

* public keys: appended to ``/root/.ssh/authorized_keys`` unless already there (keys the image has
  are kept); ``/root/.ssh`` mode 0700, the file 0600, both owned by root;
* admin password: root's entry in ``/etc/shadow`` gets the password's SHA-512 crypt hash (``$6$``,
  a new random salt, made by ``openssl passwd -6``, which every Debian and Ubuntu image's glibc
  reads) and today as the day of the last change, as Nova's file injection did: nothing in the image
  has to run for it; the file keeps its mode and owner (0640 root:shadow on Debian); an image
  without ``/etc/shadow`` or without a root entry in it cannot take a password (DriverError);
* user data: ``/var/lib/ecsd/user-data`` (0600, root), the bytes as given.

debugfs resolves every path inside the image, so a hostile image (``/root/.ssh`` a symbolic link to
``/etc``, say) can at worst redirect the write inside itself, never onto the host. debugfs exits 0
even when a command fails, so every write is read back and compared.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time

from ecsd.drivers.base import DriverError, Injection
from ecsd.drivers.local import proc

AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
AGENT_DIR = "/var/lib/ecsd"
SHADOW = "/etc/shadow"
USER_DATA = f"{AGENT_DIR}/user-data"
MAX_KEY = 16 * 1024
_NOT_FOUND = re.compile(r"File not found|not found by ext2_lookup")
_OPEN_FAILED = re.compile(r"while (trying to open|opening filesystem)|Filesystem not open|Bad magic")
_MODE = re.compile(r"Mode:\s+(\d+)")
_OWNER = re.compile(r"User:\s+(\d+)\s+Group:\s+(\d+)")


def check_key(key: object) -> str:
    """One public key line: no line breaks or control characters (one key must stay one line)."""
    if not isinstance(key, str):
        raise DriverError("a public key must be text")
    key = key.strip()
    if not key or len(key) > MAX_KEY or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise DriverError("a public key must be one line of printable text")
    return key


def _open_failed(res: proc.Result) -> None:
    if _OPEN_FAILED.search(res.error_text):
        raise DriverError("the disk has no ext2/3/4 file system that debugfs can open: "
                          + res.error_text.splitlines()[-1][:200])


async def read_file(view: str, path: str) -> bytes | None:
    """The content of ``path`` in the file system of ``view``, or None when it does not exist."""
    res = await proc.run(["debugfs", "-R", f"cat {path}", view], timeout=60)
    _open_failed(res)
    if _NOT_FOUND.search(res.error_text):
        return None
    return res.out


async def stat(view: str, path: str) -> tuple[int, int, int] | None:
    """(mode bits, uid, gid) of ``path``, or None when it does not exist."""
    res = await proc.run(["debugfs", "-R", f"stat {path}", view], timeout=60)
    _open_failed(res)
    mode, owner = _MODE.search(res.text), _OWNER.search(res.text)
    if _NOT_FOUND.search(res.error_text) or mode is None or owner is None:
        return None
    return int(mode.group(1), 8), int(owner.group(1)), int(owner.group(2))


def _put(lines: list[str], scratch: str, path: str, mode: int = 0o600, uid: int = 0, gid: int = 0) -> None:
    """debugfs commands replacing ``path`` with the scratch file of that name, with that mode and owner."""
    lines += [f"rm {path}", f"write {scratch} {path}",
              f"set_inode_field {path} mode 0{0o100000 | mode:o}", f"set_inode_field {path} uid {uid}",
              f"set_inode_field {path} gid {gid}"]


async def password_hash(password: str) -> str:
    """The SHA-512 crypt hash of ``password`` with a random salt (``openssl passwd -6``, off the event loop;
    the password goes through a pipe, never the command line)."""
    if any(c in password for c in "\n\r\0"):
        raise DriverError("a password cannot hold line breaks")
    res = await proc.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode() + b"\n", timeout=30)
    hashed = res.text.strip()
    if not hashed.startswith("$6$") or ":" in hashed or "\n" in hashed:
        raise DriverError("openssl did not make a SHA-512 crypt hash")
    return hashed


def with_root_password(shadow: bytes, hashed: str, today: int) -> bytes:
    """``/etc/shadow`` with root's password hash and last-change day replaced (other lines as they were)."""
    lines = shadow.decode("utf-8", "surrogateescape").split("\n")
    for n, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root" and len(fields) >= 3:
            fields[1], fields[2] = hashed, str(today)
            lines[n] = ":".join(fields)
            return "\n".join(lines).encode("utf-8", "surrogateescape")
    raise DriverError("the image's /etc/shadow has no entry for root: the password cannot be set")


def _mkdirs(lines: list[str], path: str, mode: str) -> None:
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        lines.append("mkdir /" + "/".join(parts[:i]))   # "already exists" is harmless
    lines += [f"set_inode_field {path} mode {mode}", f"set_inode_field {path} uid 0",
              f"set_inode_field {path} gid 0"]


async def inject(view: str, what: Injection, scratch_root: str) -> None:
    """Write ``what`` into the ext4 file system of ``view`` (a raw file). Idempotent."""
    keys = [check_key(k) for k in what.public_keys]
    if not keys and what.admin_pass is None and what.user_data is None:
        return
    files: dict[str, bytes] = {}
    owners: dict[str, tuple[int, int, int]] = {}
    if what.admin_pass is not None:
        shadow = await read_file(view, SHADOW)
        owner = await stat(view, SHADOW)
        if shadow is None or owner is None:
            raise DriverError("the image has no /etc/shadow: the password cannot be set")
        files[SHADOW] = with_root_password(shadow, await password_hash(what.admin_pass), int(time.time() // 86400))
        owners[SHADOW] = (owner[0] & 0o7777, owner[1], owner[2])
    if keys:
        existing = await read_file(view, AUTHORIZED_KEYS) or b""
        have = {ln.strip() for ln in existing.decode("utf-8", "replace").splitlines()}
        missing = [k for k in dict.fromkeys(keys) if k not in have]
        content = existing
        if content and not content.endswith(b"\n"):
            content += b"\n"
        content += "".join(k + "\n" for k in missing).encode()
        files[AUTHORIZED_KEYS] = content
    if what.user_data is not None:
        files[USER_DATA] = bytes(what.user_data)

    lines: list[str] = []
    if keys:
        _mkdirs(lines, "/root/.ssh", "040700")
    if what.user_data is not None:
        _mkdirs(lines, AGENT_DIR, "040700")
    # Scratch files live in a private directory that is removed at once (the password is in one of
    # them); debugfs runs there so that its script names them without any host path.
    scratch = tempfile.mkdtemp(prefix="inject-", dir=scratch_root)
    try:
        for n, (path, data) in enumerate(files.items()):
            name = f"f{n}"
            fd = os.open(os.path.join(scratch, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            _put(lines, name, path, *owners.get(path, (0o600, 0, 0)))
        res = await proc.run(["debugfs", "-w", "-f", "-", view], input=("\n".join(lines) + "\n").encode(),
                             cwd=scratch, timeout=120)
        _open_failed(res)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    for path, data in files.items():
        back = await read_file(view, path)
        if back != data:
            raise DriverError(f"writing {path} into the disk failed (read back "
                              f"{'nothing' if back is None else f'{len(back)} bytes'})")
        st = await stat(view, path)
        want = owners.get(path, (0o600, 0, 0))
        if st is None or (st[0] & 0o7777, st[1], st[2]) != want:
            raise DriverError(f"{path} in the disk does not have mode {want[0]:04o} and owner {want[1]}:{want[2]}")
