"""Numbers from ``ECSD_*`` environment variables: one parser for every setting that reads one
(config.Settings, domain/logins.py). A bad value stops the process with a message naming the variable."""

from __future__ import annotations

import os
from typing import Any


def number(name: str, default: Any, kind: type = float) -> Any:
    """``kind(os.environ[name])`` (``int`` or ``float``), ``default`` when unset or empty; never negative."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a {'whole ' if kind is int else ''}number, not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative")
    return value


def flag(name: str, default: bool = False) -> bool:
    """``ECSD_X=1/true/yes/on`` or ``0/false/no/off``; ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {raw!r}")
