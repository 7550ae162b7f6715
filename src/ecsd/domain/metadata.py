"""Server metadata: read, merge, replace and delete the user's key-value pairs.

    POST   /v1/{project_id}/cloudservers/{server_id}/metadata        merge (updating_ecs_metadata.rst)
    GET    /v2.1/{project_id}/servers/{server_id}/metadata           all pairs
    POST   /v2.1/{project_id}/servers/{server_id}/metadata           merge
    PUT    /v2.1/{project_id}/servers/{server_id}/metadata           replace the user's pairs
    GET    /v2.1/{project_id}/servers/{server_id}/metadata/{key}     one pair
    PUT    /v2.1/{project_id}/servers/{server_id}/metadata/{key}     set one pair
    DELETE /v2.1/{project_id}/servers/{server_id}/metadata/{key}     delete one pair

The reference: keys are 1-255 of ``A-Z a-z 0-9 - _ : .``, values at most 255 characters; changes need
an ECS that is active or stopped (``OS-EXT-STS:vm_state``) with no task, and a locked ECS refuses them
as it refuses every change (Ecs.0605). The keys the service itself keeps (what the image and the
create put there: ``image_name``, ``os_type``, ``metering.*``, ``vpc_id``, ...) are shown with the
others but cannot be changed or deleted here (Ecs.0005). A request that sends one back with the value
it has (the read-merge-write of automation such as Ansible's ``server_metadata`` module) changes
nothing and is accepted; replacing all metadata replaces the user's pairs and keeps the service's.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy import and_
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError, invalid
from ecsd.store.schema import servers

# Written by the service (lifecycle create, srv.metadata_from_image, change OS BYOL).
SYSTEM_KEYS = frozenset({
    "charging_mode", "vpc_id", "EcmResStatus", "metering.resourcespeccode", "metering.resourcetype",
    "image_name", "os_type", "os_bit", "metering.image_id", "metering.imagetype", "virtual_env_type", "BYOL",
    "ecsd_ssh_forward",     # the local driver in user-mode networking: 127.0.0.1:<port> of the server's SSH
})
MAX_PAIRS = 128      # Nova's default metadata_items quota
_KEY = re.compile(r"[A-Za-z0-9\-_:.]{1,255}")


def check_pairs(pairs: Any) -> dict[str, str]:
    """A metadata object from a request: string keys and values within the reference's limits."""
    if not isinstance(pairs, dict):
        raise invalid("metadata must be an object of key-value pairs")
    for key, value in pairs.items():
        if not _KEY.fullmatch(key):
            raise invalid(f"metadata key {key!r} must be 1 to 255 characters of A-Z, a-z, 0-9, '-', '_', ':', '.'")
        if not isinstance(value, str) or len(value) > 255:
            raise invalid(f"the value of metadata key {key} must be a string of at most 255 characters")
    return pairs


def _users_pairs(metadata: dict[str, str], pairs: dict[str, str]) -> dict[str, str]:
    """``pairs`` without the service's keys, each of which must come back with the value it has
    (an unchanged echo is a no-op); a change to one, or one the server does not have, is Ecs.0005."""
    for key in pairs.keys() & SYSTEM_KEYS:
        if metadata.get(key) != pairs[key]:
            raise invalid(f"metadata key {key} is kept by the service and cannot be changed")
    return {k: v for k, v in pairs.items() if k not in SYSTEM_KEYS}


def _locked_row(conn: Connection, project_id: str, server_id: str) -> dict[str, Any]:
    """The server's metadata for a change: row-locked on PostgreSQL (two changes do not lose each other's
    pairs); Ecs.0114 / Ecs.0605 / Ecs.0100 as servers.lock_for_change says."""
    return orjson.loads(srv.lock_for_change(conn, project_id, server_id, "metadata", servers.c.metadata).metadata)


def _store(conn: Connection, server_id: str, metadata: dict[str, str]) -> dict[str, str]:
    if len([k for k in metadata if k not in SYSTEM_KEYS]) > MAX_PAIRS:
        raise EcsError("Ecs.0005", f"a server has at most {MAX_PAIRS} metadata pairs of its user")
    conn.execute(servers.update().where(and_(servers.c.id == server_id, servers.c.job_id.is_(None)))
                 .values(metadata=orjson.dumps(metadata).decode(), updated_at=clock.now()))
    return metadata


def get_all(conn: Connection, project_id: str, server_id: str) -> dict[str, str]:
    return srv.load(conn, project_id, server_id)["metadata"]


def get_one(conn: Connection, project_id: str, server_id: str, key: str) -> str:
    metadata = get_all(conn, project_id, server_id)
    if key not in metadata:
        raise EcsError("Common.0404", f"server {server_id} has no metadata key {key}")
    return metadata[key]


def merge(conn: Connection, project_id: str, server_id: str, pairs: dict[str, str]) -> dict[str, str]:
    """Add or update these pairs, keep the others. Returns all metadata."""
    metadata = _locked_row(conn, project_id, server_id)
    pairs = _users_pairs(metadata, pairs)
    if not pairs:
        return metadata      # "If the value is empty, data is not updated."
    return _store(conn, server_id, {**metadata, **pairs})


def replace(conn: Connection, project_id: str, server_id: str, pairs: dict[str, str]) -> dict[str, str]:
    """The user's pairs become exactly these; the service's keys stay. Returns all metadata."""
    metadata = _locked_row(conn, project_id, server_id)
    pairs = _users_pairs(metadata, pairs)
    return _store(conn, server_id, {**{k: v for k, v in metadata.items() if k in SYSTEM_KEYS}, **pairs})


def delete(conn: Connection, project_id: str, server_id: str, key: str) -> None:
    if key in SYSTEM_KEYS:
        raise invalid(f"metadata key {key} is kept by the service and cannot be deleted")
    metadata = _locked_row(conn, project_id, server_id)
    if key not in metadata:
        raise EcsError("Common.0404", f"server {server_id} has no metadata key {key}")
    del metadata[key]
    _store(conn, server_id, metadata)
