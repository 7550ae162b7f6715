"""Security groups: every project has one, ``default``, which every server belongs to.

    GET /v2.1/{project_id}/servers/{server_id}/os-security-groups     querying_security_groups_of_a_specified_ecs.rst
    GET /v2.1/{project_id}/os-security-groups                          querying_security_groups_discarded.rst
    GET /v2.1/{project_id}/os-security-groups/{security_group_id}      querying_details_about_a_security_group_discarded.rst

Creating, updating and deleting groups and rules (discarded Nova APIs) are not served: the group and
its rules are fixed (docs/api-coverage.md).

ecsd models no security-group rules or traffic; what clients read is consistent: the group's id is a
function of the project (a UUIDv5), so the server views (``security_groups``), Nova's
``os-security-groups`` of a server and the names a create request may give all agree without a table.
The group shows the two rules of a default group as Nova does (any traffic from members of the group,
IPv4 and IPv6: ``group`` set, no protocol, ports or range), with ids that are functions of the group.

A create naming security groups (by name or id) may name only ``default`` (else 400 Ecs.0014, "Incorrect
VPC, subnet, or security group parameter values"). :func:`change_membership` answers Nova's
``addSecurityGroup`` / ``removeSecurityGroup`` consistently with that: adding ``default`` changes
nothing, removing it is refused (a server is always in it), any other group is unknown.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "default"       # as the reference's example shows the default group
_NAMESPACE = uuid.UUID("6f1c0b8e-2d4a-5e7f-9a3b-1c2d3e4f5a6b")


def default_group_id(project_id: str) -> str:
    """The id of the project's ``default`` security group (the same in every process and database)."""
    return str(uuid.uuid5(_NAMESPACE, f"{project_id}/{DEFAULT_NAME}"))


def server_groups(project_id: str) -> list[dict[str, Any]]:
    """A server's ``security_groups`` in the v1 and Nova views: ``[{"id", "name"}]``."""
    return [{"name": DEFAULT_NAME, "id": default_group_id(project_id)}]


def is_default(project_id: str, name_or_id: str) -> bool:
    return name_or_id in (DEFAULT_NAME, default_group_id(project_id))


def check_requested(project_id: str, names: tuple[str, ...]) -> None:
    """The security groups a create names (by name or id): only the default group exists, else Ecs.0014."""
    for name in names:
        if not is_default(project_id, name):
            raise EcsError("Ecs.0014", f"security group {name} does not exist; the project has only "
                                       f"'{DEFAULT_NAME}' ({default_group_id(project_id)})")


def nova_group(project_id: str) -> dict[str, Any]:
    """The default group as Nova's ``os-security-groups`` shows it, with its rules."""
    group_id = default_group_id(project_id)
    rules = [{"id": str(uuid.uuid5(_NAMESPACE, f"{group_id}/ingress/{family}")), "parent_group_id": group_id,
              "ip_protocol": None, "from_port": None, "to_port": None, "ip_range": {},
              "group": {"tenant_id": project_id, "name": DEFAULT_NAME}}
             for family in ("IPv4", "IPv6")]
    return {"id": group_id, "name": DEFAULT_NAME, "description": DEFAULT_DESCRIPTION, "tenant_id": project_id,
            "rules": rules}


def project_group(project_id: str, group_id: str) -> dict[str, Any]:
    """One group of the project by id (the discarded Nova API): the default group, else 404 Ecs.0014."""
    if group_id != default_group_id(project_id):
        raise EcsError("Ecs.0014", f"security group {group_id} does not exist", status=404)
    return nova_group(project_id)


def server_security_groups(conn: Connection, project_id: str, server_id: str) -> list[dict[str, Any]]:
    """The groups of a server (Nova os-security-groups): the project's default group. Unknown server Ecs.0114."""
    srv.load(conn, project_id, server_id)
    return [nova_group(project_id)]


def change_membership(conn: Connection, project_id: str, server_id: str, add: bool, name: str) -> None:
    """Nova ``addSecurityGroup`` (``add``) / ``removeSecurityGroup`` of the group named (name or id).

    Unknown server: 404 Ecs.0114. Adding the default group: nothing to do (the server is in it).
    Removing it: 400 Ecs.0014 (ecsd keeps every server in its project's default group). Any other
    group: 400 Ecs.0014 (it does not exist).
    """
    srv.load(conn, project_id, server_id)
    if not is_default(project_id, name):
        check_requested(project_id, (name,))
    if not add:
        raise EcsError("Ecs.0014", f"security group {name} cannot be removed: every ECS is in its project's "
                                   f"'{DEFAULT_NAME}' group")
