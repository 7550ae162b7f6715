"""``ecsd images``: the local driver's image store, from the command line.

    ecsd images import FILE --name NAME [--os-type Linux] [--platform Debian] [--min-disk GB] ...
    ecsd images list
    ecsd images build-demo [--cache DIR] [--mirror URL] [--json]

``import`` checks FILE (raw or qcow2 holding an ext2/3/4 file system with /sbin/init), stores it
as ``DATA_DIR/local/images/<id>.raw`` and inserts the image into the images table of the same
installation (SQLite in --data-dir, or PostgreSQL with --database-url), so that the API lists it and
change OS / create can use it with ``--driver local``. The group is attached to the ``ecsd`` command
with ``main.add_command(images)``.

``build-demo`` builds (or takes from its cache) the two Debian images of :mod:`.demo`, imports them as
``import`` does with ``--link`` and registers them under ids derived from their recipe, so that running
it again registers nothing twice.
"""

from __future__ import annotations

import errno
import json
import os
import uuid

import click

from ecsd.config import Settings, default_data_dir
from ecsd.drivers.base import DriverError


def _settings(data_dir: str | None, database_url: str | None) -> Settings:
    s = Settings()
    s.data_dir = data_dir or os.environ.get("ECSD_DATA_DIR") or default_data_dir()
    s.database_url = database_url or os.environ.get("ECSD_DATABASE_URL") or None
    return s


def _store(settings: Settings):
    from ecsd.store import migrate
    from ecsd.store.db import Store

    if settings.database_url is None:
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
    store = Store(settings.url)
    migrate.upgrade(store.engine)
    return store


def store_dir(settings: Settings) -> str:
    return os.path.join(settings.data_dir, "local", "images")


_data_dir = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                         help="The installation's data directory [default: ~/.local/share/ecsd].")
_db_url = click.option("--database-url", default=None,
                       help="postgresql://user@host:port/db when the installation uses PostgreSQL.")


@click.group()
def images() -> None:
    """Images for the local QEMU driver (files in DATA_DIR/local/images)."""


@images.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="The image name shown by the API.")
@click.option("--os-type", type=click.Choice(["Linux", "Windows", "Other"]), default="Linux", show_default=True)
@click.option("--platform", default="Other", show_default=True, help="__platform, e.g. Debian, Ubuntu.")
@click.option("--os-version", default=None, help="__os_version [default: PRETTY_NAME of /etc/os-release].")
@click.option("--min-disk", type=click.IntRange(1, 1024), default=None,
              help="GB [default: the image's size, rounded up].")
@click.option("--min-ram", type=click.IntRange(0, 1 << 20), default=0, show_default=True, help="MB.")
@click.option("--id", "image_id", default=None, help="The image id (a UUID) [default: a new one].")
@click.option("--private", "owner", default=None, metavar="PROJECT_ID",
              help="Make the image private to this project instead of public.")
@click.option("--link", is_flag=True,
              help="Hard-link a raw FILE instead of copying it; FILE must then never change.")
@click.option("--json", "as_json", is_flag=True, help="Print the new image as JSON.")
@_data_dir
@_db_url
def images_import(file, name, os_type, platform, os_version, min_disk, min_ram, image_id, owner, link, as_json,
                  data_dir, database_url) -> None:
    """Check FILE, put it into the image store and register it as an image."""
    from ecsd.drivers.local.images import import_image, register

    if not 0 < len(name) <= 255:
        raise click.ClickException("the name must be 1 to 255 characters long")
    settings = _settings(data_dir, database_url)
    store = _store(settings)
    try:
        try:
            row = import_image(store_dir(settings), os.path.abspath(file), name=name, os_type=os_type,
                               platform=platform, os_version=os_version, min_disk=min_disk, min_ram=min_ram,
                               image_id=image_id, visibility="private" if owner else "public", owner=owner,
                               link=link)
        except DriverError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            store.run_sync(register, row)
        except Exception:
            # The row could not be stored (duplicate id, database down): the file goes too.
            stored = os.path.join(store_dir(settings), json.loads(row["properties"])["__ecsd_file"])
            if os.path.exists(stored):
                os.unlink(stored)
            raise
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({k: row[k] for k in ("id", "name", "os_version", "min_disk", "disk_format",
                                                   "size", "visibility")}, indent=2))
        return
    click.echo(f"Imported image {name} ({row['id']}): {row['os_version']}, min_disk {row['min_disk']} GB, "
               f"stored as {store_dir(settings)}/{row['id']}.raw")


@images.command("list")
@_data_dir
@_db_url
def images_list(data_dir, database_url) -> None:
    """List the images that have a file in this host's image store (usable with --driver local)."""
    from sqlalchemy import select

    from ecsd.store.schema import images as table

    settings = _settings(data_dir, database_url)
    store = _store(settings)
    try:
        rows = store.run_sync(lambda conn: conn.execute(
            select(table.c.id, table.c.name, table.c.status, table.c.os_version, table.c.properties)
            .order_by(table.c.name)).all())
    finally:
        store.close()
    found = False
    for r in rows:
        stored = json.loads(r.properties or "{}").get("__ecsd_file")
        if stored:
            present = os.path.isfile(os.path.join(store_dir(settings), stored))
            click.echo(f"{r.id}  {r.name}  {r.status}  {r.os_version}" + ("" if present else "  (FILE MISSING)"))
            found = True
    if not found:
        click.echo("(no image has a file in this host's image store)")


@images.command("build-demo")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Where finished images are kept [default: $ECSD_DEMO_CACHE or ~/.cache/ecsd-demo-images].")
@click.option("--mirror", default=None,
              help="Debian mirror for debootstrap [default: $ECSD_DEMO_MIRROR or http://deb.debian.org/debian].")
@click.option("--json", "as_json", is_flag=True, help="Print the two images as JSON (progress goes to stderr).")
@_data_dir
@_db_url
def images_build_demo(cache_dir, mirror, as_json, data_dir, database_url) -> None:
    """Build two small Debian images (12 and 13) from Debian packages, import and register them.

    Building needs root, debootstrap, fdisk and e2fsprogs, and takes a few minutes; finished images are
    cached, so later runs (and other data directories) take them at once. Running it again registers
    nothing twice.
    """
    from ecsd.drivers.local import demo

    def echo(text: str) -> None:
        click.echo(text, err=as_json)

    try:
        files = demo.build_demo_images(cache_dir, mirror=mirror, echo=echo)
    except DriverError as exc:
        raise click.ClickException(str(exc)) from None
    settings = _settings(data_dir, database_url)
    store = _store(settings)
    try:
        made = [_import_demo(store, settings, demo.RELEASES[name], str(path), echo)
                for name, path in zip(demo.DEFAULT_RELEASES, files, strict=True)]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"images": made}, indent=2))
        return
    click.echo(_next_steps(settings, made))


def _import_demo(store, settings: Settings, release, path: str, echo) -> dict:
    """Import and register one demo image, or say that it already is (same recipe, same id)."""
    from sqlalchemy import select

    from ecsd.drivers.local.demo import image_id
    from ecsd.drivers.local.images import FILE_KEY, import_image, register
    from ecsd.store.schema import images as table

    ident = image_id(release)
    facts = {"id": ident, "name": release.image_name, "os_version": release.pretty_name, "file": path}
    found = store.run_sync(lambda conn: conn.execute(
        select(table.c.properties).where(table.c.id == ident)).first())
    if found is not None:
        stored = json.loads(found.properties or "{}").get(FILE_KEY)
        present = bool(stored) and os.path.isfile(os.path.join(store_dir(settings), stored))
        echo(f"{release.image_name} is already registered as {ident}"
             + ("" if present else " (FILE MISSING from the image store)"))
        return {**facts, "new": False}
    if os.path.lexists(os.path.join(store_dir(settings), f"{ident}.raw")):
        raise click.ClickException(
            f"the image store has {ident}.raw but no image row for it (an import that did not finish); remove "
            "that file if no disk uses it and run build-demo again")

    def imported(link: bool) -> dict:
        # os_version given: /etc/os-release is a symbolic link in Debian, which a reader may not follow.
        return import_image(store_dir(settings), path, name=release.image_name, os_type="Linux",
                            platform="Debian", os_version=release.pretty_name, image_id=ident, link=link)

    try:
        try:
            row = imported(link=True)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM):
                raise
            echo(f"{release.image_name}: the image store is on another file system than the cache; copying")
            row = imported(link=False)
    except DriverError as exc:
        raise click.ClickException(f"{release.image_name}: {exc}") from None
    try:
        store.run_sync(register, row)
    except Exception:
        stored = os.path.join(store_dir(settings), json.loads(row["properties"])[FILE_KEY])
        if os.path.exists(stored):
            os.unlink(stored)
        raise
    echo(f"Imported {release.image_name} ({ident}): {row['os_version']}, min_disk {row['min_disk']} GB")
    return {**facts, "new": True}


# Any UUIDs do (ecsd has no VPC service); fixed ones make the printed commands copyable as they are.
_DEMO_VPC = uuid.uuid5(uuid.NAMESPACE_URL, "ecsd:demo:vpc")
_DEMO_SUBNET = uuid.uuid5(uuid.NAMESPACE_URL, "ecsd:demo:subnet")


def _next_steps(settings: Settings, made: list[dict]) -> str:
    first, second = made[0], made[1]
    where = "" if settings.database_url else f" --data-dir {settings.data_dir}"
    return f"""
Images ready:
  {first['id']}  {first['name']}  {first['os_version']}
  {second['id']}  {second['name']}  {second['os_version']}

Next: serve with the local driver, create a server from one image, log in, change its OS to the other.
  ecsd serve --driver local{where} &
  export ECSD_DATA_DIR={settings.data_dir}    # where the client commands find credentials.json
  ecsd keypair create demo1 --private-key-file demo1.pem
  ecsd server create --name demo --image {first['id']} --flavor s3.small.1 --key-pair demo1 \\
      --vpc {_DEMO_VPC} --subnet {_DEMO_SUBNET} --wait
  ecsd server show demo                        # its fixed IP
  ssh -i demo1.pem root@FIXED_IP cat /etc/os-release
  ecsd keypair create demo2 --private-key-file demo2.pem
  ecsd server change-os demo --image {second['id']} --key-pair demo2 --wait
  ssh -i demo2.pem root@FIXED_IP cat /etc/os-release    # {second['os_version']}; demo1.pem is refused now"""
