"""One real ``ecsd serve`` process for the client-library tests (openstacksdk, the openstack CLI).

Import the fixture into a test module with ``from tests.sdk_server import ecsd_server  # noqa: F401``.
It yields an :class:`EcsdServer`: the base URL and the demo credentials the server wrote on its
first start. The process runs on a free 127.0.0.1 port, with a temporary data directory and
``ECSD_SIM_DELAY=0``; at the end it is stopped through its own PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx
import pytest

START_TIMEOUT = 20.0


@dataclass
class EcsdServer:
    base_url: str
    creds: dict
    data_dir: str
    proc: subprocess.Popen = field(repr=False)
    log_path: str = field(repr=False)

    def __iter__(self):
        """Unpacks as ``base_url, creds``."""
        return iter((self.base_url, self.creds))

    def log(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End the process this module started, and only it."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_ecsd(data_dir: str, env: dict[str, str] | None = None) -> EcsdServer:
    """Start ``ecsd serve`` and wait until it answers and has written credentials.json."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = os.path.join(data_dir, "serve.log")
    os.makedirs(data_dir, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecsd", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", data_dir, "--fault-images"],  # the fault images: failure paths
            env={**os.environ, "ECSD_SIM_DELAY": "0", **(env or {})},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    creds_path = os.path.join(data_dir, "credentials.json")
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                with open(log_path, errors="replace") as fh:
                    raise RuntimeError(f"ecsd exited with {proc.returncode}:\n{fh.read()}")
            try:
                if httpx.get(base + "/", timeout=0.5).status_code == 200 and os.path.exists(creds_path):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ecsd did not answer on {base} within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        with open(creds_path) as fh:
            creds = json.load(fh)
    except BaseException:
        _stop(proc)
        raise
    return EcsdServer(base, creds, data_dir, proc, log_path)


@pytest.fixture(scope="module")
def ecsd_server():
    """A running ecsd for the whole test module; yields an :class:`EcsdServer` (``base_url, creds``)."""
    with tempfile.TemporaryDirectory(prefix="ecsd-sdk-") as tmp:
        server = start_ecsd(os.path.join(tmp, "data"))
        try:
            yield server
        finally:
            _stop(server.proc)
