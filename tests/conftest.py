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
