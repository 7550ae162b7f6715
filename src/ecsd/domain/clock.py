"""Time and identifiers, in the formats the API documents."""

from __future__ import annotations

import functools
import math
import random
import re
import time
from datetime import UTC, datetime

now = time.time


_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _random_v4() -> str:
    # The shape of uuid.uuid4().hex (version 4, RFC 4122 variant). Identifiers need to be unique,
    # not secret (tokens and keys come from `secrets`): the random module, seeded from the OS and
    # reseeded in every forked child, is an order of magnitude cheaper than a system call per id.
    return f"{(random.getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"


def new_uuid() -> str:
    h = _random_v4()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex_id() -> str:
    """32 lowercase hex characters: the documented shape of job and project ids."""
    return _random_v4()


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ms(ts: float | None) -> str | None:
    """Job times: ``2016-04-25T20:04:34.604Z`` (polled a lot: the whole-second part is memoised)."""
    if ts is None:
        return None
    frac, whole = math.modf(ts)                   # rounded to microseconds as datetime.fromtimestamp does
    micro = round(frac * 1_000_000)
    second = int(whole)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:
        second, micro = second - 1, micro + 1_000_000
    return f"{_iso_second(second)}.{micro // 1000:03d}Z"


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


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def is_uuid(value: object) -> bool:
    """The canonical 8-4-4-4-12 hex form (either case)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def is_hex32(value: object) -> bool:
    return isinstance(value, str) and _HEX32.fullmatch(value) is not None
