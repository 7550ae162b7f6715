"""Test-time OS images and boot kit for the local driver (a helper, not a test module).

Two tiny bootable "operating systems", A and B, are ext4 file systems made with ``mke2fs -d`` from a
staging folder (static busybox, an ``/etc/os-release`` of their own, an init): no mounting, no loop
devices. Their init prints ``/etc/os-release`` and ``/root/.ssh/authorized_keys`` to the serial
console between two marker lines, starts busybox acpid first (so that an ACPI power-down ends the
server), then waits. A third, X, is built the same way but does not boot: its init exits at once
(the kernel then panics with "Attempted to kill init!").

The driver's kernel and initramfs are built from a Debian kernel package (``ecsd.drivers.local.boot``).
Everything is built once into ``~/.cache/ecsd-test-images`` (``ECSD_TEST_IMAGE_CACHE``), never into
the repository; file names carry a hash of their recipe, so a changed recipe builds afresh.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import boot, proc

CACHE = os.environ.get("ECSD_TEST_IMAGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                 "ecsd-test-images")
MARKER_BEGIN = "ECS-BOOT-MARKER begin"
MARKER_END = "ECS-BOOT-MARKER end"
KERNEL_HINT = ("no Debian kernel package: run `cd ~/.cache/ecsd-test-images && apt-get download "
               "$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2}')` "
               "or set ECSD_TEST_KERNEL_DEB")

OS = {
    "A": {"ID": "ecsd-a", "NAME": "ecsd test OS A", "VERSION": "1.0 (Alder)", "PRETTY_NAME": "ecsd test OS A"},
    "B": {"ID": "ecsd-b", "NAME": "ecsd test OS B", "VERSION": "2.0 (Birch)", "PRETTY_NAME": "ecsd test OS B"},
    "X": {"ID": "ecsd-x", "NAME": "ecsd test OS X", "VERSION": "0 (broken)", "PRETTY_NAME": "ecsd test OS X"},
    "N": {"ID": "ecsd-n", "NAME": "ecsd test OS N", "VERSION": "0 (no network)", "PRETTY_NAME": "ecsd test OS N"},
}

INIT = """#!/bin/sh
# Test image init: say which OS this is and which keys it was given, then wait for the power button.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q " /dev devtmpfs " /proc/mounts || mount -t devtmpfs devtmpfs /dev
. /etc/os-release
acpid -c /etc/acpi -l /var/log/acpid.log -p /run/acpid.pid || echo "acpid did not start"
ifconfig lo up
# The first NIC takes its fixed IP by DHCP (the driver's boot check waits for that lease).
if [ -e /sys/class/net/eth0 ]; then
  (udhcpc -i eth0 -t 30 -T 1 -A 1 -n -q -s /etc/udhcpc.script >/dev/null 2>&1;
   echo "ecsd-test-os: eth0 $(ifconfig eth0 | grep -o 'inet addr:[0-9.]*')" &)
fi
echo "ECS-BOOT-MARKER begin os=$ID"
cat /etc/os-release
echo "--- /root/.ssh/authorized_keys ---"
if [ -f /root/.ssh/authorized_keys ]; then cat /root/.ssh/authorized_keys; else echo "(no authorized_keys)"; fi
echo "--- first-boot files ---"
ls /var/lib/ecsd 2>/dev/null
echo "ECS-BOOT-MARKER end os=$ID uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do sleep 3600; done
"""

# Image X: an init that exits at once, so that the image never comes up.
BROKEN_INIT = """#!/bin/sh
echo "ecsd test OS X: init exits with status 1"
exit 1
"""

POWER_BUTTON = "#!/bin/sh\nsync\npoweroff -f\n"
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ifconfig "$interface" 0.0.0.0 up ;;
  bound|renew) ifconfig "$interface" "$ip" netmask "${subnet:-255.255.0.0}" up ;;
esac
"""
PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
SHADOW = "root:*:19000:0:99999:7:::\n"


def _init(letter: str) -> str:
    """X: an init that exits; N: boots like A but never asks for an address (no DHCP client run)."""
    if letter == "X":
        return BROKEN_INIT
    if letter == "N":
        return INIT.replace("if [ -e /sys/class/net/eth0 ]; then", "if false; then")
    return INIT


def missing_tools() -> str | None:
    """Why the local driver cannot be tested here, or None."""
    for tool in ("qemu-system-x86_64", "qemu-img", "debugfs", "mke2fs", "dumpe2fs", "e2fsck", "resize2fs",
                 "dpkg-deb"):
        if proc.which(tool) is None:
            return (f"{tool} is missing (apt-get install --no-install-recommends qemu-utils qemu-system-x86 "
                    "busybox-static e2fsprogs)")
    try:
        boot.static_busybox()
    except DriverError:
        return "static busybox is missing (apt-get install busybox-static)"
    return None


def kernel_package() -> str | None:
    explicit = os.environ.get("ECSD_TEST_KERNEL_DEB") or os.environ.get("ECSD_LOCAL_KERNEL_DEB")
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    return boot.find_kernel_package((CACHE,))


def boot_kit() -> boot.BootKit:
    deb = kernel_package()
    if deb is None:
        raise DriverError(KERNEL_HINT)
    return boot.build_boot_kit(os.path.join(CACHE, "boot"), deb)


def _recipe(letter: str, busybox: str) -> str:
    h = hashlib.sha256()
    h.update(_init(letter).encode() + POWER_BUTTON.encode() + repr(sorted(OS[letter].items())).encode()
             + UDHCPC_SCRIPT.encode() + PASSWD.encode() + SHADOW.encode())
    with open(busybox, "rb") as fh:
        h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:12]


def _stage(root: str, letter: str, busybox: str) -> None:
    for d in ("bin", "sbin", "etc/acpi/PWRF", "proc", "sys", "dev", "tmp", "run", "var/lib", "var/log", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "root"), 0o700)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and applet != "init":
            os.symlink("busybox", os.path.join(root, "bin", applet))

    def write(rel: str, text: str, mode: int) -> None:
        path = os.path.join(root, rel)
        with open(path, "w") as fh:
            fh.write(text)
        os.chmod(path, mode)

    write("sbin/init", _init(letter), 0o755)
    write("etc/acpi/PWRF/00000080", POWER_BUTTON, 0o755)
    write("etc/os-release", "".join(f'{k}="{v}"\n' for k, v in OS[letter].items()), 0o644)
    write("etc/hostname", f"os-{letter.lower()}\n", 0o644)
    write("etc/udhcpc.script", UDHCPC_SCRIPT, 0o755)
    write("etc/passwd", PASSWD, 0o644)
    write("etc/shadow", SHADOW, 0o640)


def os_image(letter: str) -> str:
    """The raw ext4 image of test OS ``letter`` ("A", "B", the broken "X" or "N" without a DHCP client),
    built on first use (about 0.1 s)."""
    busybox = boot.static_busybox()
    path = os.path.join(CACHE, f"os-{letter.lower()}-{_recipe(letter, busybox)}.raw")
    if os.path.isfile(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        stage = os.path.join(work, "stage")
        _stage(stage, letter, busybox)
        out = os.path.join(work, "image.raw")
        proc.run_sync(["mke2fs", "-q", "-F", "-t", "ext4", "-L", f"os-{letter.lower()}", "-E", "root_owner=0:0",
                       "-d", stage, out, "64M"])
        os.replace(out, path)
    return path


def console_boots(text: str) -> list[str]:
    """The boot reports in a console log: the text between each begin and end marker."""
    out = []
    for chunk in text.split(MARKER_BEGIN)[1:]:
        out.append(chunk.split(MARKER_END)[0])
    return out


def skip_unless_testable() -> None:
    """Skip the calling test module, with the reason, where the local driver cannot be tested."""
    import pytest

    missing = missing_tools()
    if missing is None and kernel_package() is None:
        missing = KERNEL_HINT
    if missing:
        pytest.skip(f"local driver not testable here: {missing}", allow_module_level=True)
