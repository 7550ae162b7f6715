"""Access keys: the AK/SK pairs that SDK-HMAC-SHA256 signatures are made with.

* An AK is 20 upper-case letters and digits; an SK is 40 letters and digits. Both come from
  :mod:`secrets`. The SK is shown once, when the key is created, and never again.
* To check a signature the server needs the SK itself, so it cannot be stored as a hash. It is
  stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256). The Fernet key is *not* in the
  database: it is the environment variable ``ECSD_SECRET_KEY`` or, without it, the file
  ``DATA_DIR/secret.key`` (mode 0600, created on first need). Several processes sharing one
  PostgreSQL database must all be given the same ``ECSD_SECRET_KEY``.
* A key is ``active`` or ``inactive`` (revoked). Keys are kept after revocation for the record.
* Verification looks a key up once and then keeps it, SK decrypted, in :class:`ecsd.domain.cache.TtlCache` for a
  few seconds: the hot path touches neither the database nor Fernet. A revocation made by another
  process (``ecsd keys revoke``) therefore takes effect within the cache's ``ttl``.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import string
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.store.schema import access_keys, domains, users

log = logging.getLogger("ecsd.keys")

AK_LENGTH = 20
SK_LENGTH = 40
AK_ALPHABET = string.ascii_uppercase + string.digits
SK_ALPHABET = string.ascii_letters + string.digits
ACTIVE = "active"
INACTIVE = "inactive"
MAX_DESCRIPTION = 255


class SecretKeyError(Exception):
    """The Fernet key is missing, malformed, or not the one the stored SKs were encrypted with."""


# --- the encryption key -------------------------------------------------------------------------------

def secret_box(settings) -> Fernet:
    """The Fernet that encrypts SKs: from ``settings.secret_key`` (ECSD_SECRET_KEY) or the key file."""
    if settings.secret_key:
        return _fernet(raw_secret_key(settings), "ECSD_SECRET_KEY")
    return _fernet(raw_secret_key(settings), settings.secret_key_file)


def raw_secret_key(settings) -> bytes:
    """The installation's secret key as configured (ECSD_SECRET_KEY, else the key file, made if absent)."""
    if settings.secret_key:
        return settings.secret_key.strip().encode("ascii", "replace")
    return _key_file(settings.secret_key_file)


def _fernet(key: bytes, source: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise SecretKeyError(f"{source} does not hold a valid Fernet key (32 url-safe base64-encoded bytes; "
                             "make one with: python -c 'from cryptography.fernet import Fernet; "
                             "print(Fernet.generate_key().decode())')") from None


def _key_file(path: str) -> bytes:
    """Read the key file, creating it (0600, exclusively, so that racing processes agree) if absent."""
    try:
        with open(path, "rb") as fh:
            key = fh.read().strip()
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            log.warning("%s is readable by other users (mode %o); it should be 0600", path, mode)
        return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        with open(path, "rb") as fh:
            return fh.read().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


# --- records ------------------------------------------------------------------------------------------

def new_access_key_id() -> str:
    return "".join(secrets.choice(AK_ALPHABET) for _ in range(AK_LENGTH))


def new_secret_key() -> str:
    return "".join(secrets.choice(SK_ALPHABET) for _ in range(SK_LENGTH))


def looks_like_access_key(value: str) -> bool:
    return len(value) == AK_LENGTH and all(c in AK_ALPHABET for c in value)


def create(conn: Connection, box: Fernet, user_id: str, description: str = "") -> tuple[str, str]:
    """A new active key for ``user_id``. Returns ``(ak, sk)``; the SK cannot be read back later."""
    if len(description) > MAX_DESCRIPTION:
        raise ValueError(f"the description is longer than {MAX_DESCRIPTION} characters")
    if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise LookupError(f"no user with id {user_id}")
    while True:
        ak = new_access_key_id()
        if conn.execute(select(access_keys.c.ak).where(access_keys.c.ak == ak)).first() is None:
            break
    sk = new_secret_key()
    conn.execute(access_keys.insert().values(
        ak=ak, user_id=user_id, sk_encrypted=box.encrypt(sk.encode("ascii")).decode("ascii"),
        description=description, status=ACTIVE, created_at=clock.now(), last_used_at=None))
    return ak, sk


def list_keys(conn: Connection, user_id: str | None = None) -> list[dict]:
    """Keys with their owner's names, oldest first. Never the SK, not even encrypted."""
    q = (select(access_keys.c.ak, access_keys.c.user_id, users.c.name.label("user_name"),
                domains.c.name.label("domain_name"), access_keys.c.description, access_keys.c.status,
                access_keys.c.created_at, access_keys.c.last_used_at)
         .join(users, users.c.id == access_keys.c.user_id)
         .join(domains, domains.c.id == users.c.domain_id)
         .order_by(access_keys.c.created_at, access_keys.c.ak))
    if user_id is not None:
        q = q.where(access_keys.c.user_id == user_id)
    return [dict(r._mapping) for r in conn.execute(q).all()]


def set_status(conn: Connection, ak: str, status: str) -> bool:
    if status not in (ACTIVE, INACTIVE):
        raise ValueError(f"status must be {ACTIVE} or {INACTIVE}")
    res = conn.execute(access_keys.update().where(access_keys.c.ak == ak).values(status=status))
    return res.rowcount > 0


def revoke(conn: Connection, ak: str) -> bool:
    """Deactivate a key for good (signatures made with it are refused). False if there is no such key."""
    return set_status(conn, ak, INACTIVE)


def touch(conn: Connection, ak: str, when: float) -> None:
    conn.execute(access_keys.update().where(access_keys.c.ak == ak).values(last_used_at=when))


# --- verification -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccessKey:
    """What verifying a signature needs about a key: the plain SK and whose key it is."""

    ak: str
    sk: str = field(repr=False)  # never in a log line or a traceback
    status: str
    user_id: str
    user_name: str
    domain_id: str
    domain_name: str
    user_enabled: bool

    @property
    def usable(self) -> bool:
        return self.status == ACTIVE and self.user_enabled


def lookup(conn: Connection, box: Fernet, ak: str) -> AccessKey | None:
    """The key with its SK decrypted, or None if there is no such AK."""
    row = conn.execute(
        select(access_keys.c.ak, access_keys.c.sk_encrypted, access_keys.c.status, access_keys.c.user_id,
               users.c.name.label("uname"), users.c.enabled.label("uenabled"), domains.c.id.label("did"),
               domains.c.name.label("dname"), domains.c.enabled.label("denabled"))
        .join(users, users.c.id == access_keys.c.user_id)
        .join(domains, domains.c.id == users.c.domain_id)
        .where(access_keys.c.ak == ak)
    ).first()
    if row is None:
        return None
    try:
        sk = box.decrypt(row.sk_encrypted.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SecretKeyError(f"the SK of access key {ak} cannot be decrypted: ECSD_SECRET_KEY (or "
                             "DATA_DIR/secret.key) is not the key it was created with") from None
    return AccessKey(row.ak, sk, row.status, row.user_id, row.uname, row.did, row.dname,
                     bool(row.uenabled and row.denabled))



def box_opens_stored_keys(conn: Connection, box: Fernet) -> bool:
    """Whether ``box`` decrypts the stored SKs (checked on one of them; True when there are none)."""
    row = conn.execute(select(access_keys.c.sk_encrypted).limit(1)).first()
    if row is None:
        return True
    try:
        box.decrypt(row.sk_encrypted.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True
