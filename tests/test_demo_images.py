"""The demo images of ``ecsd images build-demo`` (src/ecsd/drivers/local/demo.py).

Slow: the first run builds two Debian images with debootstrap (about 2 minutes for both on two cores,
root and network needed) into the test image cache (``ECSD_TEST_IMAGE_CACHE``, else
``~/.cache/ecsd-test-images``, as tests/local_images.py), where later runs, and CI with that directory
kept, find them. Where the images are not cached and cannot be built (not root, debootstrap missing)
the tests that need them skip with the reason. Booting the images is the local driver's test
(tests/test_local_driver.py); here the images are read back without mounting anything.
"""

from __future__ import annotations

import json
import os

import pytest

from ecsd.drivers.base import DriverError
from ecsd.drivers.local import demo
from ecsd.drivers.local.images import FILE_KEY
from tests import local_images

CACHE = local_images.CACHE
BOOKWORM, TRIXIE = demo.RELEASES["bookworm"], demo.RELEASES["trixie"]


def _cached() -> bool:
    return all(os.path.isfile(os.path.join(CACHE, demo.file_name(r))) for r in (BOOKWORM, TRIXIE))


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    why = None if _cached() else demo.missing_tools()
    if why:
        pytest.skip(f"demo images not cached in {CACHE} and not buildable here: {why}")
    built = demo.build_demo_images(CACHE, echo=print)
    return {r: str(p) for r, p in zip(demo.DEFAULT_RELEASES, built, strict=True)}


# --- without building ------------------------------------------------------------------------------------------


def test_building_without_root_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DriverError, match="needs root"):
        demo.build_demo_images(tmp_path, releases=["bookworm"])
    assert not list(tmp_path.glob("*.raw")) and not list(tmp_path.glob(".*.build-*"))


def test_a_missing_tool_is_named_with_its_debian_package(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(demo.proc, "which", lambda tool: None if tool == "sfdisk" else f"/usr/sbin/{tool}")
    assert demo.missing_tools() == "sfdisk is missing (apt-get install --no-install-recommends fdisk)"


def test_unknown_releases_and_odd_mirrors_are_refused(tmp_path):
    with pytest.raises(DriverError, match="unknown release 'sid'"):
        demo.build_demo_images(tmp_path, releases=["sid"])
    with pytest.raises(DriverError, match="mirror must be"):
        demo.build_demo_images(tmp_path, mirror="deb.debian.org; rm -rf /")


def test_a_changed_recipe_names_a_new_file_and_image_id(monkeypatch):
    before = (demo.file_name(BOOKWORM), demo.image_id(BOOKWORM), demo.root_uuid(BOOKWORM))
    assert demo.file_name(BOOKWORM) != demo.file_name(TRIXIE)
    assert demo.image_id(BOOKWORM) != demo.image_id(TRIXIE)
    monkeypatch.setattr(demo, "PACKAGES", (*demo.PACKAGES, "curl"))
    after = (demo.file_name(BOOKWORM), demo.image_id(BOOKWORM), demo.root_uuid(BOOKWORM))
    assert all(b != a for b, a in zip(before, after, strict=True))


# --- the built images ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_images_are_cached_and_a_second_call_builds_nothing(images, monkeypatch):
    for release in (BOOKWORM, TRIXIE):
        assert images[release.codename] == os.path.join(CACHE, demo.file_name(release))
        assert os.path.getsize(images[release.codename]) == demo.DISK_BYTES
        assert (os.stat(images[release.codename]).st_mode & 0o777) == 0o444
    assert not [n for n in os.listdir(CACHE) if ".build-" in n]

    def no_build(*args, **kwargs):
        raise AssertionError("a cached image was built again")

    monkeypatch.setattr(demo, "debootstrap", no_build)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # taking from the cache needs no root
    again = demo.build_demo_images(CACHE)
    assert [str(p) for p in again] == [images["bookworm"], images["trixie"]]


@pytest.mark.slow
def test_partition_tables_are_mbr_for_debian_12_and_gpt_for_debian_13(images):
    mbr = demo.partition_table(images["bookworm"])
    assert mbr["label"] == "dos"
    assert [(p["start"], p["type"]) for p in mbr["partitions"]] == [(2048, "83")]
    gpt = demo.partition_table(images["trixie"])
    assert gpt["label"] == "gpt"
    assert [(p["start"], p["size"], p["type"]) for p in gpt["partitions"]] == [
        (2048, 2048, "21686148-6449-6E6F-744E-656564454649"),  # BIOS boot, left empty
        (4096, gpt["partitions"][1]["size"], "0FC63DAF-8483-4772-8E79-3D69ED47C4E4")]
    # The root is partition 2 here, and fills the disk up to the backup GPT.
    assert demo.root_partition(images["trixie"]) == (4096 * 512, gpt["partitions"][1]["size"] * 512)
    assert 4096 + gpt["partitions"][1]["size"] <= gpt["lastlba"] + 1


@pytest.mark.slow
@pytest.mark.parametrize("codename", ["bookworm", "trixie"])
def test_root_file_system_is_a_bootable_debian_without_cloud_init(images, codename):
    release, disk = demo.RELEASES[codename], images[codename]
    assert demo.check_image(disk, release) == []
    os_release = demo.read_file(disk, "/etc/os-release").decode()
    assert f'PRETTY_NAME="Debian GNU/Linux {release.version} ({codename})"' in os_release
    boot = demo.list_dir(disk, "/boot")
    assert any(n.startswith("vmlinuz-") for n in boot) and any(n.startswith("initrd.img-") for n in boot)
    assert demo.exists(disk, "/sbin/init") and demo.exists(disk, "/usr/sbin/sshd")
    assert not [n for n in demo.list_dir(disk, "/etc/ssh") if n.startswith("ssh_host_")]
    assert not demo.exists(disk, "/root/.ssh")
    assert not demo.exists(disk, "/usr/bin/cloud-init") and not demo.exists(disk, "/etc/cloud")
    packages = demo.list_dir(disk, "/var/lib/dpkg/info")
    assert packages and not [n for n in packages if n.startswith("cloud-init")]
    network = demo.read_file(disk, "/etc/systemd/network/50-ecsd-dhcp.network").decode()
    assert "Name=en* eth*" in network and "DHCP=ipv4" in network and "ClientIdentifier=mac" in network
    assert demo.exists(disk, "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
    unit = demo.read_file(disk, "/etc/systemd/system/ecsd-ssh-hostkeys.service").decode()
    assert "Before=ssh.service" in unit and "ssh-keygen" in unit
    assert demo.exists(disk, "/etc/systemd/system/ssh.service.wants/ecsd-ssh-hostkeys.service")
    assert demo.fs_uuid(disk) == demo.root_uuid(release)
    assert f"UUID={demo.fs_uuid(disk)} / ext4" in demo.read_file(disk, "/etc/fstab").decode()
    assert demo.read_file(disk, "/etc/hostname") == f"debian-{release.version}-demo\n".encode()
    assert demo.read_file(disk, "/etc/machine-id") == b""
    shadow = demo.read_file(disk, "/etc/shadow").decode()
    assert shadow.startswith("root:*:") or "\nroot:*:" in shadow
    # Trimmed: no package archives or lists, no man pages.
    assert not [n for n in demo.list_dir(disk, "/var/cache/apt/archives") if n.endswith(".deb")]
    assert demo.list_dir(disk, "/usr/share/man") == []


@pytest.mark.slow
def test_check_image_finds_a_release_that_is_not_the_images(images):
    problems = demo.check_image(images["bookworm"], TRIXIE)
    assert any("partition table 'dos'" in p for p in problems)
    assert any("os-release" in p for p in problems)


@pytest.mark.slow
def test_build_demo_registers_two_images_and_a_second_run_registers_nothing(images, tmp_path):
    from click.testing import CliRunner

    from ecsd.drivers.local.cli import images as images_group
    from ecsd.store.db import Store, sqlite_url

    data_dir = str(tmp_path / "data")
    runner = CliRunner()
    args = ["build-demo", "--cache", CACHE, "--data-dir", data_dir, "--json"]
    first = runner.invoke(images_group, args)
    assert first.exit_code == 0, first.output
    made = json.loads(first.stdout)["images"]
    assert [(m["name"], m["new"]) for m in made] == [("Debian 12 (demo)", True), ("Debian 13 (demo)", True)]
    assert [m["id"] for m in made] == [demo.image_id(BOOKWORM), demo.image_id(TRIXIE)]
    store_dir = os.path.join(data_dir, "local", "images")
    for m, codename in zip(made, ("bookworm", "trixie"), strict=True):
        # Hard-linked from the cache, not copied.
        assert os.path.samefile(os.path.join(store_dir, f"{m['id']}.raw"), images[codename])

    second = runner.invoke(images_group, args)
    assert second.exit_code == 0, second.output
    assert [m["new"] for m in json.loads(second.stdout)["images"]] == [False, False]

    store = Store(sqlite_url(data_dir))
    rows = store.run_sync(lambda conn: conn.exec_driver_sql(
        "SELECT id, name, platform, os_version, min_disk, properties FROM images WHERE name LIKE '%(demo)' "
        "ORDER BY name").all())
    store.close()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (demo.image_id(BOOKWORM), "Debian 12 (demo)", "Debian", "Debian GNU/Linux 12 (bookworm)", 2),
        (demo.image_id(TRIXIE), "Debian 13 (demo)", "Debian", "Debian GNU/Linux 13 (trixie)", 2)]
    assert [json.loads(r[5])[FILE_KEY] for r in rows] == [f"{r[0]}.raw" for r in rows]

    text = runner.invoke(images_group, ["build-demo", "--cache", CACHE, "--data-dir", data_dir])
    assert text.exit_code == 0, text.output
    assert "already registered" in text.output and "ssh -i demo1.pem root@" in text.output
    assert demo.image_id(TRIXIE) in text.output
