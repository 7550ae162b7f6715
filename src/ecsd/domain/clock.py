"""Time and identifiers, in the formats the API documents."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

now = time.time


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_hex_id() -> str:
    """32 lowercase hex characters: the documented shape of job and project ids."""
    return uuid.uuid4().hex


def iso_ms(ts: float | None) -> str | None:
    """Job times: ``2016-04-25T20:04:34.604Z``."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_s(ts: float | None) -> str | None:
    """Server ``created``/``updated``: ``2019-05-22T03:30:52Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_us(ts: float | None) -> str | None:
    """``OS-SRV-USG:launched_at``: ``2019-05-22T03:23:59.000000`` (no zone suffix)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def is_hex32(value: object) -> bool:
    return isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)
