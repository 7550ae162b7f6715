"""Security groups: every project has one, ``default``, which every server belongs to.

ecsd models no security-group rules or traffic; what clients read is consistent: the group's id is a
function of the project (a UUIDv5), so the server views (``security_groups``), Nova's
``os-security-groups`` of a server and the names a create request may give all agree without a table.
"""

from __future__ import annotations

import uuid
from typing import Any

DEFAULT_NAME = "default"
_NAMESPACE = uuid.UUID("6f1c0b8e-2d4a-5e7f-9a3b-1c2d3e4f5a6b")


def default_group_id(project_id: str) -> str:
    """The id of the project's ``default`` security group (the same in every process and database)."""
    return str(uuid.uuid5(_NAMESPACE, f"{project_id}/{DEFAULT_NAME}"))


def server_groups(project_id: str) -> list[dict[str, Any]]:
    """A server's ``security_groups`` in the v1 and Nova views: ``[{"id", "name"}]``."""
    return [{"name": DEFAULT_NAME, "id": default_group_id(project_id)}]
