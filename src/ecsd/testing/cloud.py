"""``EcsdCloud``: one ecsd process for a test session, and its emulator controls, over HTTP only.

The process runs ``ecsd serve`` with the simulated driver on a free loopback port, in a data
directory of its own (removed at the end), with no step delay unless asked. Everything the tests
change goes through the public API or the controls under ``/_ecsd/``; this module imports nothing
of ecsd's domain, so it drives an ecsd of the same version the way any other language would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Self

import httpx

TOKEN_HEADER = "X-Ecsd-Operator-Token"


class EcsdError(AssertionError):
    """A control call failed: the status and the ECS error body."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EcsdCloud:
    """An isolated ecsd. Attributes: ``endpoint``, ``auth_url``, ``region``, ``project_id``,
    ``project_name``, ``domain_name``, ``user_name``, ``user_id``, ``password``, ``ak``, ``sk``,
    ``data_dir``, ``credentials_file``, ``operator_token``."""

    def __init__(self, *, step_delay: float = 0.0, seed: str | None = None, fault_images: bool = False,
                 data_dir: str | None = None, extra_env: dict[str, str] | None = None,
                 start_timeout: float = 60.0) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="ecsd-cloud-")
        self.credentials_file = os.path.join(self.data_dir, "credentials.json")
        self.step_delay = step_delay
        self._proc: subprocess.Popen | None = None
        self._http: httpx.Client | None = None
        self._log_path = os.path.join(self.data_dir, "ecsd.log")
        env = {**os.environ, "ECSD_SIM_DELAY": str(step_delay), **(extra_env or {})}
        for name in ("ECSD_DATABASE_URL", "ECSD_DATA_DIR", "ECSD_SEED", "ECSD_EMULATOR", "ECSD_OPERATOR_TOKEN",
                     "ECSD_SECRET_KEY"):
            if name not in (extra_env or {}):
                env.pop(name, None)    # the user's own installation must not leak into the test's
        args = [sys.executable, "-m", "ecsd", "serve", "--data-dir", self.data_dir, "--emulator"]
        if seed:
            args += ["--seed", os.path.abspath(seed)]
        if fault_images:
            args.append("--fault-images")
        try:
            self._start(args, env, start_timeout)
        except BaseException:
            self.close()
            raise
        with open(self.credentials_file) as fh:
            creds = json.load(fh)
        self.credentials: dict[str, Any] = creds
        self.endpoint: str = creds["endpoint"]
        self.auth_url: str = creds["auth_url"]
        self.project_id: str = creds["project_id"]
        self.project_name: str = creds["project_name"]
        self.region: str = creds["project_name"]
        self.domain_name: str = creds["domain_name"]
        self.user_name: str = creds["user_name"]
        self.user_id: str = creds["user_id"]
        self.password: str = creds["password"]
        self.ak: str = creds["ak"]
        self.sk: str = creds["sk"]
        self.operator_token: str = creds["operator_token"]
        self.seeded: dict[str, Any] = creds.get("seeded", {})
        self._http = httpx.Client(base_url=self.endpoint + "/_ecsd", timeout=30,
                                  headers={TOKEN_HEADER: self.operator_token})

    # --- the process ------------------------------------------------------------------------------------
    def _start(self, args: list[str], env: dict[str, str], timeout: float) -> None:
        for _attempt in range(3):                # a free port can be taken between choosing and binding it
            port = _free_port()
            with open(self._log_path, "ab") as log:
                self._proc = subprocess.Popen([*args, "--port", str(port)], env=env, stdout=log,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._wait_ready(f"http://127.0.0.1:{port}", timeout):
                return
            if self._proc.poll() is None:
                break                             # running but not answering: not a port clash
        raise RuntimeError(f"ecsd did not start; its log ({self._log_path}):\n{self._log_tail()}")

    def _wait_ready(self, base: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    return True
            time.sleep(0.02)
        return False

    def _log_tail(self, lines: int = 40) -> str:
        try:
            with open(self._log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self) -> None:
        """End the process (SIGTERM, then SIGKILL after 15 s) and remove the data directory."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- control calls ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        assert self._http is not None, "this ecsd was closed"
        resp = self._http.request(method, path, **kw)
        if resp.status_code >= 400:
            raise EcsdError(f"{method} /_ecsd{path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def reset(self) -> None:
        """Back to the state of the first start: no servers, jobs or key pairs but the seed's; faults,
        holds and the request log cleared, the step delay back to the session's."""
        self._call("POST", "/reset")

    def fail_next(self, operation: str, code: str = "Ecs.0226", step: str | None = None,
                  server_id: str | None = None, count: int = 1, reason: str | None = None) -> dict:
        """The next ``count`` jobs of ``operation`` (``changeOS``, ``createServer``, ...; of ``server_id``
        only, if given) fail at ``step`` with ``code``. No step: the step whose own error code is
        ``code``, else the first step."""
        body = {"operation": operation, "code": code, "count": count}
        body.update({k: v for k, v in (("step", step), ("server_id", server_id), ("reason", reason)) if v})
        return self._call("POST", "/faults", json=body)["fault"]

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_step_delay(self, seconds: float) -> None:
        """Seconds the simulated driver spends on each operation (0: instant)."""
        self._call("PUT", "/step-delay", json={"seconds": seconds})

    def hold(self, operation: str | None = None, step: str | None = None) -> dict:
        """Jobs of ``operation`` (every operation if None) wait before ``step`` (their first step if None)
        until :meth:`release`."""
        body = {k: v for k, v in (("operation", operation), ("step", step)) if v is not None}
        return self._call("POST", "/holds", json=body)["hold"]

    def release(self) -> int:
        """End every hold; held jobs go on. Returns how many jobs were waiting."""
        return self._call("DELETE", "/holds")["released"]

    def held_jobs(self) -> list[dict]:
        return self._call("GET", "/holds")["held_jobs"]

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """Wait until at least ``count`` jobs wait at a hold."""
        deadline = time.monotonic() + timeout
        while True:
            held = self.held_jobs()
            if len(held) >= count:
                return held
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(held)} of {count} jobs reached a hold within {timeout} s")
            time.sleep(0.01)

    def requests(self, since: int = 0) -> list[dict]:
        """The API calls answered so far (oldest first): method, path, query, status, request_id,
        duration_ms, body (JSON, secrets masked), seq."""
        return self._call("GET", "/requests", params={"since": since})["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def snapshot(self, name: str) -> dict:
        return self._call("PUT", f"/snapshots/{name}")["snapshot"]

    def restore(self, name: str) -> dict:
        return self._call("POST", f"/snapshots/{name}/restore")["restored"]

    def seed(self, document: dict | str) -> dict:
        """Apply a seed: a dict (as JSON) or the path of a JSON or YAML file. Returns what was made."""
        if isinstance(document, dict):
            return self._call("POST", "/seed", json=document)["seeded"]
        with open(document, "rb") as fh:
            raw = fh.read()
        yaml_file = document.lower().endswith((".yaml", ".yml"))
        return self._call("POST", "/seed", content=raw,
                          headers={"Content-Type": "application/yaml" if yaml_file else "application/json"})["seeded"]

    def power_off(self, server_id: str) -> None:
        """The server's guest stops on its own; the power sync shows it SHUTOFF within seconds."""
        self._call("POST", f"/servers/{server_id}/power-off")
