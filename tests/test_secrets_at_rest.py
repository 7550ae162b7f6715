"""Secrets at rest: private database files, sealed guest secrets, nothing left once a job ends
(domain/sealing.py, store/db.py)."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import stat

from ecsd.app import prepare_store
from ecsd.config import Settings
from tests import support as s
from tests.support import held, sql
from tests.test_changeos import V1, V2, change, stopped_server

PASSWORD = "Zebra-Marker-4711!"
USER_DATA_TEXT = b"#!/bin/sh\necho giraffe-marker-0815\n"
USER_DATA = base64.b64encode(USER_DATA_TEXT).decode()


def _files(settings) -> list[str]:
    base = os.path.join(settings.data_dir, "ecsd.db")
    return [p for p in (base, base + "-wal", base + "-shm") if os.path.exists(p)]


def _checkpoint(settings) -> None:
    """What the server's periodic checkpoint does (store/db.py: keep_wal_short), done now."""
    conn = sqlite3.connect(os.path.join(settings.data_dir, "ecsd.db"))
    try:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        conn.close()


def _on_disk(settings, *needles: bytes) -> list[str]:
    """Which of the database's files hold any of ``needles``."""
    found = []
    for path in _files(settings):
        with open(path, "rb") as fh:
            data = fh.read()
        found += [f"{os.path.basename(path)}: {n[:20]!r}" for n in needles if n in data]
    return found


def test_the_database_files_are_the_owners_alone(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "data"), sim_delay=0.0)
    store, _ = prepare_store(settings)
    try:
        store.run_sync(lambda conn: conn.exec_driver_sql("SELECT 1"))
        files = _files(settings)
        assert any(f.endswith("-wal") for f in files)
        for path in files:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == 0o700
    finally:
        store.close()


def test_files_an_older_version_left_readable_are_made_private(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "data"), sim_delay=0.0)
    store, _ = prepare_store(settings)
    store.close()
    for path in _files(settings):
        os.chmod(path, 0o644)
    store, _ = prepare_store(settings)
    try:
        for path in _files(settings):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    finally:
        store.close()


def test_a_data_directory_others_can_read_gets_a_warning(tmp_path, caplog):
    settings = Settings(data_dir=str(tmp_path / "data"), sim_delay=0.0)
    os.makedirs(settings.data_dir, mode=0o755)
    os.chmod(settings.data_dir, 0o755)
    with caplog.at_level(logging.WARNING, logger="ecsd"):
        store, _ = prepare_store(settings)
        store.close()
    assert any("data directory" in r.getMessage() and "755" in r.getMessage() for r in caplog.records)


def test_guest_secrets_are_sealed_while_the_job_runs_and_gone_after(api, settings):
    sid = stopped_server(api)
    with held(api):
        job_id = change(api, sid, {"imageid": s.DEBIAN, "adminpass": PASSWORD}).json()["job_id"]
        stored = sql(api.client, "SELECT params FROM jobs WHERE job_id = :j", j=job_id).scalar()
        assert PASSWORD not in stored and '"admin_pass":"sealed:' in stored
        assert not _on_disk(settings, PASSWORD.encode())
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    sealed = stored.split('"admin_pass":"', 1)[1].split('"', 1)[0].encode()
    after = sql(api.client, "SELECT params FROM jobs WHERE job_id = :j", j=job_id).scalar()
    assert '"admin_pass":null' in after
    _checkpoint(settings)
    assert not _on_disk(settings, PASSWORD.encode(), sealed), "the secret is still in the database files"


def test_user_data_is_sealed_at_rest_and_shown_as_given(api, settings):
    sid = stopped_server(api)
    with held(api):
        job_id = change(api, sid, {"imageid": s.UBUNTU, "metadata": {"user_data": USER_DATA}}, V2).json()["job_id"]
        assert not _on_disk(settings, USER_DATA.encode(), USER_DATA_TEXT)
    assert api.wait_job(job_id)["status"] == "SUCCESS"
    assert api.server(sid)["OS-EXT-SRV-ATTR:user_data"] == USER_DATA
    stored = sql(api.client, "SELECT user_data FROM servers WHERE id = :i", i=sid).scalar()
    assert stored.startswith("sealed:")
    _checkpoint(settings)
    assert not _on_disk(settings, USER_DATA.encode(), USER_DATA_TEXT)


def test_a_failed_job_leaves_no_secret_either(api, settings):
    sid = stopped_server(api)
    with held(api):
        job_id = change(api, sid, {"imageid": s.FAULTY_BOOT, "adminpass": PASSWORD}, V1).json()["job_id"]
        stored = sql(api.client, "SELECT params FROM jobs WHERE job_id = :j", j=job_id).scalar()
        assert '"admin_pass":"sealed:' in stored
    assert api.wait_job(job_id)["status"] == "FAIL"
    sealed = stored.split('"admin_pass":"', 1)[1].split('"', 1)[0].encode()
    after = sql(api.client, "SELECT params FROM jobs WHERE job_id = :j", j=job_id).scalar()
    assert '"admin_pass":null' in after
    _checkpoint(settings)
    assert not _on_disk(settings, PASSWORD.encode(), sealed)
