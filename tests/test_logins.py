"""Password logins under attack: lockout per user, throttling per address, one answer for every failure,
and hashing that never holds up other requests (domain/logins.py, domain/passwords.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from ecsd.app import create_app
from ecsd.cli import main
from ecsd.domain import passwords
from ecsd.domain.logins import LoginPolicy
from ecsd.domain.passwords import PasswordHasher
from tests.support import assert_error, token_request

BOTH_DATABASES = True


def _client(settings, **policy):
    settings.login_policy = LoginPolicy(**{"failure_floor": 0.0, **policy})
    return TestClient(create_app(settings), raise_server_exceptions=False)


def _login(client, creds, password=None, user=None):
    body = token_request(creds, password)
    if user is not None:
        body["auth"]["identity"]["password"]["user"]["name"] = user
    return client.post("/v3/auth/tokens", json=body)


def _body(resp) -> dict:
    return resp.json()


def _unlock(settings, creds) -> str:
    args = ["users", "unlock", creds["user_name"], "--domain", creds["domain_name"], "--data-dir", settings.data_dir]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    env = {"ECSD_SECRET_KEY": settings.secret_key} if settings.secret_key else {}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_wrong_passwords_lock_the_user_and_the_right_one_then_fails(settings, creds):
    with _client(settings, attempts=3) as client:
        for _ in range(3):
            assert_error(_login(client, creds, "wrong-password-1"), 401, "Common.0013")
        locked = _login(client, creds)
        assert_error(locked, 401, "Common.0013")
        assert "X-Subject-Token" not in locked.headers


def test_the_unlock_command_lets_a_locked_user_in_again(settings, creds):
    with _client(settings, attempts=2) as client:
        for _ in range(2):
            _login(client, creds, "wrong-password-1")
        assert _login(client, creds).status_code == 401
        assert "Unlocked user" in _unlock(settings, creds)
        assert _login(client, creds).status_code == 201
        assert "was not locked" in _unlock(settings, creds)


def test_a_lock_ends_by_itself_after_its_duration(settings, creds):
    with _client(settings, attempts=2, duration=1.0) as client:
        for _ in range(2):
            _login(client, creds, "wrong-password-1")
        assert _login(client, creds).status_code == 401
        time.sleep(1.1)
        assert _login(client, creds).status_code == 201


def test_a_successful_login_clears_the_count(settings, creds):
    with _client(settings, attempts=3) as client:
        for _ in range(2):
            _login(client, creds, "wrong-password-1")
        assert _login(client, creds).status_code == 201
        for _ in range(2):
            _login(client, creds, "wrong-password-1")
        assert _login(client, creds).status_code == 201


def test_failures_outside_the_window_do_not_add_up(settings, creds):
    with _client(settings, attempts=2, window=0.5) as client:
        _login(client, creds, "wrong-password-1")
        time.sleep(0.6)
        _login(client, creds, "wrong-password-1")
        assert _login(client, creds).status_code == 201


def test_one_address_is_throttled_with_retry_after_before_any_password_is_checked(settings, creds):
    with _client(settings, attempts=0, address_limit=4, address_window=60) as client:
        for i in range(4):      # unknown users: the per-user lockout cannot be what stops them
            assert_error(_login(client, creds, user=f"nobody-{i}"), 401, "Common.0013")
        throttled = _login(client, creds)      # even the right password
        assert_error(throttled, 429, "APIGW.0308")
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert throttled.headers["X-Request-Id"]


def test_every_failure_gets_the_same_answer(settings, creds):
    """Unknown user, wrong password, locked user: the same status and body (no enumeration)."""
    with _client(settings, attempts=2) as client:
        unknown = _login(client, creds, user="no-such-user")
        wrong = _login(client, creds, "wrong-password-1")
        _login(client, creds, "wrong-password-1")
        locked = _login(client, creds)
        assert unknown.status_code == wrong.status_code == locked.status_code == 401
        assert _body(unknown) == _body(wrong) == _body(locked)


def test_a_failure_is_answered_no_sooner_than_the_floor(settings, creds):
    """Known and unknown users alike wait out the floor, which hides the cost of counting a failure."""
    with _client(settings, failure_floor=0.3) as client:
        for user in (None, "no-such-user"):
            started = time.monotonic()
            assert _login(client, creds, "wrong-password-1", user=user).status_code == 401
            assert time.monotonic() - started >= 0.3


def test_a_login_in_progress_does_not_hold_up_other_requests(settings, creds, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = passwords.verify_password

    def slow_verify(password, stored):
        entered.set()
        release.wait(30)
        return real(password, stored)

    with _client(settings) as client:
        token = _login(client, creds).headers["X-Subject-Token"]
        monkeypatch.setattr(passwords, "verify_password", slow_verify)
        results: dict[str, int] = {}
        login = threading.Thread(target=lambda: results.update(login=_login(client, creds).status_code))
        login.start()
        try:
            assert entered.wait(10), "the login never reached the password check"
            other = threading.Thread(target=lambda: results.update(
                health=client.get("/healthz").status_code,
                flavors=client.get(f"/v1/{creds['project_id']}/cloudservers/flavors",
                                   headers={"X-Auth-Token": token}).status_code))
            other.start()
            other.join(10)
            assert results.get("health") == 200 and results.get("flavors") == 200, \
                "requests waited for the login's password hash"
        finally:
            release.set()
            login.join(30)
        assert results["login"] == 201


def test_the_hash_queue_is_bounded():
    gate = threading.Event()

    async def scenario():
        hasher = PasswordHasher(threads=1, queue=1)
        hasher_verify = passwords.verify_password
        try:
            passwords.verify_password = lambda p, s: gate.wait(10) or True
            first = asyncio.ensure_future(hasher.verify("a", "b"))
            second = asyncio.ensure_future(hasher.verify("a", "b"))
            await asyncio.sleep(0.05)
            with pytest.raises(Exception) as refused:
                await hasher.verify("a", "b")
            assert getattr(refused.value, "status", None) == 429
            gate.set()
            assert await first and await second
        finally:
            passwords.verify_password = hasher_verify
            hasher.close()

    asyncio.run(scenario())
