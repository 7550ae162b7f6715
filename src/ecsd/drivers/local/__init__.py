"""The local driver: servers are QEMU processes on this host, system disks are files.

One module per concept:

* :mod:`.paths`   where every file lives, and the strict id checks done before any path is built;
* :mod:`.proc`    running the host tools (qemu-img, debugfs, ...) as asyncio subprocesses;
* :mod:`.images`  the image store (``ecsd images import``) and finding an image's file;
* :mod:`.disks`   system and data disks as qcow2 overlays (or sparse raw copies), and raw views of them;
* :mod:`.inject`  key pair, root password (/etc/shadow) and user data written into a disk's ext4 root (debugfs);
* :mod:`.boot`    the driver's kernel and initramfs, taken from a Debian kernel package;
* :mod:`.partitions` inside a disk: its MBR/GPT table, its ext root file system, the kernel it boots;
* :mod:`.network` guest networks: a bridge and dnsmasq per (project, subnet), TAP devices, isolation,
                  and the user-mode fallback;
* :mod:`.server_nics` a server's NICs as the driver records them, and "up on its network";
* :mod:`.qemu`    one ``qemu-system-x86_64`` process per running server, controlled over QMP, and the
                  check that its guest came up;
* :mod:`.hotplug` disks plugged into and out of a running QEMU over QMP, with stable names and PCI slots;
* :mod:`.helpers` helper processes (FUSE views, the KVM probe) recorded durably, ended after a crash;
* :mod:`.driver`  :class:`LocalDriver`, the ``ComputeDriver`` the job steps call;
* :mod:`.demo`    two real Debian images built from Debian packages (``ecsd images build-demo``);
* :mod:`.cli`     the ``ecsd images`` command group.

See docs/drivers.md.
"""

from ecsd.drivers.local.driver import LocalDriver, LocalOptions, make_local_driver

__all__ = ["LocalDriver", "LocalOptions", "make_local_driver"]
