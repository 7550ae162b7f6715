"""Fixtures: each test gets its own data directory, copied from one migrated and seeded template."""

from __future__ import annotations

import os
import shutil

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app, prepare_store
from ecsd.config import Settings
from tests.support import Api


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("template"))
    settings = Settings(data_dir=data_dir, sim_delay=0.0)
    store, creds = prepare_store(settings)
    store.close()
    assert creds is not None
    return data_dir, creds


@pytest.fixture
def creds(template):
    return dict(template[1])


@pytest.fixture
def settings(template, tmp_path):
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    shutil.copy(os.path.join(template[0], "ecsd.db"), os.path.join(data_dir, "ecsd.db"))
    return Settings(data_dir=data_dir, sim_delay=0.0, worker_name="test-worker", lease_seconds=5.0)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def api(client, creds):
    return Api(client, creds)


@pytest.fixture
def slow_client(settings):
    """An app whose simulated driver spends 0.05 s per step, so that jobs are observably in flight."""
    settings.sim_delay = 0.05
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def slow_api(slow_client, creds):
    return Api(slow_client, creds)


def add_tenant(client, domain: str, user: str, password: str, project: str) -> dict:
    """A second domain with its own user and project, created in the store as an administrator would."""
    from ecsd.domain import identity

    def run(conn):
        did = identity.create_domain(conn, domain)
        uid = identity.create_user(conn, did, user, password)
        pid = identity.create_project(conn, did, project)
        identity.add_member(conn, uid, pid)
        return {"domain_name": domain, "user_name": user, "password": password, "user_id": uid,
                "project_id": pid, "project_name": project}

    return client.app.state.services.store.run_sync(run)


@pytest.fixture
def other_api(client):
    """Another account (domain, user, project) on the same service."""
    return Api(client, add_tenant(client, "other-domain", "mallory", "Other-Passw0rd", "eu-de_other"))
