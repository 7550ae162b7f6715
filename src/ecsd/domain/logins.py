"""Password logins (``POST /v3/auth/tokens``): verification off the event loop, failed-login
throttling, and one answer for every failure.

In the spirit of Keystone's ``lockout_failure_attempts`` / ``lockout_duration`` and of Huawei
IAM's login protection (defaults in :class:`LoginPolicy`, docs/security.md):

* **Per user** (durable, shared by every process on the database): ``attempts`` failed logins
  within ``window`` seconds lock the user for ``duration`` seconds; while locked, a login fails
  whatever the password. A successful login clears the count. ``ecsd users unlock`` ends a lock.
* **Per client address** (in the memory of each process): ``address_limit`` failed logins within
  ``address_window`` seconds, and further logins from that address are refused with 429
  ``APIGW.0308`` and ``Retry-After`` until the window ends, before any password is hashed.
* **No enumeration:** an unknown user, a wrong password, a disabled or locked user all get the
  same 401 ``Common.0013`` body, after the same work (one scrypt, :data:`passwords.DUMMY_HASH` in
  place of a missing hash) and no sooner than ``failure_floor`` seconds after the request arrived,
  which also hides the database write a known user's failure costs.

Access keys (AK/SK) are not throttled: a signature is checked with an HMAC against a 40-character
secret, which cannot be guessed by trying.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock, identity
from ecsd.domain.errors import EcsError
from ecsd.domain.passwords import DUMMY_HASH, PasswordHasher
from ecsd.envvars import number
from ecsd.store.schema import domains, users

log = logging.getLogger("ecsd.logins")

WRONG = "The username or password is wrong."


@dataclass(frozen=True)
class LoginPolicy:
    """Failed-login throttling; each can be set with ``ECSD_<NAME>`` (0 attempts or limit: off)."""

    attempts: int = 5              # ECSD_LOCKOUT_FAILURE_ATTEMPTS: failures that lock a user
    window: float = 900.0          # ECSD_LOCKOUT_FAILURE_WINDOW: ... when they fall within this many seconds
    duration: float = 900.0        # ECSD_LOCKOUT_DURATION: seconds a user stays locked
    address_limit: int = 30        # ECSD_LOGIN_ADDRESS_LIMIT: failures one address may have ...
    address_window: float = 60.0   # ECSD_LOGIN_ADDRESS_WINDOW: ... per this many seconds
    failure_floor: float = 0.2     # ECSD_LOGIN_FAILURE_FLOOR: a failure is answered no sooner

    @classmethod
    def from_env(cls) -> LoginPolicy:
        return cls(attempts=number("ECSD_LOCKOUT_FAILURE_ATTEMPTS", cls.attempts, int),
                   window=number("ECSD_LOCKOUT_FAILURE_WINDOW", cls.window),
                   duration=number("ECSD_LOCKOUT_DURATION", cls.duration),
                   address_limit=number("ECSD_LOGIN_ADDRESS_LIMIT", cls.address_limit, int),
                   address_window=number("ECSD_LOGIN_ADDRESS_WINDOW", cls.address_window),
                   failure_floor=number("ECSD_LOGIN_FAILURE_FLOOR", cls.failure_floor))


@dataclass(frozen=True)
class LoginRequest:
    """A parsed password login with project scope (the HTTP layer checked its shape)."""

    password: str
    user_id: str | None = None
    user_name: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None


# --- per client address (memory) ---------------------------------------------------------------------

class AddressThrottle:
    """Fixed windows of failures per client address, in this process's memory (at most ``MAX`` addresses)."""

    MAX = 100_000

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, tuple[float, int]] = {}     # address -> (window start, failures)

    def clear(self) -> None:
        self._seen.clear()

    def check(self, address: str, now: float) -> None:
        """Raise 429 APIGW.0308 (with the seconds to wait) when ``address`` used up its failures."""
        if self.limit <= 0:
            return
        start, failures = self._seen.get(address, (now, 0))
        if failures >= self.limit and now - start < self.window:
            wait = max(1, math.ceil(start + self.window - now))
            raise EcsError("APIGW.0308", f"too many failed logins from this address; retry after {wait} s",
                           status=429, headers={"Retry-After": str(wait)},
                           message=f"The throttling threshold has been reached: policy ip over ratelimit, "
                                   f"limit:{self.limit}, time:{self.window:g} seconds")

    def failed(self, address: str, now: float) -> None:
        if self.limit <= 0:
            return
        start, failures = self._seen.get(address, (now, 0))
        if now - start >= self.window:
            start, failures = now, 0
        self._seen[address] = (start, failures + 1)
        if len(self._seen) > self.MAX:
            self._seen = {a: v for a, v in self._seen.items() if now - v[0] < self.window}
            if len(self._seen) > self.MAX:      # that many addresses failing at once: start over
                log.warning("failed-login throttle: more than %d addresses at once; forgetting them", self.MAX)
                self._seen.clear()


# --- per user (database) -----------------------------------------------------------------------------

def find_login_user(conn: Connection, req: LoginRequest) -> dict[str, Any] | None:
    """The user a login names (by id, or by name within a domain named or given by id), or None."""
    q = (select(users.c.id, users.c.name, users.c.password_hash, users.c.enabled, users.c.locked_until,
                domains.c.id.label("did"), domains.c.name.label("dname"), domains.c.enabled.label("denabled"))
         .join(domains, domains.c.id == users.c.domain_id))
    if req.user_id:
        q = q.where(users.c.id == req.user_id)
    elif req.domain_id:
        q = q.where(and_(users.c.name == req.user_name, domains.c.id == req.domain_id))
    else:
        q = q.where(and_(users.c.name == req.user_name, domains.c.name == req.domain_name))
    row = conn.execute(q).first()
    return dict(row._mapping) if row is not None else None


def record_failure(conn: Connection, user_id: str, now: float, policy: LoginPolicy) -> bool:
    """Count a failed login of ``user_id``; returns True if this failure locked the user."""
    if policy.attempts <= 0:
        return False
    q = select(users.c.failed_logins, users.c.first_failed_at, users.c.locked_until).where(users.c.id == user_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()         # concurrent failures of one user count one after another
    row = conn.execute(q).first()
    if row is None or (row.locked_until is not None and row.locked_until > now):
        return False
    if row.first_failed_at is None or now - row.first_failed_at >= policy.window:
        count, first = 1, now
    else:
        count, first = row.failed_logins + 1, row.first_failed_at
    locked = count >= policy.attempts
    conn.execute(users.update().where(users.c.id == user_id).values(
        failed_logins=0 if locked else count, first_failed_at=None if locked else first,
        locked_until=now + policy.duration if locked else None))
    return locked


def clear_failures(conn: Connection, user_id: str) -> None:
    conn.execute(users.update().where(and_(users.c.id == user_id, users.c.failed_logins != 0))
                 .values(failed_logins=0, first_failed_at=None))


def unlock(conn: Connection, user_id: str) -> bool:
    """End a lock and forget the failures (``ecsd users unlock``). Returns whether the user was locked."""
    row = conn.execute(select(users.c.locked_until).where(users.c.id == user_id)).first()
    was_locked = row is not None and row.locked_until is not None and row.locked_until > clock.now()
    conn.execute(users.update().where(users.c.id == user_id).values(failed_logins=0, first_failed_at=None,
                                                                    locked_until=None))
    return was_locked


# --- the login ------------------------------------------------------------------------------------------

class Logins:
    """What ``POST /v3/auth/tokens`` does, with its throttles and hash pool (one per process)."""

    def __init__(self, store, policy: LoginPolicy, hasher: PasswordHasher, token_ttl: float) -> None:
        self.store = store
        self.policy = policy
        self.hasher = hasher
        self.token_ttl = token_ttl
        self.addresses = AddressThrottle(policy.address_limit, policy.address_window)

    async def login(self, req: LoginRequest, address: str) -> tuple[str, identity.Identity]:
        """Verify the password and issue a project-scoped token: ``(token value, identity)``.
        Raises 401 Common.0013 for every failure, 429 APIGW.0308 when the address is throttled or
        too many logins wait for a hash thread. Every refusal is answered no sooner than the floor:
        it hides what a failure cost, and a client that retries at once can refuse itself at most
        1 / floor times a second per connection, so refusals cannot crowd the event loop."""
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        try:
            return await self._login(req, address)
        except EcsError as err:
            if err.status in (401, 429):
                delay = arrived + self.policy.failure_floor - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            raise

    async def _login(self, req: LoginRequest, address: str) -> tuple[str, identity.Identity]:
        now = clock.now()
        self.addresses.check(address, now)
        user = await self.store.read(find_login_user, req)
        locked = user is not None and user["locked_until"] is not None and user["locked_until"] > now
        usable = user is not None and not locked
        ok = await self.hasher.verify(req.password, user["password_hash"] if usable else DUMMY_HASH)
        if not (usable and ok and user["enabled"] and user["denabled"]):
            self.addresses.failed(address, clock.now())
            if usable and not ok:
                if await self.store.run(record_failure, user["id"], clock.now(), self.policy):
                    log.warning("user %s (%s) locked for %g s after %d failed logins", user["name"], user["id"],
                                self.policy.duration, self.policy.attempts)
            elif locked:
                log.info("login of locked user %s (%s) refused", user["name"], user["id"])
            raise EcsError("Common.0013", WRONG, status=401)
        return await self.store.run(_issue, user, req, self.token_ttl)


def _issue(conn: Connection, user: dict[str, Any], req: LoginRequest, ttl: float) -> tuple[str, identity.Identity]:
    clear_failures(conn, user["id"])
    return identity.issue_token_for(conn, user, project_id=req.project_id, project_name=req.project_name,
                                    project_domain_id=req.project_domain_id,
                                    project_domain_name=req.project_domain_name, ttl=ttl)
