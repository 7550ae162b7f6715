"""Secrets at rest: what a guest is given (admin passwords, user data) is stored sealed.

A sealed value is ``sealed:`` followed by a Fernet token made with the installation's secret key
(the one that encrypts access keys: ``ECSD_SECRET_KEY`` or ``DATA_DIR/secret.key``,
domain/access_keys.py). What is sealed (docs/security.md, "What is stored and how"):

* a job's ``admin_pass`` and ``user_data`` parameters, from acceptance until the job ends, when
  they are deleted (``changeos.scrub_secrets``);
* a server's ``user_data``, which the API shows back to the project (``OS-EXT-SRV-ATTR:user_data``),
  for the server's life; it is deleted with the server.

:func:`configure` is called once per process at start-up (``app.prepare_store``), before any job
runs. A value stored before sealing existed (no prefix) is read as it is, and sealed at the next
start-up (:func:`seal_stored`).
"""

from __future__ import annotations

import orjson
from cryptography.fernet import Fernet
from sqlalchemy import and_, not_, select
from sqlalchemy.engine import Connection

from ecsd.domain.states import JOB_IN_FLIGHT
from ecsd.store.schema import jobs, servers, settings

PREFIX = "sealed:"
_box: list[Fernet] = []


def configure(box: Fernet) -> None:
    _box[:] = [box]


def _fernet() -> Fernet:
    if not _box:
        raise RuntimeError("sealing.configure() was not called: no secret key to seal guest secrets with")
    return _box[0]


def seal(value: str | None) -> str | None:
    if value is None or value.startswith(PREFIX):
        return value
    return PREFIX + _fernet().encrypt(value.encode()).decode("ascii")


def unseal(value: str | None) -> str | None:
    if value is None or not value.startswith(PREFIX):
        return value
    return _fernet().decrypt(value[len(PREFIX):].encode("ascii")).decode()


_SECRET_PARAMS = ("admin_pass", "user_data")


_DONE = "guest_secrets_sealed"     # settings key: seal_stored ran once on this database


def seal_stored(conn: Connection) -> int:
    """Seal what an older version stored in the clear: servers' user data and the secrets of jobs that
    have not ended (once per database). Returns how many rows changed."""
    if conn.execute(select(settings.c.key).where(settings.c.key == _DONE)).first() is not None:
        return 0
    conn.execute(settings.insert().values(key=_DONE, value="1"))
    changed = 0
    rows = conn.execute(select(servers.c.id, servers.c.user_data).where(and_(
        servers.c.user_data.is_not(None), not_(servers.c.user_data.startswith(PREFIX))))).all()
    for row in rows:
        conn.execute(servers.update().where(servers.c.id == row.id).values(user_data=seal(row.user_data)))
        changed += 1
    for row in conn.execute(select(jobs.c.job_id, jobs.c.params).where(and_(
            jobs.c.status.in_(JOB_IN_FLIGHT), jobs.c.params.contains('"admin_pass"')))).all():
        params = orjson.loads(row.params)
        sealed = {k: seal(v) if k in _SECRET_PARAMS and isinstance(params.get(k), str) else v
                  for k, v in params.items()}
        if sealed != params:
            conn.execute(jobs.update().where(jobs.c.job_id == row.job_id).values(params=orjson.dumps(sealed).decode()))
            changed += 1
    return changed
