"""The SDK-HMAC-SHA256 verifier's pure functions: the known-answer vectors of clients.md section 3,
and the canonicalisation rules one at a time."""

from __future__ import annotations

import hashlib
from calendar import timegm
from time import strptime

import pytest

from ecsd.http import signing

AK = "AKEXAMPLE0000000000A"
SK = "SKEXAMPLE0000000000000000000000000000000B"
PID = "0605767d4e80d2f42f2bc0115e5b1234"
DATE = "20240102T030405Z"
NOW = float(timegm(strptime(DATE, "%Y%m%dT%H%M%SZ")))
SIGNED = ("content-type", "host", "user-agent", "x-project-id", "x-sdk-date")
CHANGEOS_PATH = f"/v1/{PID}/cloudservers/b6b2c9f4-8b0e-4f43-9d4d-6f1c2f3b5a11/changeos"
CHANGEOS_BODY = (b'{"os-change": {"keyname": "KeyPair-350b", '
                 b'"imageid": "e215580f-73ad-429d-b6f2-5433947433b0", '
                 b'"mode": "withStopServer"}}')


def sdk_headers(content_type: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type.encode()), (b"host", b"127.0.0.1:8080"),
            (b"user-agent", b"huaweicloud-usdk-python/3.0"), (b"x-project-id", PID.encode()),
            (b"x-sdk-date", DATE.encode()), (b"accept", b"*/*"), (b"content-length", b"123")]


def authorization(signature: str, signed=SIGNED, access: str = AK) -> str:
    return f"SDK-HMAC-SHA256 Access={access}, SignedHeaders={';'.join(signed)}, Signature={signature}"


# --- the known-answer vectors -------------------------------------------------------------------------

def test_vector_post_changeos():
    headers = sdk_headers("application/json;charset=utf-8")
    body_hash = signing.payload_hash(CHANGEOS_BODY, headers, SIGNED)
    assert body_hash == "d8377ccef493819b28eff6da5426d5df45946efb5fd802927ed50d87bc26948f"
    canonical = signing.canonical_request("POST", CHANGEOS_PATH, "", headers, SIGNED, body_hash)
    assert hashlib.sha256(canonical).hexdigest() == \
        "bb46230afb877dcdcb2671935071129515be57f77a8d632c1ec5d8dd9a8b0cbc"
    expected = "d75691870f7fb22cfcb46152f769f431420f22afeb4b4fa7393e9555ae02dbe8"
    assert signing.signature(SK, signing.string_to_sign(DATE, canonical)) == expected

    prepared = signing.prepare(authorization=authorization(expected), method="POST",
                               raw_path=CHANGEOS_PATH.encode(), raw_query=b"", headers=headers,
                               body=CHANGEOS_BODY, now=NOW)
    assert prepared.access_key == AK
    assert signing.verify(prepared, SK)
    assert not signing.verify(prepared, SK[:-1] + "C")


def test_vector_get_list_with_query():
    headers = sdk_headers("application/json")
    assert signing.canonical_query(b"limit=10&name=a%20b&offset=1") == "limit=10&name=a%20b&offset=1"
    assert signing.payload_hash(b"", headers, SIGNED) == signing.EMPTY_SHA256
    canonical = signing.canonical_request("GET", f"/v1/{PID}/cloudservers/detail",
                                          "limit=10&name=a%20b&offset=1", headers, SIGNED,
                                          signing.EMPTY_SHA256)
    expected = "9b39bd731f04222fd5db8496b9785075660783fc8f3d5eb28afb2f471809338a"
    assert signing.signature(SK, signing.string_to_sign(DATE, canonical)) == expected
    # the same request with its query in another order on the wire still verifies
    prepared = signing.prepare(authorization=authorization(expected.upper()), method="get",
                               raw_path=f"/v1/{PID}/cloudservers/detail".encode(),
                               raw_query=b"offset=1&name=a%20b&limit=10", headers=headers, body=b"", now=NOW)
    assert signing.verify(prepared, SK)


def test_canonical_request_layout():
    headers = sdk_headers("application/json")
    canonical = signing.canonical_request("GET", "/v1/x", "b=2&a=1", headers, SIGNED, signing.EMPTY_SHA256)
    lines = canonical.decode().split("\n")
    assert lines[0] == "GET" and lines[1] == "/v1/x/" and lines[2] == "a=1&b=2"
    assert lines[3:8] == ["content-type:application/json", "host:127.0.0.1:8080",
                          "user-agent:huaweicloud-usdk-python/3.0", f"x-project-id:{PID}",
                          f"x-sdk-date:{DATE}"]
    assert lines[8] == "" and lines[9] == ";".join(SIGNED) and lines[10] == signing.EMPTY_SHA256


# --- canonical URI ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "canonical"), [
    ("/v1/p/cloudservers/detail", "/v1/p/cloudservers/detail/"),
    ("/v1/p/cloudservers/", "/v1/p/cloudservers/"),                 # trailing slash kept, not doubled
    ("/", "/"),
    ("", "/"),
    ("/v2/images/a%2Fb", "/v2/images/a/b/"),                      # an encoded / becomes a separator
    ("/v2/images/a%20b", "/v2/images/a%20b/"),                    # space stays %20
    ("/v2/images/a b", "/v2/images/a%20b/"),
    ("/v1/%7Bproject_id%7D/cloudservers", "/v1/%7Bproject_id%7D/cloudservers/"),
    ("/v1/{project_id}/x", "/v1/%7Bproject_id%7D/x/"),
    ("/v1/p/a~b_c-d.e", "/v1/p/a~b_c-d.e/"),                      # unreserved stay as they are
    ("/v1/p/%7e%41", "/v1/p/~A/"),                                 # needless escapes are undone
    ("/v1/p/a+b:c@d", "/v1/p/a%2Bb%3Ac%40d/"),
    ("/v1/p/%C3%A9t%C3%A9", "/v1/p/%C3%A9t%C3%A9/"),
    ("/v1/p/x?limit=1", "/v1/p/x/"),
])
def test_canonical_uri(raw, canonical):
    assert signing.canonical_uri(raw) == canonical
    assert signing.canonical_uri(raw.encode()) == canonical


# --- canonical query ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "canonical"), [
    ("", ""),
    ("&", ""),
    ("limit=10", "limit=10"),
    ("name=a%20b", "name=a%20b"),
    ("name=a b", "name=a%20b"),
    ("tags=b&tags=a&limit=1", "limit=1&tags=a&tags=b"),            # repeated keys: values sorted
    ("b=1&a=2&a=1", "a=1&a=2&b=1"),
    ("flag", "flag="),                                              # a key without a value
    ("empty=", "empty="),
    ("__imagetype=gold&__os_type=Linux", "__imagetype=gold&__os_type=Linux"),
    ("not-tags=x%2Cy", "not-tags=x%2Cy"),
    ("name=%7e", "name=~"),
    ("q=a+b", "q=a%2Bb"),                                           # + is a literal plus
    ("name=%C3%A9", "name=%C3%A9"),
    ("k%20ey=v", "k%20ey=v"),
])
def test_canonical_query(raw, canonical):
    assert signing.canonical_query(raw) == canonical


def test_canonical_query_sorts_decoded_values():
    # decoded, " " (0x20) sorts before "!" (0x21); the encoded forms would sort the other way round
    assert signing.canonical_query("n=a%21&n=a%20") == "n=a%20&n=a%21"


# --- headers and payload ------------------------------------------------------------------------------

def test_canonical_headers_use_values_as_received():
    headers = [(b"host", b"example.com:8443"), (b"x-sdk-date", b"  20240102T030405Z \t"),
               (b"x-custom", "caf\u00e9".encode())]
    out = signing.canonical_headers(headers, ["host", "x-custom", "x-sdk-date"])
    assert out == "host:example.com:8443\nx-custom:caf\u00e9\nx-sdk-date:20240102T030405Z\n".encode()


def test_signed_header_missing_or_repeated_is_refused():
    with pytest.raises(signing.SignatureError, match="missing"):
        signing.canonical_headers([(b"host", b"h")], ["host", "x-sdk-date"])
    with pytest.raises(signing.SignatureError, match="more than once"):
        signing.canonical_headers([(b"host", b"h"), (b"host", b"i")], ["host"])


def test_unsigned_payload_is_refused_for_any_body():
    signed = ("content-type", "host", "x-sdk-content-sha256", "x-sdk-date")
    octets = [(b"content-type", b"application/octet-stream"), (b"x-sdk-content-sha256", b"UNSIGNED-PAYLOAD")]
    with pytest.raises(signing.SignatureError, match="UNSIGNED-PAYLOAD"):
        signing.payload_hash(b"data", octets, signed)
    # not signed: ignored, the body is hashed
    unsigned = ("host", "x-sdk-date")
    assert signing.payload_hash(b"data", octets, unsigned) == hashlib.sha256(b"data").hexdigest()
    # empty body: the hash of nothing
    assert signing.payload_hash(b"", octets, signed) == signing.EMPTY_SHA256
    json_ct = [(b"content-type", b"application/json;charset=utf-8"),
               (b"x-sdk-content-sha256", b"UNSIGNED-PAYLOAD")]
    with pytest.raises(signing.SignatureError, match="UNSIGNED-PAYLOAD"):
        signing.payload_hash(b"{}", json_ct, signed)
    declared = [(b"content-type", b"text/plain"),
                (b"x-sdk-content-sha256", hashlib.sha256(b"x").hexdigest().encode())]
    with pytest.raises(signing.SignatureError, match="UNSIGNED-PAYLOAD"):
        signing.payload_hash(b"data", declared, signed)


# --- Authorization header -----------------------------------------------------------------------------

def test_parse_authorization():
    sig = "ab" * 32
    auth = signing.parse_authorization(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, Signature={sig}")
    assert auth == signing.Authorization("SDK-HMAC-SHA256", AK, ("host", "x-sdk-date"), sig)
    # without spaces after the commas
    assert signing.parse_authorization(
        f"SDK-HMAC-SHA256 Access={AK},SignedHeaders=host;x-sdk-date,Signature={sig}")


@pytest.mark.parametrize(("value", "why"), [
    ("SDK-HMAC-SM3 Access=A, SignedHeaders=host;x-sdk-date, Signature=" + "a" * 64, "not supported"),
    ("SDK-ECDSA-P256-SHA256 Access=A, SignedHeaders=host;x-sdk-date, Signature=" + "a" * 64, "not supported"),
    ("Bearer abc", "unsupported"),
    ("SDK-HMAC-SHA256", "exactly"),
    ("SDK-HMAC-SHA256 Access=A, SignedHeaders=host;x-sdk-date", "exactly"),
    ("SDK-HMAC-SHA256 Access=A, SignedHeaders=host;x-sdk-date, Signature=xyz", "64"),
    ("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=" + "a" * 64, "x-sdk-date"),
    ("SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date;content-type, Signature=" + "a" * 64, "host"),
    ("SDK-HMAC-SHA256 Access=A, SignedHeaders=Host;x-sdk-date, Signature=" + "a" * 64, "lower-case"),
    ("SDK-HMAC-SHA256 Access=A, SignedHeaders=host;host;x-sdk-date, Signature=" + "a" * 64, "twice"),
    ("SDK-HMAC-SHA256 Access=A, Access=B, SignedHeaders=host;x-sdk-date, Signature=" + "a" * 64, "malformed"),
    ("SDK-HMAC-SHA256 Access=A, Extra=1, SignedHeaders=host;x-sdk-date, Signature=" + "a" * 64, "exactly"),
])
def test_bad_authorization_headers(value, why):
    with pytest.raises(signing.SignatureError, match=why):
        signing.parse_authorization(value)


# --- X-Sdk-Date ---------------------------------------------------------------------------------------

def test_sdk_date_window():
    signing.check_sdk_date(DATE, NOW)
    signing.check_sdk_date(DATE, NOW + 15 * 60)
    signing.check_sdk_date(DATE, NOW - 15 * 60)
    with pytest.raises(signing.SignatureError, match="too old"):
        signing.check_sdk_date(DATE, NOW + 15 * 60 + 1)
    with pytest.raises(signing.SignatureError, match="future"):
        signing.check_sdk_date(DATE, NOW - 15 * 60 - 1)


@pytest.mark.parametrize("value", ["", "2024-01-02T03:04:05Z", "20240102T030405", "20240102T030405z",
                                   "20241302T030405Z", "20240230T030405Z", "20240102T250405Z",
                                   "2024012T0304051Z",
                                   "Tue, 02 Jan 2024 03:04:05 GMT", "20240102T030405Z "])
def test_malformed_sdk_dates(value):
    with pytest.raises(signing.SignatureError):
        signing.parse_sdk_date(value)


def test_prepare_refuses_stale_request_before_any_key_lookup():
    headers = sdk_headers("application/json")
    with pytest.raises(signing.SignatureError, match="too old"):
        signing.prepare(authorization=authorization("a" * 64), method="GET", raw_path=b"/v1/x", raw_query=b"",
                        headers=headers, body=b"", now=NOW + 3600)
