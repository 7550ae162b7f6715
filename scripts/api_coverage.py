"""Regenerate docs/api-coverage.md: every endpoint of the API reference, and whether ecsd serves it.

    .venv/bin/python scripts/api_coverage.py [path/to/ecs-api-ref]

An endpoint is "implemented" when the application has a route for its method and path; NOTES marks
the ones that are served only in part. An action endpoint (``POST .../action``) is one row per action
of the reference (the first key of its example request), implemented only when the application carries
out that action (``ACTIONS`` of the handler's module), not merely because the path has a route. Routes that ecsd serves beyond the ECS reference (IAM, IMS,
Glance, health) are listed in a second table. tests/test_docs.py fails when a route is missing here.
"""

from __future__ import annotations

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

from ecsd.app import create_app
from ecsd.config import Settings
from ecsd.http import nova, servers


def norm(path: str) -> str:
    path = re.sub(r"\{[^}]*$", "", path.split("?")[0])      # a query shown as "{?delete_flag}" in a few pages
    return re.sub(r"\{[^}]+\}", "{}", path.rstrip("/")) or "/"


# Paths on which several pages of the reference document one action each (the body's only key).
MULTI_ACTION = {"/v2.1/{}/servers/{}/action", "/v1/{}/cloudservers/action"}
# Route path -> the actions it carries out.
SERVED_ACTIONS = {
    "/v2.1/{project_id}/servers/{server_id}/action": set(nova.ACTIONS),
    "/v1/{project_id}/cloudservers/action": set(servers.BATCH_ACTIONS),
}

DEFAULT_REF = os.path.join(ROOT, "..", "shared", "reference", "ecs-api-ref")

# (METHOD, path) -> what is missing. Keep it honest: everything here is served, but not all of it.
NOTES = {
    ("POST", "/v1/{project_id}/cloudservers"): "partial: no EIP (`publicip`), security groups or tags at "
                                               "create; of the scheduler hints only `group`; networks are not "
                                               "checked (no VPC service); `X-Client-Token` makes it idempotent",
    ("POST", "/v1/{project_id}/cloudservers/delete"): "partial: `delete_publicip` accepted and ignored (no EIPs)",
    ("GET", "/v1/{project_id}/cloudservers/detail"): "partial: `enterprise_project_id` is ignored",
    ("POST", "/v2/{project_id}/cloudservers/{server_id}/changeos"): "encryption keys are checked, not applied "
                                                                    "(no KMS)",
    ("POST", "/v2/{project_id}/cloudservers/{server_id}/reinstallos"): "encryption keys are checked, not applied "
                                                                       "(no KMS)",
    ("POST", "/v1/{project_id}/cloudservers/{server_id}/nics"): "partial: no IPv6 (`ipv6_enable` is refused); "
                                                                "security groups are accepted and ignored",
}

# Discarded endpoints of the reference that ecsd deliberately does not serve, (METHOD, reference path
# normalised) -> why. Any other endpoint without a route is "missing".
_NO_EIP = "not served: discarded; ecsd has no EIP service (floating IPs)"
_NO_SG = "not served: discarded; a project has one fixed `default` group (its queries are served)"
_NO_SNAP = "not served: discarded; ecsd has no disk snapshots"
NOT_SERVED = {
    **{(m, norm(p)): _NO_EIP for m, p in (
        ("POST", "/v2.1/{project_id}/os-floating-ips"), ("GET", "/v2.1/{project_id}/os-floating-ips"),
        ("GET", "/v2.1/{project_id}/os-floating-ips/{floating_ip_id}"),
        ("DELETE", "/v2.1/{project_id}/os-floating-ips/{floating_ip_id}"),
        ("GET", "/v2.1/{project_id}/os-floating-ip-pools"))},
    **{(m, norm(p)): _NO_SG for m, p in (
        ("POST", "/v2.1/{project_id}/os-security-groups"), ("POST", "/v2.1/{project_id}/os-security-group-rules"),
        ("PUT", "/v2.1/{project_id}/os-security-groups/{security_group_id}"),
        ("DELETE", "/v2.1/{project_id}/os-security-groups/{security_group_id}"),
        ("DELETE", "/v2.1/{project_id}/os-security-group-rules/{security_group_rule_id}"))},
    **{(m, norm(p)): _NO_SNAP for m, p in (
        ("POST", "/v2.1/{project_id}/os-snapshots"), ("GET", "/v2.1/{project_id}/os-snapshots/{snapshot_id}"),
        ("DELETE", "/v2.1/{project_id}/os-snapshots/{snapshot_id}"))},
}
# Actions of POST /v2.1/{project_id}/servers/{server_id}/action deliberately not served, action -> why.
NOT_SERVED_ACTIONS = {"addFloatingIp": _NO_EIP, "removeFloatingIp": _NO_EIP}

EXTRA_PURPOSE = {
    "/v3": "Keystone version document", "/v3/auth/tokens": "IAM tokens (password, project scope)",
    "/v3/projects": "IAM projects of the caller", "/v3/auth/projects": "IAM projects of the caller",
    "/v2/cloudimages": "IMS image list", "/v2/images": "Glance image list",
    "/image": "Glance version document",
    "/image/v2/images": "Glance image list (catalog path)",
    "/v3/projects/{ref}": "IAM project details", "/v3/auth/domains": "IAM domain of the caller",
    "/v1/{project_id}/cloudservers/{server_id}/metadata/{key}":
        "delete one metadata key (the Huawei SDK's delete_server_metadata)",
    "/v1/{project_id}/cloudservers/{server_id}/console-output":
        "console output (the Huawei SDK's show_server_console_output)",
    "/healthz": "liveness", "/readyz": "readiness (database)", "/": "compute API versions",
    "/v1/{project_id}/cloudservers/{server_id}/os-server-password":
        "the Huawei SDK's show_server_password / delete_server_password",
    "/v2": "compute API v2.0 version document", "/v2.0": "compute API v2.0 version document",
    "/v1": "ECS API version", "/openapi.json": "the OpenAPI document of every route",
    "/_ecsd": "emulator: what is set (docs/testing-with-ecsd.md)", "/_ecsd/reset": "emulator: reset",
    "/_ecsd/snapshots": "emulator: snapshots", "/_ecsd/snapshots/{name}": "emulator: take or delete a snapshot",
    "/_ecsd/snapshots/{name}/restore": "emulator: restore a snapshot", "/_ecsd/seed": "emulator: seed",
    "/_ecsd/faults": "emulator: fault injection", "/_ecsd/holds": "emulator: holds",
    "/_ecsd/step-delay": "emulator: the simulated step delay", "/_ecsd/requests": "emulator: the request log",
    "/_ecsd/servers/{server_id}/power-off": "emulator: the guest stops on its own", "/v2.1": "compute API version and microversions",
    "/console": "the web console (docs/console.md)", "/console/{asset:path}": "the web console's files",
    "/metrics": "Prometheus metrics (docs/operations.md)",
    "/vnc_auto.html": "the remote console page of a console URL's token: noVNC on the server's VNC display "
                      "(local driver), else its console output (simulated)",
    "/websockify": "the remote console's VNC websocket (a console URL's token; Upgrade: websocket)",
    "/novnc/{path:path}": "noVNC's files for the remote console page (ECSD_NOVNC_DIR)",
    "/v1.1/{project_id}/cloudservers/{server_id}/resize": "resize (the Huawei SDK's resize_server path)",
    "/v1/{project_id}/cloudservers/resize_flavors": "target flavors of a resize (the Huawei SDK's path)",
    "/v1/{project_id}/cloudservers/os-server-groups": "server groups (the Huawei SDK's paths)",
    "/v1/{project_id}/cloudservers/os-server-groups/{server_group_id}": "server groups (the Huawei SDK's paths)",
    "/v1/{project_id}/cloudservers/os-server-groups/{server_group_id}/action":
        "server group members (the Huawei SDK's path)",
    "/v1/{project_id}/cloudservers/resource_instances/action": "query servers by tag (the Huawei SDK's path)",
    "/v1/{project_id}/cloudservers/{server_id}/remote_console": "remote console (the Huawei SDK's ECS API)",
    "/v2.1/{project_id}/cloudvolumes": "EVS: create disks (huaweicloudsdkevs)",
    "/v2/{project_id}/cloudvolumes/detail": "EVS: list disks", "/v2/{project_id}/cloudvolumes/{volume_id}":
        "EVS: show, update, delete a disk",
    "/v2.1/{project_id}/flavors/{flavor_id}/os-extra_specs/{key}": "one extra spec of a flavor (Nova)",
    "/v2/images/{image_id}": "Glance image details, delete a private image",
    "/image/v2/images/{image_id}": "Glance image details, delete a private image (catalog path)",
}


def _action(text: str) -> str | None:
    """The action an ``.../action`` page documents: the first key of its example request body."""
    example = text.split("Example Request", 1)[-1]
    m = re.search(r'\{\s*"([A-Za-z][A-Za-z0-9:_-]*)"\s*:', example)
    return m.group(1) if m else None


def reference_endpoints(ref: str) -> list[tuple[str, str, str, str, str | None]]:
    rows = []
    for root, _dirs, files in os.walk(ref):
        for name in sorted(files):
            if not name.endswith(".rst"):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as fh:
                text = fh.read()
            lines = text.splitlines()
            title = next((lines[i - 1].strip() for i, line in enumerate(lines)
                          if i and re.fullmatch(r"=+", line)), name)
            for m in re.finditer(r"^(GET|POST|PUT|DELETE|PATCH) (/\S+)", text, re.MULTILINE):
                path = re.sub(r"\{[^}]*$", "", m.group(2).split("?")[0])    # "{?delete_flag}": a query
                action = _action(text) if norm(path) in MULTI_ACTION else None
                rows.append((os.path.relpath(root, ref), title, m.group(1), path, action))
    return rows


def app_routes() -> dict[tuple[str, str], str]:
    app = create_app(Settings(data_dir="/nonexistent-not-started"))
    out = {}
    for route in app.routes:
        # an emulator route takes every method (so that a stranger gets 404 for all); it serves these
        for method in sorted(getattr(route, "emulator_handlers", None) or route.methods or ()):
            if method != "HEAD":
                out[(method, norm(route.path))] = route.path
    return out


def render(ref: str) -> str:
    routes = app_routes()
    seen: set[tuple[str, str]] = set()
    counted: set[tuple[str, str, str | None]] = set()
    by_section: dict[str, list[str]] = {}
    counts = {"implemented": 0, "partial": 0, "missing": 0, "not served": 0}
    for section, title, method, path, action in sorted(reference_endpoints(ref), key=lambda r: r[:4]):
        key = (method, norm(path))
        if (*key, action) in counted:
            continue
        counted.add((*key, action))
        seen.add(key)
        served = key in routes and (action is None or action in SERVED_ACTIONS.get(routes[key], ()))
        if served:
            note = NOTES.get((method, routes[key]))
            status = "partial" if note else "implemented"
        else:
            note = NOT_SERVED_ACTIONS.get(action) if action else NOT_SERVED.get(key)
            status = "not served" if note else "missing"
        counts[status] += 1
        shown = f"`{method} {path}`" + (f" `{action}`" if action else "")
        by_section.setdefault(section, []).append(f"| {status} | {shown} | {title} | {note or ''} |")
    lines = ["# API coverage", "",
             ("Every endpoint of the ECS API reference (`../shared/reference/ecs-api-ref/`), and whether ecsd "
              "serves it. Generated by `scripts/api_coverage.py`; do not edit by hand."), "",
             (f"**{counts['implemented']} implemented, {counts['partial']} partial, {counts['missing']} missing, "
              f"{counts['not served']} not served** of {sum(counts.values())} documented endpoints (an action "
              "endpoint counts once per action). \"Not served\" endpoints are discarded ones that ecsd leaves "
              "out on purpose, each with the reason; every other discarded endpoint is served."),
             ""]
    for section in sorted(by_section):
        lines += [f"## {section}", "", "| status | endpoint | reference page | notes |", "| --- | --- | --- | --- |",
                  *by_section[section], ""]
    lines += ["## Beyond the ECS reference", "",
              ("Served because clients need them (IAM, IMS, Glance), operators do (health, the OpenAPI "
               "document) or test suites do (the emulator controls under `/_ecsd/`, operator token only)."), "",
              "| endpoint | purpose |", "| --- | --- |"]
    for (method, key), path in sorted(routes.items(), key=lambda kv: (kv[1], kv[0][0])):
        if (method, key) not in seen:
            lines.append(f"| `{method} {path}` | {EXTRA_PURPOSE.get(path.rstrip('/') or '/', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ref = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_REF
    target = os.path.join(ROOT, "docs", "api-coverage.md")
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(render(ref))
    print(f"wrote {target}")
