"""Power-state sync: a server whose machine stops on its own becomes SHUTOFF, and can be started again."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from ecsd.app import create_app
from tests.support import Api

BOTH_DATABASES = True

ACTION = "/v1/{pid}/cloudservers/action"


@pytest.fixture
def fast_sync(settings, creds):
    settings.power_sync_interval = 0.05
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield Api(c, creds), c.app.state.services.driver


def _status_becomes(api: Api, server_id: str, status: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        server = api.server(server_id)
        if server["status"] == status or time.monotonic() > deadline:
            return server
        time.sleep(0.05)


def test_a_server_whose_machine_stops_becomes_shutoff_and_starts_again(fast_sync):
    api, driver = fast_sync
    gone, alive = api.create_servers(count=2)
    driver.power_off(gone)
    server = _status_becomes(api, gone, "SHUTOFF")
    assert (server["status"], server["OS-EXT-STS:vm_state"], server["OS-EXT-STS:power_state"],
            server["OS-EXT-STS:task_state"]) == ("SHUTOFF", "stopped", 4, None)
    assert api.server(alive)["status"] == "ACTIVE"
    r = api.post(ACTION, {"os-start": {"servers": [{"id": gone}]}})
    assert r.status_code == 200, r.text
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    time.sleep(0.3)   # several sweeps: the started server is no longer reported dead
    assert api.server(gone)["status"] == "ACTIVE"


def test_a_server_with_an_operation_in_flight_is_left_to_it(fast_sync, settings):
    api, driver = fast_sync
    (server_id,) = api.create_servers()
    driver.hold()
    try:
        r = api.post(ACTION, {"os-stop": {"servers": [{"id": server_id}]}})
        assert r.status_code == 200, r.text
        driver.power_off(server_id)
        time.sleep(0.3)
        server = api.server(server_id)
        assert (server["OS-EXT-STS:vm_state"], server["OS-EXT-STS:task_state"]) == ("active", "powering-off")
    finally:
        driver.release()
    assert api.wait_job(r.json()["job_id"])["status"] == "SUCCESS"
    assert api.server(server_id)["status"] == "SHUTOFF"


def test_sweeps_off_leave_the_record_alone(settings, creds):
    settings.power_sync_interval = 0
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        api = Api(c, creds)
        (server_id,) = api.create_servers()
        c.app.state.services.driver.power_off(server_id)
        time.sleep(0.3)
        assert api.server(server_id)["status"] == "ACTIVE"
