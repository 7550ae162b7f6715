"""Password hashes (scrypt) and the bounded thread pool that computes them off the event loop.

One scrypt costs ~50 ms of CPU and 16 MiB of memory by design; on the event loop every login would
pause every other request for that long. :class:`PasswordHasher` runs them on at most ``threads``
threads (hashlib's scrypt releases the GIL, so the loop goes on meanwhile; the threads run at nice
+10, so a core they share with the loop serves requests first) with at most ``queue`` waiting; beyond that a login is refused at once with 429 ``APIGW.0308`` instead of queueing without
bound (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from ecsd.domain.errors import EcsError

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


# Verified in place of a missing user's hash, so that an unknown name costs what a known one does.
DUMMY_HASH = hash_password(secrets.token_hex(8))


HASH_NICENESS = 10


def _yield_to_loop() -> None:
    """Run this hash thread at a lower CPU priority than the event loop (Linux: nice is per thread), so
    that a core shared by both serves requests first and hashes in the time left."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
    except (AttributeError, OSError):      # not Linux, or not allowed: the same priority, still off the loop
        pass


def default_threads() -> int:
    """Half the cores (at least 1, at most 4): logins never take every core from the event loop."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


class PasswordHasher:
    def __init__(self, threads: int | None = None, queue: int = 64) -> None:
        self.threads = threads or default_threads()
        self.queue = queue
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0

    def _submit(self, fn, *args) -> asyncio.Future:
        if self._pending >= self.threads + self.queue:
            raise EcsError("APIGW.0308", "too many logins are being verified; try again in a moment",
                           status=429, headers={"Retry-After": "1"})
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ecsd-hash", initializer=_yield_to_loop)
        self._pending += 1
        fut = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _fut: asyncio.Future) -> None:
        self._pending -= 1

    async def verify(self, password: str, stored: str) -> bool:
        # Looked up at call time (not bound at import), so that a test can stand in for it.
        return await self._submit(lambda: verify_password(password, stored))

    async def hash(self, password: str) -> str:
        return await self._submit(lambda: hash_password(password))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
