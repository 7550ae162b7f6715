"""Server views shared by the v1 and the native (Nova) APIs, and the v1 list body.

:func:`server_view` is the v1 ``server`` object; :func:`nova_server_view` makes the Nova one from it.

A v1 list page is built as bytes from one encoded JSON fragment per server. A server's view is a pure
function of its row, its attached disks, its flavor's name, vcpus and ram, its tags and its server
group, so the fragments of the 5,000 servers listed last are kept with exactly those values and reused
only while a fresh read of them is equal: a changed row, disk, flavor, tag or membership makes a new
fragment, never a stale one, whichever process or job changed it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson

from ecsd.domain import clock, sealing, security_groups, server_groups
from ecsd.domain import servers as srv
from ecsd.domain import states as st
from ecsd.domain import tags as server_tags
from ecsd.domain.flavors import get_flavor, shown_specs
from ecsd.domain.listing import PAGE_COLUMNS, Page, page_server
from ecsd.http.core import Ctx
from ecsd.http.keypairs import compute_microversion
from ecsd.http.tags import NOVA_TAGS_MICROVERSION

HOST = "ecsd"
# What a Nova view leaves out of the v1 view before microversion 2.26 (``tags`` came with 2.26).
_HIDDEN_BEFORE_2_26 = ("sys_tags", "enterprise_project_id", "os:scheduler_hints", "tags")


def server_view(s: dict[str, Any], flavor: dict[str, Any] | None, vols: list[dict[str, Any]],
                tags: Sequence[str] = (), group: str | None = None) -> dict[str, Any]:
    """The v1 ``server`` object (data_structure_for_querying_details_about_ecss.rst); ``tags`` as shown,
    ``key=value`` or ``key`` (domain/tags.py); ``group``: the server group it is in, shown as
    ``os:scheduler_hints`` (domain/server_groups.py: scheduler_hints)."""
    fault = s["fault"] if s["vm_state"] == st.ERROR else None
    return {
        "id": s["id"], "name": s["name"], "description": s["description"],
        "status": st.status_of(s["vm_state"], s["task_state"]),
        "OS-EXT-STS:vm_state": s["vm_state"], "OS-EXT-STS:task_state": s["task_state"],
        "OS-EXT-STS:power_state": s["power_state"], "progress": 0,
        "image": {"id": s["image_id"]},
        "flavor": {"id": s["flavor_id"], "name": flavor["name"] if flavor else s["flavor_id"],
                   "disk": "0", "vcpus": str(flavor["vcpus"]) if flavor else "0",
                   "ram": str(flavor["ram"]) if flavor else "0"},
        "key_name": s["key_name"], "metadata": s["metadata"], "addresses": _addresses(s["addresses"]),
        "os-extended-volumes:volumes_attached": [
            {"id": v["id"], "delete_on_termination": "true" if v["boot_index"] == 0 else "false",
             "bootIndex": str(v["boot_index"]) if v["boot_index"] is not None else "-1", "device": v["device"]}
            for v in vols],
        "OS-EXT-SRV-ATTR:root_device_name": s["root_device_name"],
        "OS-EXT-SRV-ATTR:host": HOST, "OS-EXT-SRV-ATTR:hypervisor_hostname": HOST,
        "OS-EXT-SRV-ATTR:instance_name": "instance-" + s["id"][:8],
        "OS-EXT-SRV-ATTR:hostname": s["name"].lower().replace("_", "-").replace(".", "-"),
        "OS-EXT-SRV-ATTR:reservation_id": s["reservation_id"], "OS-EXT-SRV-ATTR:launch_index": s["launch_index"],
        "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
        "OS-EXT-SRV-ATTR:user_data": sealing.unseal(s["user_data"]),
        "OS-EXT-AZ:availability_zone": s["availability_zone"], "OS-DCF:diskConfig": "MANUAL",
        "OS-SRV-USG:launched_at": clock.iso_us(s["launched_at"]) or "", "OS-SRV-USG:terminated_at": "",
        "locked": bool(s["locked"]), "fault": fault,
        "tenant_id": s["project_id"], "user_id": s["user_id"], "hostId": host_id(s["project_id"]),
        "host_status": "UP", "config_drive": "", "accessIPv4": "", "accessIPv6": "",
        "security_groups": security_groups.server_groups(s["project_id"]),
        "tags": list(tags), "sys_tags": [{"key": "_sys_enterprise_project_id", "value": "0"}],
        "os:scheduler_hints": {"group": [group]} if group else {},
        "enterprise_project_id": "0",
        "created": clock.iso_s(s["created_at"]), "updated": clock.iso_s(s["updated_at"]),
    }


def host_id(project_id: str) -> str:
    """Nova's ``hostId``: a 56-hex digest of the project and the host (one host here), so that servers of
    one project on one host share it and no other project can tell which host that is."""
    return hashlib.sha224(f"{project_id}{HOST}".encode()).hexdigest()


def nova_fault(fault: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Nova ``fault`` (Integer ``code``, as Nova and the SDK's NovaServerFault have it): 500, Nova's
    code for an operation that failed in the service, with the ECS code leading the message."""
    if fault is None:
        return None
    out = {"code": 500, "created": fault.get("created", ""),
           "message": f"{fault.get('code')}: {fault.get('message', '')}".strip()}
    if fault.get("details"):
        out["details"] = fault["details"]
    return out


def update_view(view: dict[str, Any], base: str) -> dict[str, Any]:
    """The reduced ``server`` that ``PUT /v1/{project_id}/cloudservers/{server_id}`` answers with
    (modifying_ecs_details.rst; the SDK's UpdateServerResult): ``image`` is the image id,
    ``addresses[].version`` an Integer, ``flavor`` an id with links."""
    pid, sid = view["tenant_id"], view["id"]
    return {
        "tenant_id": pid, "image": view["image"]["id"], "accessIPv4": "", "accessIPv6": "",
        "addresses": {net: [{"addr": a["addr"], "version": int(a["version"])} for a in items]
                      for net, items in view["addresses"].items()},
        "metadata": view["metadata"], "created": view["created"], "updated": view["updated"],
        "hostId": view["hostId"],
        "flavor": {"id": view["flavor"]["id"],
                   "links": [{"rel": "bookmark", "href": f"{base}/{pid}/flavors/{view['flavor']['id']}"}]},
        "OS-DCF:diskConfig": view["OS-DCF:diskConfig"], "user_id": view["user_id"], "name": view["name"],
        "progress": view["progress"], "links": server_links(base, pid, sid), "id": sid, "locked": view["locked"],
        "description": view["description"], "tags": view["tags"], "status": view["status"],
        "OS-EXT-SRV-ATTR:user_data": view["OS-EXT-SRV-ATTR:user_data"] or "",
        "OS-EXT-SRV-ATTR:hostname": view["OS-EXT-SRV-ATTR:hostname"],
    }


def _addresses(addrs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {net: [{k: v for k, v in a.items() if k != "subnet_id"} for a in items] for net, items in addrs.items()}


async def server_views(ctx: Ctx, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The v1 views of these server rows (their disks and flavors read in one transaction)."""
    if not rows:
        return []
    vols, flavors, tags, groups = await _disks_and_flavors(ctx, rows)
    return [server_view(r, flavors[r["flavor_id"]], vols[r["id"]], tags.get(r["id"], ()), groups.get(r["id"]))
            for r in rows]


async def _disks_and_flavors(ctx: Ctx, rows: list[dict[str, Any]], with_groups: bool = True
                             ) -> tuple[dict, dict, dict[str, list[str]], dict[str, str]]:
    """The attached disks of these servers, their flavors, their tags (as shown) and (``with_groups``) their
    server groups, read in one transaction."""
    def load(conn):
        ids = [r["id"] for r in rows]
        vols = srv.attached_volumes(conn, ids)
        flavors = {fid: get_flavor(conn, fid) for fid in {r["flavor_id"] for r in rows}}
        tags = {sid: [t.shown() for t in found] for sid, found in server_tags.tags_of(conn, ids).items()}
        if not with_groups:          # the Nova views do not show them
            return vols, flavors, tags, {}
        groups = {sid: hints["group"][0] for sid, hints in server_groups.scheduler_hints(conn, ids).items() if hints}
        return vols, flavors, tags, groups

    return await ctx.services.store.read(load)


def server_links(base: str, project_id: str, server_id: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/v2.1/{project_id}/servers/{server_id}"},
            {"rel": "bookmark", "href": f"{base}/{project_id}/servers/{server_id}"}]


async def nova_server_views(ctx: Ctx, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Nova views of these server rows (with their flavors' extra specs, which Nova shows), as the
    request's compute microversion has them (``tags`` from 2.26 on; the request is ``ctx.request``).
    Without a request every field is shown."""
    if not rows:
        return []
    request = ctx.request
    vols, flavors, tags, _ = await _disks_and_flavors(ctx, rows, with_groups=False)
    base = ctx.services.settings.endpoint
    with_tags = request is None or (compute_microversion(request) or (2, 1)) >= NOVA_TAGS_MICROVERSION
    out = []
    for r in rows:
        flavor = flavors[r["flavor_id"]]
        out.append(nova_server_view(server_view(r, flavor, vols[r["id"]], tags.get(r["id"], ())), base,
                                    shown_specs(flavor) if flavor else {}, with_tags=with_tags))
    return out


def nova_server_view(view: dict[str, Any], base: str, extra_specs: dict[str, str] | None = None, *,
                     with_tags: bool = True) -> dict[str, Any]:
    """The native (Nova) ``server`` object, made from the v1 view of the same server and its flavor's
    extra specs (``flavor.extra_specs``, microversion 2.47); ``tags`` only ``with_tags`` (microversion
    2.26 and later)."""
    pid, sid = view["tenant_id"], view["id"]
    hidden = ("sys_tags", "enterprise_project_id", "os:scheduler_hints") if with_tags else _HIDDEN_BEFORE_2_26
    out = {k: v for k, v in view.items() if k not in hidden}
    out["image"] = {"id": view["image"]["id"],
                    "links": [{"rel": "bookmark", "href": f"{base}/{pid}/images/{view['image']['id']}"}]}
    flavor = view["flavor"]
    out["flavor"] = {"id": flavor["id"], "name": flavor["name"], "original_name": flavor["name"],
                     "vcpus": int(flavor["vcpus"]), "ram": int(flavor["ram"]), "disk": 0, "ephemeral": 0,
                     "swap": 0, "extra_specs": {k: str(v) for k, v in (extra_specs or {}).items()},
                     "links": [{"rel": "bookmark", "href": f"{base}/{pid}/flavors/{flavor['id']}"}]}
    out["addresses"] = {net: [{**a, "version": int(a["version"])} for a in items]
                        for net, items in view["addresses"].items()}
    out["os-extended-volumes:volumes_attached"] = [
        {"id": v["id"], "delete_on_termination": v["delete_on_termination"] == "true"}
        for v in view["os-extended-volumes:volumes_attached"]]
    out["OS-SRV-USG:launched_at"] = view["OS-SRV-USG:launched_at"] or None
    out["OS-SRV-USG:terminated_at"] = None
    if out["fault"] is None:
        del out["fault"]   # Nova shows a fault only on a server in ERROR
    else:
        out["fault"] = nova_fault(out["fault"])
    out["links"] = server_links(base, pid, sid)
    return out


# --- the v1 list body ------------------------------------------------------------------------------------

_ID, _FLAVOR = PAGE_COLUMNS.index("id"), PAGE_COLUMNS.index("flavor_id")
MEMO_SIZE = 5000
# server id -> ((row, disks, flavor, tags, group), the orjson of its view), the MEMO_SIZE servers listed last. Kept
# by id and compared in full: comparing a fresh row with the kept one costs less than hashing it.
# The lock matters only when several event loops share the process (tests).
_fragments: OrderedDict[str, tuple[tuple, bytes]] = OrderedDict()
_fragments_lock = threading.Lock()
_NO_DISKS: list = []


def _fragment(row: tuple, vols: list, flavor: tuple | None, tags: tuple[str, ...], group: str | None) -> bytes:
    view = server_view(page_server(row),
                       None if flavor is None else {"name": flavor[0], "vcpus": flavor[1], "ram": flavor[2]},
                       [{"id": v[0], "boot_index": v[1], "device": v[2]} for v in vols], tags, group)
    return orjson.dumps(view)


def list_body(page: Page) -> bytes:
    """``{"count": N, "servers": [views]}`` encoded, as ``orjson.dumps`` of the views would be."""
    memo, volumes, flavors, tags, groups = _fragments, page.volumes, page.flavors, page.tags, page.groups
    parts = []
    with _fragments_lock:
        for row in page.rows:
            sid = row[_ID]
            inputs = (row, volumes.get(sid, _NO_DISKS), flavors.get(row[_FLAVOR]), tags.get(sid, ()), groups.get(sid))
            kept = memo.get(sid)
            if kept is not None and kept[0] == inputs:
                fragment = kept[1]
            else:
                fragment = _fragment(*inputs)
                memo[sid] = (inputs, fragment)
                if len(memo) > MEMO_SIZE:
                    memo.popitem(last=False)
            memo.move_to_end(sid)
            parts.append(fragment)
    return b'{"count":%d,"servers":[%b]}' % (page.count, b",".join(parts))
