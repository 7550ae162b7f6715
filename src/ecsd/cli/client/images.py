"""``ecsd image list`` and finding one image by name or id (IMS ``GET /v2/cloudimages``).

The IMS list filters on exact attribute values (``name``, ``__platform``, ``visibility``, ...) and
pages with ``marker`` / ``limit`` (at most 1000 a page); ``page_info.next_marker`` names the next page.
"""

from __future__ import annotations

import re
from typing import Any

import click

from ecsd.cli.client import output
from ecsd.cli.client.http import Client
from ecsd.cli.client.session import Session, api_command, only_match

PAGE = 1000
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(value: str) -> bool:
    return UUID.fullmatch(value) is not None


def list_images(client: Client, filters: dict[str, str | None]) -> list[dict[str, Any]]:
    """Every image the filters select, page after page."""
    found: list[dict[str, Any]] = []
    marker = None
    while True:
        body = client.get("/v2/cloudimages", {**filters, "limit": PAGE, "marker": marker})
        found += body.get("images") or []
        marker = (body.get("page_info") or {}).get("next_marker")
        if not marker or not body.get("images"):
            return found


def find_image(client: Client, ref: str) -> dict[str, Any]:
    """The image with this id (a UUID) or, else, this exact name; several of that name are an error."""
    how = "id" if is_uuid(ref) else "name"
    return only_match(list_images(client, {how: ref.lower() if how == "id" else ref}), "image", how, ref)


def has_cloud_init(image: dict[str, Any]) -> bool:
    """IMS shows whether the image has Cloud-Init (Cloudbase-Init) as ``__support_cloudinit``."""
    return str(image.get("__support_cloudinit", "false")).lower() == "true"


@click.group("image")
def image() -> None:
    """Images of the IMS catalogue (HTTP API client)."""


@api_command(image, "list")
@click.option("--name", default=None, help="Only the image of this exact name.")
@click.option("--platform", default=None, help="Only images of this __platform (Ubuntu, CentOS, Windows, ...).")
@click.option("--visibility", type=click.Choice(["public", "private", "shared"]), default=None,
              help="Only public (gold), private or shared images.")
def image_list(session: Session, name: str | None, platform: str | None, visibility: str | None) -> None:
    """List images: id, name, status, OS, minimum disk (GB).

    -o json prints {"images": [...]}, the images of every page in the IMS image shape.
    """
    images = list_images(session.client, {"name": name, "__platform": platform, "visibility": visibility})
    if session.json:
        output.emit_json({"images": images})
        return
    output.table(["id", "name", "status", "os", "min disk"],
                 [[i.get("id"), i.get("name"), i.get("status"), i.get("__os_version") or i.get("__platform"),
                   i.get("min_disk")] for i in images])
