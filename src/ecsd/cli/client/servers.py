"""``ecsd server list|show|create|change-os|reinstall-os``: servers over the ECS API.

    GET  /v1/{project_id}/cloudservers/detail             list (name, status; page-number paging)
    GET  /v1/{project_id}/cloudservers/{server_id}        show
    POST /v1/{project_id}/cloudservers                    create (with an X-Client-Token: safe to retry)
    POST /v1|v2/{project_id}/cloudservers/{id}/changeos   change OS
    POST /v1|v2/{project_id}/cloudservers/{id}/reinstallos

SERVER is a server id, or a name that exactly one server of the project has.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, BinaryIO

import click

from ecsd.cli.client import output
from ecsd.cli.client.http import Client, NotFound
from ecsd.cli.client.images import find_image, has_cloud_init, is_uuid
from ecsd.cli.client.jobs import finish, timeout_option, wait_option
from ecsd.cli.client.session import EXIT_USAGE, Failure, Session, api_command, one_credential, only_match

PAGE = 1000
WITH_STOP_SERVER = "withStopServer"


@click.group("server")
def server() -> None:
    """Servers (ECS API): list, show, create, change or reinstall the OS (HTTP API client)."""


# --- lookups --------------------------------------------------------------------------------------------

def list_servers(client: Client, filters: dict[str, Any], limit: int | None = None) -> tuple[int, list[dict]]:
    """(the API's count, the servers of every page up to ``limit``) for these filters."""
    size = min(limit or PAGE, PAGE)
    found: list[dict] = []
    seen: set[str] = set()
    count, page = 0, 1
    while limit is None or len(found) < limit:
        body = client.get(f"/v1/{client.project_id}/cloudservers/detail", {**filters, "limit": size, "offset": page})
        count = body.get("count", 0)
        batch = body.get("servers") or []
        found += [s for s in batch if s["id"] not in seen]      # a page may repeat one if servers came meanwhile
        seen.update(s["id"] for s in batch)
        if len(batch) < size or len(seen) >= count:
            break
        page += 1
    return count, found[:limit] if limit else found


def find_server(client: Client, ref: str) -> dict[str, Any]:
    """The server with this id or, for a ref that is not a UUID, the one server with this exact name."""
    if is_uuid(ref):
        return client.get(f"/v1/{client.project_id}/cloudservers/{ref}")["server"]
    _, candidates = list_servers(client, {"name": ref})           # the name filter is fuzzy: keep exact names
    return only_match([s for s in candidates if s.get("name") == ref], "server", "id or name", ref)


def image_label(srv: dict[str, Any]) -> str:
    return (srv.get("metadata") or {}).get("image_name") or (srv.get("image") or {}).get("id") or "-"


# --- list and show --------------------------------------------------------------------------------------

@api_command(server, "list")
@click.option("--name", default=None, help="Only servers whose name contains this (the API's fuzzy match).")
@click.option("--status", default=None, help="Only servers in this status (ACTIVE, SHUTOFF, BUILD, ERROR, ...).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many servers [default: all].")
def server_list(session: Session, name: str | None, status: str | None, limit: int | None) -> None:
    """List servers: id, name, status, flavor, image, created.

    -o json prints {"count": N, "servers": [...]} as the API's list does: count is the number of
    servers the filters match, servers those of every page read (at most --limit).
    """
    count, servers = list_servers(session.client, {"name": name, "status": status}, limit)
    if session.json:
        output.emit_json({"count": count, "servers": servers})
        return
    output.table(["id", "name", "status", "flavor", "image", "created"],
                 [[s.get("id"), s.get("name"), s.get("status"), (s.get("flavor") or {}).get("name"),
                   image_label(s), s.get("created")] for s in servers])


def show_server(srv: dict[str, Any]) -> None:
    flavor = srv.get("flavor") or {}
    addresses = [a.get("addr") for items in (srv.get("addresses") or {}).values() for a in items]
    volumes = [f"{v.get('id')} ({v.get('device')})" for v in srv.get("os-extended-volumes:volumes_attached") or []]
    fault = srv.get("fault") or {}
    output.fields([
        ("id", srv.get("id")), ("name", srv.get("name")), ("status", srv.get("status")),
        ("task", srv.get("OS-EXT-STS:task_state")),
        ("flavor", f"{flavor.get('name')} ({flavor.get('vcpus')} vCPU, {flavor.get('ram')} MB)"),
        ("image", f"{image_label(srv)} ({(srv.get('image') or {}).get('id')})"),
        ("key pair", srv.get("key_name")), ("addresses", ", ".join(a for a in addresses if a)),
        # the local driver without bridges: where the server's SSH is forwarded on the host
        *([("ssh", (srv.get("metadata") or {})["ecsd_ssh_forward"])]
          if (srv.get("metadata") or {}).get("ecsd_ssh_forward") else []),
        ("volumes", ", ".join(volumes)), ("zone", srv.get("OS-EXT-AZ:availability_zone")),
        ("created", srv.get("created")), ("updated", srv.get("updated")),
        *([("fault", f"{fault.get('code')}: {fault.get('message')}")] if fault else []),
    ])


@api_command(server, "show")
@click.argument("server_ref", metavar="SERVER")
def server_show(session: Session, server_ref: str) -> None:
    """Show one server (by id, or by a name unique in the project).

    -o json prints {"server": {...}}, the v1 server object.
    """
    srv = find_server(session.client, server_ref)
    if session.json:
        output.emit_json({"server": srv})
    else:
        show_server(srv)


# --- create ---------------------------------------------------------------------------------------------

credential_options = [
    click.option("--key-pair", default=None, metavar="NAME", help="Log in with this key pair."),
    click.option("--password-stdin", is_flag=True, help="Read the root/Administrator password from stdin."),
]


def with_options(options: list) -> Any:
    """A decorator applying these click options in their order."""
    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return apply


def network_of_existing(client: Client) -> tuple[str, str]:
    """(VPC, subnet) of a server the project has: the default network of a create."""
    _, servers = list_servers(client, {}, limit=1)
    if not servers:
        raise Failure("give --vpc and --subnet: the project has no server to take them from "
                      "(ecsd has no VPC service and accepts any UUIDs)", EXIT_USAGE)
    srv = servers[0]
    vpc = (srv.get("metadata") or {}).get("vpc_id") or next(iter(srv.get("addresses") or {}), None)
    ports = client.get(f"/v1/{client.project_id}/cloudservers/{srv['id']}/os-interface")
    nets = [p.get("net_id") for p in ports.get("interfaceAttachments") or [] if p.get("net_id")]
    if not vpc or not nets:
        raise Failure(f"give --vpc and --subnet: server {srv['id']} shows no network to reuse", EXIT_USAGE)
    return vpc, nets[0]


@api_command(server, "create")
@click.option("--name", required=True, help="Server name (with --count > 1 the service numbers them).")
@click.option("--image", "image_ref", required=True, metavar="NAME|ID", help="Image name or id.")
@click.option("--flavor", required=True, metavar="ID", help="Flavor id, e.g. s3.small.1.")
@with_options(credential_options)
@click.option("--count", type=click.IntRange(1, 500), default=1, show_default=True, help="How many servers.")
@click.option("--vpc", default=None, envvar="ECSD_VPC_ID", metavar="UUID",
              help="VPC id [env ECSD_VPC_ID; default: that of a server the project has].")
@click.option("--subnet", default=None, envvar="ECSD_SUBNET_ID", metavar="UUID",
              help="Subnet id of the NIC [env ECSD_SUBNET_ID; default: that of a server the project has].")
@click.option("--volume-type", default="SSD", show_default=True, help="System disk type (SATA, SAS, SSD, ...).")
@wait_option
@timeout_option
def server_create(session: Session, name: str, image_ref: str, flavor: str, key_pair: str | None,
                  password_stdin: bool, count: int, vpc: str | None, subnet: str | None, volume_type: str,
                  wait: bool, timeout: float) -> None:
    """Create servers (POST /v1/{project_id}/cloudservers).

    -o json prints the API's answer ({"job_id", "serverIds"}), or with --wait the ended job.
    """
    key_name, password = one_credential(key_pair, password_stdin, required=False)
    if (vpc is None) != (subnet is None):
        raise click.UsageError("give both --vpc and --subnet, or neither")
    client = session.client
    if vpc is None:
        vpc, subnet = network_of_existing(client)
    image = find_image(client, image_ref)
    body: dict[str, Any] = {"name": name, "imageRef": image["id"], "flavorRef": flavor, "vpcid": vpc,
                            "nics": [{"subnet_id": subnet}], "root_volume": {"volumetype": volume_type},
                            "count": count}
    if key_name:
        body["key_name"] = key_name
    if password:
        body["adminPass"] = password
    accepted = client.post(f"/v1/{session.project_id}/cloudservers", {"server": body},
                           headers={"X-Client-Token": uuid.uuid4().hex}, retry=True)
    finish(session, accepted, wait, timeout, f"create {count} server(s) from {image['name']}")


# --- change OS and reinstall OS ---------------------------------------------------------------------------

os_options = [
    *credential_options,
    click.option("--user-data", type=click.File("rb"), default=None, metavar="FILE",
                 help="User data for Cloud-Init (sent base64-encoded; the v2 API)."),
    click.option("--no-stop", is_flag=True,
                 help="Do not stop a running server first (the call is then refused unless it is stopped)."),
    wait_option,
    timeout_option,
]


def os_call(session: Session, server_ref: str, image_ref: str | None, key_pair: str | None, password_stdin: bool,
            user_data: BinaryIO | None, no_stop: bool, wait: bool, timeout: float) -> None:
    """Change the OS to ``image_ref`` (reinstall the server's own image when it is None).

    Which API: ``/v2/.../changeos|reinstallos`` (the "image with Cloud-Init" variant, which takes
    ``metadata.user_data``) when --user-data is given or the image shows ``__support_cloudinit``
    "true" in IMS; else ``/v1/...``. The server decides whether an image fits the variant. The
    request asks for ``mode: withStopServer`` (a running server is stopped first) unless --no-stop.
    """
    key_name, password = one_credential(key_pair, password_stdin, required=True)
    client = session.client
    srv = find_server(client, server_ref)
    image = find_image(client, image_ref) if image_ref is not None else current_image(client, srv)
    request: dict[str, Any] = {"keyname": key_name} if key_name else {"adminpass": password}
    if image_ref is not None:
        request["imageid"] = image["id"]
    if not no_stop:
        request["mode"] = WITH_STOP_SERVER
    if user_data is not None:
        request["metadata"] = {"user_data": base64.b64encode(user_data.read()).decode("ascii")}
    version = "v2" if user_data is not None or (image is not None and has_cloud_init(image)) else "v1"
    action, key, what = (("changeos", "os-change", f"change the OS of {srv.get('name')} to {image['name']}")
                         if image_ref is not None else
                         ("reinstallos", "os-reinstall", f"reinstall the OS of {srv.get('name')}"))
    accepted = client.post(f"/{version}/{session.project_id}/cloudservers/{srv['id']}/{action}", {key: request})
    finish(session, accepted, wait, timeout, what)


def current_image(client: Client, srv: dict[str, Any]) -> dict[str, Any] | None:
    """The server's image, or None when it is no longer listed (then the v1 call, and the service's answer)."""
    image_id = (srv.get("image") or {}).get("id")
    try:
        return find_image(client, image_id) if image_id else None
    except NotFound:
        return None


@api_command(server, "change-os")
@click.argument("server_ref", metavar="SERVER")
@click.option("--image", "image_ref", required=True, metavar="NAME|ID", help="The new image, by name or id.")
@with_options(os_options)
def server_change_os(session: Session, server_ref: str, image_ref: str, **kw: Any) -> None:
    """Change the OS of SERVER to another image (a new system disk; data disks stay).

    -o json prints the API's answer ({"job_id"}), or with --wait the ended job.
    """
    os_call(session, server_ref, image_ref, **kw)


@api_command(server, "reinstall-os")
@click.argument("server_ref", metavar="SERVER")
@with_options(os_options)
def server_reinstall_os(session: Session, server_ref: str, **kw: Any) -> None:
    """Reinstall the OS of SERVER from its current image (a new system disk; data disks stay).

    -o json prints the API's answer ({"job_id"}), or with --wait the ended job.
    """
    os_call(session, server_ref, None, **kw)
