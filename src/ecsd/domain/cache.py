"""A small bounded in-process cache whose entries expire: validated tokens, access keys, scopes.

Entries live ``ttl`` seconds at most (or until an earlier ``until``); a change made by another
process (a revocation) therefore takes effect here within ``ttl`` seconds.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ecsd.domain import clock

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, ttl: float = 5.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[V, float]] = {}

    def get(self, key: str) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        value, until = hit
        if until <= clock.now():
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: str, value: V, until: float | None = None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        expiry = clock.now() + self.ttl
        self._entries[key] = (value, expiry if until is None else min(until, expiry))

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
