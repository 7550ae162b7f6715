"""Idempotent creates: ``X-Client-Token`` (clients.md: the SDK's optional idempotency token).

A token names one create request of a project. The first request with it reserves the token in its
own transaction and records the job and server ids it made; a repeat of the same request (same
fingerprint) answers with those, creating nothing; the same token with a different request is
refused with Ecs.0005. Two concurrent requests with one token meet on the table's primary key: the
second waits for the first and then answers with its result.
"""

from __future__ import annotations

import hashlib
import re

import orjson
from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ecsd.domain import clock
from ecsd.domain.errors import invalid
from ecsd.store.schema import client_tokens

_TOKEN = re.compile(r"[\x21-\x7e]{1,64}")    # printable ASCII without spaces, at most 64 characters

_FIND = select(client_tokens.c.digest, client_tokens.c.job_id, client_tokens.c.server_ids).where(and_(
    client_tokens.c.project_id == bindparam("p"), client_tokens.c.token == bindparam("t")))


def check_token(token: str) -> str:
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise invalid("X-Client-Token must be 1 to 64 printable characters without spaces")
    return token


def fingerprint(request: object) -> str:
    """What makes two requests the same request: their parsed content, whatever its JSON spacing."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _answer(row, digest: str, token: str) -> tuple[str, list[str]]:
    if row.digest != digest:
        raise invalid(f"X-Client-Token {token} was already used for a different request")
    return row.job_id, orjson.loads(row.server_ids)


def reserve(conn: Connection, project_id: str, token: str, digest: str) -> tuple[str, list[str]] | None:
    """The earlier answer to this request if the token was used, else None with the token reserved
    in the caller's transaction (call :func:`record` in it once the request is accepted)."""
    row = conn.execute(_FIND, {"p": project_id, "t": token}).first()
    if row is not None:
        return _answer(row, digest, token)
    try:
        with conn.begin_nested():
            conn.execute(client_tokens.insert().values(project_id=project_id, token=token, digest=digest,
                                                       created_at=clock.now()))
    except IntegrityError:
        # Another transaction took the token and has committed (the insert waited for it).
        row = conn.execute(_FIND, {"p": project_id, "t": token}).first()
        if row is None or row.job_id is None:
            raise invalid(f"X-Client-Token {token} is in use by a request still being accepted") from None
        return _answer(row, digest, token)
    return None


def record(conn: Connection, project_id: str, token: str, job_id: str, server_ids: list[str]) -> None:
    conn.execute(client_tokens.update().where(and_(client_tokens.c.project_id == project_id,
                                                   client_tokens.c.token == token))
                 .values(job_id=job_id, server_ids=orjson.dumps(server_ids).decode()))
