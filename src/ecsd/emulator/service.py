"""The emulator as a whole, as the HTTP controls reach it: controls, request log, operator token,
and the orchestration of reset and restore in a running process.

Reset and restore replace every row: first the jobs running in this process are abandoned (their
rows are about to go) and held jobs released, then one transaction restores the snapshot, then the
in-memory caches that remember rows (tokens, access keys, listing orders, login throttles) are
dropped. Other processes sharing the database notice within their caches' few seconds; a test tool
runs one process. The restore runs on the event loop: milliseconds at test sizes, longer for a
snapshot of many thousands of servers (an operator action, like a migration).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from ecsd.domain import listing
from ecsd.emulator import seedfile, state
from ecsd.emulator.controls import Controls
from ecsd.emulator.requests import RequestLog


@dataclass
class Emulator:
    controls: Controls
    requests: RequestLog
    token: str

    def allows(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    async def restore(self, services: Any, name: str, *, reset_controls: bool) -> dict:
        await services.store.read(state.check_exists, name)     # a typo disturbs no running job
        self.controls.release()
        abandoned = await services.engine.abandon_all()
        if reset_controls:
            self.controls.reset()
            self.requests.clear()
        result = await services.store.run(state.restore, name)
        self._forget_rows(services)
        services.engine.notify()
        return {**result, "abandoned_jobs": abandoned}

    async def seed(self, services: Any, prepared: seedfile.PreparedSeed, box: Any) -> dict:
        out = await services.store.run(seedfile.apply, prepared, box)
        listing.forget(services.store.engine)
        return out

    @staticmethod
    def _forget_rows(services: Any) -> None:
        auth = services.auth
        for cache in (auth.cache, auth.scopes, auth.keys):
            cache.clear()
        services.logins.addresses.clear()
        listing.forget(services.store.engine)
