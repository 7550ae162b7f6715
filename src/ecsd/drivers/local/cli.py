"""``ecsd images``: the local driver's image store, from the command line.

    ecsd images import FILE --name NAME [--os-type Linux] [--platform Debian] [--min-disk GB] ...
    ecsd images list

``import`` checks FILE (raw or qcow2 holding an ext2/3/4 file system with /sbin/init), stores it
as ``DATA_DIR/local/images/<id>.raw`` and inserts the image into the images table of the same
installation (SQLite in --data-dir, or PostgreSQL with --database-url), so that the API lists it and
change OS / create can use it with ``--driver local``. The group is attached to the ``ecsd`` command
with ``main.add_command(images)``.
"""

from __future__ import annotations

import json
import os

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
