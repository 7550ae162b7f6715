"""Verifying ``SDK-HMAC-SHA256`` request signatures (the Huawei Cloud SDK's AK/SK scheme).

Pure functions over what arrived on the wire; no framework and no database here. The scheme, in
short (``clients.md`` section 3 has the full description):

    canonical request = METHOD \\n canonical URI \\n canonical query \\n canonical headers \\n
                        signed header names \\n payload hash
    string to sign    = "SDK-HMAC-SHA256" \\n X-Sdk-Date \\n hex(sha256(canonical request))
    signature         = hex(hmac_sha256(SK, string to sign))

Everything is assembled from bytes as received (raw path, raw query string, raw header values,
raw body) so that nothing gets normalised on the way: the server must hash what the client
hashed. :func:`prepare` does every check that needs no secret and returns a :class:`Prepared`
request; :func:`verify` then needs only the SK and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from calendar import timegm
from collections.abc import Iterable
from dataclasses import dataclass
from time import strptime
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "SDK-HMAC-SHA256"
# Schemes the SDK can be configured to use; named in the error so that a user sees why.
OTHER_ALGORITHMS = ("SDK-HMAC-SM3", "SDK-ECDSA-P256-SHA256", "SDK-SM2-SM3", "V11-HMAC-SHA256")
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = 15 * 60  # seconds either way, as Huawei's API gateway allows
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
REQUIRED_HEADERS = ("host", "x-sdk-date")

_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


class SignatureError(Exception):
    """The request is not acceptably signed. The message says why (it is safe to show the caller)."""


@dataclass(frozen=True)
class Authorization:
    algorithm: str
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class Prepared:
    """A request whose signature can be checked once the SK of ``access_key`` is known."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str
    sdk_date: str
    canonical_request: bytes
    string_to_sign: str


# --- the Authorization header -------------------------------------------------------------------------

def is_signature_scheme(value: str) -> bool:
    """Whether an Authorization header names one of the SDK's signing schemes (of any algorithm)."""
    scheme = value.strip().split(" ", 1)[0].upper()
    return scheme == ALGORITHM or scheme in OTHER_ALGORITHMS or scheme.startswith("SDK-")


def parse_authorization(value: str) -> Authorization:
    """``SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b;c, Signature=hex``."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.upper() != ALGORITHM:
        if scheme.upper() in OTHER_ALGORITHMS or scheme.upper().startswith("SDK-"):
            raise SignatureError(f"signing algorithm {scheme} is not supported; use {ALGORITHM}")
        raise SignatureError(f"unsupported Authorization scheme; use {ALGORITHM}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        key = key.strip()
        if not eq or key in params:
            raise SignatureError("malformed Authorization header")
        params[key] = val.strip()
    access = params.get("Access", "")
    signed = params.get("SignedHeaders", "")
    signature = params.get("Signature", "")
    if not access or not signed or not signature or set(params) - {"Access", "SignedHeaders", "Signature"}:
        raise SignatureError("the Authorization header needs exactly Access, SignedHeaders and Signature")
    if not _HEX64_RE.fullmatch(signature):
        raise SignatureError("Signature must be 64 hexadecimal characters")
    names = tuple(signed.split(";"))
    if any(not _HEADER_NAME_RE.fullmatch(n) for n in names):
        raise SignatureError("SignedHeaders must be lower-case header names separated by ';'")
    if len(set(names)) != len(names):
        raise SignatureError("SignedHeaders names a header twice")
    for required in REQUIRED_HEADERS:
        if required not in names:
            raise SignatureError(f"SignedHeaders must include {required}")
    return Authorization(scheme, access, names, signature.lower())


# --- canonical parts ----------------------------------------------------------------------------------

def _encode(raw: bytes) -> str:
    # Python's quote never escapes A-Z a-z 0-9 and "_.-~"; with safe="~" it escapes everything else.
    return quote(raw, safe="~")


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def canonical_uri(raw_path: bytes | str) -> str:
    """Decode the path, split on ``/`` (decoded ``%2F`` included), re-encode each segment, end in ``/``."""
    raw = _as_bytes(raw_path).split(b"?", 1)[0]
    segments = unquote_to_bytes(raw).split(b"/")
    uri = "/".join(_encode(seg) for seg in segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(raw_query: bytes | str) -> str:
    """Decode each ``key=value`` of the raw query string, sort the pairs, re-encode, join with ``&``.

    ``+`` is kept as a literal plus (``%2B``), as the SDKs' own signers treat it; the Huawei SDK never
    puts one on the wire (spaces travel as ``%20``).
    """
    raw = _as_bytes(raw_query)
    pairs: list[tuple[bytes, bytes]] = []
    for item in raw.split(b"&"):
        if not item:
            continue
        key, _, val = item.partition(b"=")
        pairs.append((unquote_to_bytes(key), unquote_to_bytes(val)))
    pairs.sort()  # byte order of UTF-8 is code point order: the same as sorting the decoded strings
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in pairs)


def header_values(headers: Iterable[tuple[bytes, bytes]], name: str) -> list[bytes]:
    want = name.encode("ascii")
    return [v for k, v in headers if k.lower() == want]


def _single_header(headers: list[tuple[bytes, bytes]], name: str) -> bytes:
    values = header_values(headers, name)
    if not values:
        raise SignatureError(f"signed header {name} is missing from the request")
    if len(values) > 1:
        raise SignatureError(f"signed header {name} appears more than once")
    return values[0]


def _strip(value: bytes) -> bytes:
    # The SDK strips the str value; do the same on the UTF-8 text, keeping undecodable bytes as they are.
    return value.decode("utf-8", "surrogateescape").strip().encode("utf-8", "surrogateescape")


def canonical_headers(headers: Iterable[tuple[bytes, bytes]], signed_headers: Iterable[str]) -> bytes:
    """``name:value`` lines (each ending in ``\\n``) in SignedHeaders order, values stripped only."""
    hs = list(headers)
    return b"".join(name.encode("ascii") + b":" + _strip(_single_header(hs, name)) + b"\n"
                    for name in signed_headers)


def payload_hash(body: bytes, headers: Iterable[tuple[bytes, bytes]], signed_headers: Iterable[str]) -> str:
    """Hex SHA-256 of the body: always, whatever the client declares.

    The SDK signs ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` for bodies that are not JSON (uploads
    elsewhere in the cloud), which leaves the body out of the signature. Every body this API takes is
    read as JSON, whatever its Content-Type says, so a request carrying that header with a body is
    refused: a captured request could otherwise be replayed with another body. An empty body is
    hashed as the empty string; any other declared hash is refused too.
    """
    hs = list(headers)
    declared = header_values(hs, "x-sdk-content-sha256")
    if declared and body and "x-sdk-content-sha256" in set(signed_headers):
        if _strip(declared[0]) == UNSIGNED_PAYLOAD.encode():
            raise SignatureError(f"{UNSIGNED_PAYLOAD} is not accepted: every body of this API is JSON and "
                                 "must be signed")
        raise SignatureError(f"X-Sdk-Content-Sha256 may only be {UNSIGNED_PAYLOAD}, and only without a body")
    return hashlib.sha256(body).hexdigest()


def canonical_request(method: str, raw_path: bytes | str, raw_query: bytes | str,
                      headers: Iterable[tuple[bytes, bytes]], signed_headers: Iterable[str],
                      body_hash: str) -> bytes:
    signed = list(signed_headers)
    return b"\n".join([
        method.upper().encode("ascii"),
        canonical_uri(raw_path).encode("ascii"),
        canonical_query(raw_query).encode("ascii"),
        canonical_headers(headers, signed),  # ends in "\n": a blank line follows
        ";".join(signed).encode("ascii"),
        body_hash.encode("ascii"),
    ])


def string_to_sign(sdk_date: str, canonical: bytes) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical).hexdigest()}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


# --- X-Sdk-Date -----------------------------------------------------------------------------------------

def parse_sdk_date(value: str) -> float:
    """``20240102T030405Z`` (UTC) -> epoch seconds; anything else is a SignatureError."""
    if not _DATE_RE.fullmatch(value):
        raise SignatureError("X-Sdk-Date must have the form YYYYMMDDTHHMMSSZ (UTC), e.g. 20240102T030405Z")
    try:
        return float(timegm(strptime(value, DATE_FORMAT)))
    except ValueError:
        raise SignatureError("X-Sdk-Date is not a valid date") from None


def check_sdk_date(value: str, now: float, max_skew: float = MAX_SKEW) -> None:
    when = parse_sdk_date(value)
    if when < now - max_skew:
        raise SignatureError("X-Sdk-Date is too old: the request has expired (check the client clock)")
    if when > now + max_skew:
        raise SignatureError("X-Sdk-Date is in the future (check the client clock)")


# --- the whole check ---------------------------------------------------------------------------------------

def prepare(*, authorization: str, method: str, raw_path: bytes | str, raw_query: bytes | str,
            headers: Iterable[tuple[bytes, bytes]], body: bytes, now: float,
            max_skew: float = MAX_SKEW) -> Prepared:
    """Every check that needs no secret: header syntax, required signed headers, the date, the hash."""
    auth = parse_authorization(authorization)
    hs = list(headers)
    sdk_date = _strip(_single_header(hs, "x-sdk-date")).decode("latin-1")
    check_sdk_date(sdk_date, now, max_skew)
    canonical = canonical_request(method, raw_path, raw_query, hs, auth.signed_headers,
                                  payload_hash(body, hs, auth.signed_headers))
    return Prepared(auth.access_key, auth.signed_headers, auth.signature, sdk_date, canonical,
                    string_to_sign(sdk_date, canonical))


def verify(prepared: Prepared, secret_key: str) -> bool:
    expected = signature(secret_key, prepared.string_to_sign)
    return hmac.compare_digest(expected.encode("ascii"), prepared.signature.encode("ascii"))
