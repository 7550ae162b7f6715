"""Settings: one dataclass, filled from command-line flags and ``ECSD_*`` environment variables."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from ecsd.domain.logins import LoginPolicy
from ecsd.envvars import flag, number


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ecsd")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = field(default_factory=default_data_dir)
    database_url: str | None = None          # None: SQLite file in data_dir
    driver: str = "simulated"
    # Seconds the simulated driver spends on each step (ECSD_SIM_DELAY). About 0.3 s per step makes
    # a change OS take 1-3 s, so that polling clients see RUNNING as they would on the cloud.
    sim_delay: float = field(default_factory=lambda: number("ECSD_SIM_DELAY", 0.3))
    run_worker: bool = True
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    lease_seconds: float = field(default_factory=lambda: number("ECSD_LEASE_SECONDS", 15.0))
    max_inflight_jobs: int = 10000
    # Seconds between power-state sweeps (ECSD_POWER_SYNC_INTERVAL): servers whose machine stopped on
    # its own become SHUTOFF (domain/power_sync.py). 0 turns the sweep off.
    power_sync_interval: float = field(default_factory=lambda: number("ECSD_POWER_SYNC_INTERVAL", 10.0))
    # Seconds between WAL checkpoints that truncate SQLite's WAL (ECSD_WAL_CHECKPOINT_INTERVAL; 0: off),
    # so that overwritten content (a finished job's secrets) leaves the files (docs/security.md).
    wal_checkpoint_interval: float = field(default_factory=lambda: number("ECSD_WAL_CHECKPOINT_INTERVAL", 30.0))
    token_ttl: float = 24 * 3600.0
    # Failed-login throttling per user and per client address (ECSD_LOCKOUT_*, ECSD_LOGIN_*; domain/logins.py).
    login_policy: LoginPolicy = field(default_factory=LoginPolicy.from_env)
    # Threads that hash passwords off the event loop (ECSD_PASSWORD_HASH_THREADS; 0: half the cores, 1-4).
    password_hash_threads: int = field(default_factory=lambda: number("ECSD_PASSWORD_HASH_THREADS", 0, int))
    max_body_bytes: int = 256 * 1024
    # The URL this service tells clients to use (token catalog). None: http://host:port
    public_url: str | None = None
    region: str = "eu-de"
    seed_demo: bool = True
    # The two fault images in the public catalogue (ECSD_FAULT_IMAGES; domain/seed.py: FAULT_IMAGES).
    fault_images: bool = field(default_factory=lambda: flag("ECSD_FAULT_IMAGES"))
    # A seed file (JSON or YAML, emulator/seedfile.py) applied on the first start (ECSD_SEED).
    seed_file: str | None = field(default_factory=lambda: os.environ.get("ECSD_SEED") or None)
    # The emulator controls under /_ecsd/ (http/emulator.py): with the simulated driver only
    # (ECSD_EMULATOR=0 turns them off), for the operator token only.
    emulator: bool = field(default_factory=lambda: flag("ECSD_EMULATOR", True))
    # The operator token (ECSD_OPERATOR_TOKEN). None: derived from the secret key, so that every
    # process sharing one database and key agrees (emulator/controls.py: operator_token).
    operator_token: str | None = field(default_factory=lambda: os.environ.get("ECSD_OPERATOR_TOKEN") or None,
                                       repr=False)
    # The Fernet key that encrypts stored secret access keys (ECSD_SECRET_KEY). None: the key file
    # DATA_DIR/secret.key, created on first need. Processes sharing one PostgreSQL database must all
    # get the same key, so set ECSD_SECRET_KEY there. Kept out of repr() so that it never reaches a log.
    secret_key: str | None = field(default_factory=lambda: os.environ.get("ECSD_SECRET_KEY") or None,
                                   repr=False)

    @property
    def url(self) -> str:
        from ecsd.store.db import sqlite_url

        return self.database_url or sqlite_url(self.data_dir)

    @property
    def emulator_enabled(self) -> bool:
        return self.emulator and self.driver == "simulated"

    @property
    def secret_key_file(self) -> str:
        return os.path.join(self.data_dir, "secret.key")

    @property
    def endpoint(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"
