"""Key pairs (per user): create, import, list, show, delete, and lookup for change OS.

A key pair belongs to the user who created it; no other user sees it, not even one in the same
project. Names are unique per user. The private key of a generated pair is handed back once and
never stored.

Rules this module applies (the reference leaves them open; Nova's are used where it has one):

* name: 1 to 64 characters of ASCII letters, digits, ``-``, ``_`` and space, not starting or ending
  with a space (Nova's safe character set; 64 is the length of the stored column);
* ``ssh`` keys: one OpenSSH public key line of type ssh-rsa, ssh-ed25519 or ecdsa-sha2-nistp256/384/521;
  ``x509`` keys: one PEM certificate; an imported key is at most 1024 bytes (UTF-8);
* fingerprint: for ``ssh`` the legacy MD5 of the key blob, for ``x509`` the SHA-1 of the DER
  certificate, both as lowercase colon-separated hex, as Nova reports them;
* at most :data:`QUOTA` key pairs per user (Nova's default ``key_pairs`` quota).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ecsd.domain import clock
from ecsd.domain.errors import EcsError, invalid
from ecsd.store.schema import keypairs, users

NAME_MAX = 64
PUBLIC_KEY_MAX_BYTES = 1024
QUOTA = 100
TYPES = ("ssh", "x509")
SSH_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
RSA_BITS = 2048
GENERATED_COMMENT = "Generated-by-ecsd"

_NAME_RE = re.compile(r"[A-Za-z0-9_\- ]+")


# --- validation -----------------------------------------------------------------------------------------

def check_name(name: str) -> None:
    """A new key pair's name; raises Ecs.0005 with what is wrong."""
    if not name:
        raise invalid("keypair.name must not be empty")
    if len(name) > NAME_MAX:
        raise invalid(f"keypair.name must be at most {NAME_MAX} characters")
    if not _NAME_RE.fullmatch(name):
        raise invalid("keypair.name may contain only letters, digits, '-', '_' and spaces")
    if name != name.strip(" "):
        raise invalid("keypair.name must not start or end with a space")


def could_exist(name: str) -> bool:
    """Whether a name taken from a URL can name a key pair at all (else it is simply not found)."""
    return 0 < len(name) <= NAME_MAX


def check_type(key_type: str) -> None:
    if key_type not in TYPES:
        raise invalid("keypair.type must be 'ssh' or 'x509'")


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_fingerprint(public_key: Any) -> str:
    """Legacy OpenSSH fingerprint: MD5 over the wire-format key blob, as ``aa:bb:...``."""
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(cert: x509.Certificate) -> str:
    # SHA-1 because that is what Nova reports for x509 key pairs; it identifies, it does not protect.
    return _colon_hex(cert.fingerprint(hashes.SHA1()))


def parse_ssh_public_key(text: str) -> tuple[str, str]:
    """Validate one OpenSSH public key line. Returns (the key as stored, fingerprint)."""
    line = text.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in line):
        # One key only: a line break would smuggle a second entry into authorized_keys.
        raise invalid("keypair.public_key must be a single line without control characters")
    parts = line.split()
    if len(parts) < 2:
        raise invalid("keypair.public_key is not an OpenSSH public key ('<type> <base64> [comment]')")
    if parts[0] not in SSH_KEY_TYPES:
        raise invalid(f"keypair.public_key type must be one of {', '.join(SSH_KEY_TYPES)}")
    try:
        key = serialization.load_ssh_public_key(line.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm, binascii.Error, TypeError):
        raise invalid("keypair.public_key is not a valid OpenSSH public key") from None
    if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise invalid("keypair.public_key is of an unsupported key type")
    return line, ssh_fingerprint(key)


def parse_x509_certificate(text: str) -> tuple[str, str]:
    """Validate one PEM X.509 certificate. Returns (the certificate as stored, fingerprint)."""
    pem = text.strip()
    if pem.count("-----BEGIN ") != 1:
        raise invalid("keypair.public_key must be exactly one PEM certificate for type x509")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise invalid("keypair.public_key is not a valid PEM X.509 certificate") from None
    return pem + "\n", x509_fingerprint(cert)


def parse_public_key(text: str, key_type: str) -> tuple[str, str]:
    """An imported key: size limit first, then the format of ``key_type``."""
    if len(text.encode("utf-8")) > PUBLIC_KEY_MAX_BYTES:
        raise invalid(f"keypair.public_key must be at most {PUBLIC_KEY_MAX_BYTES} bytes")
    if key_type == "x509":
        return parse_x509_certificate(text)
    return parse_ssh_public_key(text)


# --- generation (CPU-bound: call it off the event loop) ---------------------------------------------

def _private_pem(key: rsa.RSAPrivateKey) -> str:
    # Traditional "BEGIN RSA PRIVATE KEY" PEM: what Nova hands out, and what ssh and PuTTYgen read.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def generate(key_type: str, name: str) -> tuple[str, str, str]:
    """A new RSA 2048 key pair. Returns (public key, private key PEM, fingerprint).

    ``ssh``: the public key is an OpenSSH line. ``x509``: it is a self-signed PEM certificate for
    the new key (subject CN = the key pair name), valid for ten years.
    """
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "x509":
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecsd"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(private.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
                .sign(private, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _private_pem(private), x509_fingerprint(cert)
    public = private.public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {GENERATED_COMMENT}", _private_pem(private), ssh_fingerprint(public)


# --- records -------------------------------------------------------------------------------------------------

def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


_FIND = select(keypairs).where(and_(keypairs.c.user_id == bindparam("user_id"),
                                   keypairs.c.name == bindparam("name")))   # built once (hot path)


def find_keypair(conn: Connection, user_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(_FIND, {"user_id": user_id, "name": name}).first()
    return dict(row._mapping) if row else None


def not_found(name: str) -> EcsError:
    """Status 404 (Nova's), with the reference's key-pair-does-not-exist code."""
    return EcsError("Ecs.0314", f"key pair '{name}' does not exist", status=404)


def get_keypair(conn: Connection, user_id: str, name: str) -> dict[str, Any]:
    found = find_keypair(conn, user_id, name) if could_exist(name) else None
    if found is None:
        raise not_found(name)
    return found


def _duplicate(name: str) -> EcsError:
    return EcsError("Ecs.0005", f"key pair '{name}' already exists", status=409)


def count_keypairs(conn: Connection, user_id: str) -> int:
    return conn.execute(select(func.count()).select_from(keypairs).where(keypairs.c.user_id == user_id)).scalar_one()


def check_can_add(conn: Connection, user_id: str, name: str) -> None:
    """Duplicate name -> 409, quota used up -> 403 Ecs.0001. Run before the costly key generation."""
    if find_keypair(conn, user_id, name) is not None:
        raise _duplicate(name)
    if count_keypairs(conn, user_id) >= QUOTA:
        raise EcsError("Ecs.0001", f"key pair quota exceeded: at most {QUOTA} key pairs per user", status=403)


def add_keypair(conn: Connection, user_id: str, name: str, key_type: str, public_key: str,
                fingerprint: str) -> dict[str, Any]:
    """Store a validated key pair (checks repeated inside the transaction). Returns the row.

    The user's row is locked first (PostgreSQL; SQLite's write lock serialises anyway), so that
    concurrent creates of one user count one after another and never pass the quota together."""
    conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())
    check_can_add(conn, user_id, name)
    try:
        new_id = conn.execute(keypairs.insert().values(
            user_id=user_id, name=name, type=key_type, public_key=public_key, fingerprint=fingerprint,
            created_at=clock.now())).inserted_primary_key[0]
    except IntegrityError:  # a concurrent create of the same name won the race
        raise _duplicate(name) from None
    row = conn.execute(select(keypairs).where(keypairs.c.id == new_id)).first()
    return _row(row)


def list_keypairs(conn: Connection, user_id: str, limit: int | None = None,
                  marker: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The user's key pairs ordered by name, after ``marker`` (a name; unknown -> Ecs.0005).

    Returns (page, whether more follow).
    """
    q = select(keypairs).where(keypairs.c.user_id == user_id)
    if marker is not None:
        if not could_exist(marker) or find_keypair(conn, user_id, marker) is None:
            raise invalid(f"marker '{marker}' is not a key pair of this user")
        q = q.where(keypairs.c.name > marker)
    q = q.order_by(keypairs.c.name)
    if limit is not None:
        q = q.limit(limit + 1)
    rows = [_row(r) for r in conn.execute(q)]
    if limit is not None and len(rows) > limit:
        return rows[:limit], True
    return rows, False


def delete_keypair(conn: Connection, user_id: str, name: str) -> None:
    """Delete the user's key pair; unknown -> 404. Servers that were given the key keep it."""
    if not could_exist(name):
        raise not_found(name)
    result = conn.execute(keypairs.delete().where(and_(keypairs.c.user_id == user_id, keypairs.c.name == name)))
    if result.rowcount == 0:
        raise not_found(name)
