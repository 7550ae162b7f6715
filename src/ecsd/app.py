"""Builds the ASGI application: routes, middleware, error handlers, and the lifespan that opens the
store, migrates it, seeds a fresh install and starts the in-process job worker.

The request pipeline, outside in: RequestIdMiddleware (which hands each request's status and latency to
metrics.HttpObserver) -> router -> endpoint() wrapper (authenticate, check project) -> handler (parse ->
domain -> shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json as stdjson
import logging
import os
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ecsd.config import Settings
from ecsd.domain import access_keys, capacity, logins, power_sync, recovery, sealing, seed
from ecsd.domain.errors import EcsError
from ecsd.domain.jobtypes import all_job_types
from ecsd.domain.passwords import PasswordHasher
from ecsd.drivers.simulated import SimulatedDriver
from ecsd.emulator import seedfile
from ecsd.emulator import state as emulator_state
from ecsd.emulator.controls import Controls, operator_token
from ecsd.emulator.requests import RequestLog, RequestLogMiddleware
from ecsd.emulator.service import Emulator
from ecsd.engine.engine import Engine
from ecsd.envvars import number
from ecsd.http import (
    changeos,
    consoles,
    disks,
    emulator,
    flavors,
    health,
    identity,
    images,
    instance_actions,
    jobs,
    keypairs,
    limits,
    metadata,
    metrics,
    monitoring,
    nics,
    nova,
    nova_lifecycle,
    openapi,
    resize,
    server_groups,
    servers,
    tags,
    versions,
    volumes,
    webconsole,
)
from ecsd.http.auth import Authenticator
from ecsd.http.core import (
    RequestIdMiddleware,
    on_client_disconnect,
    on_ecs_error,
    on_http_exception,
    on_store_busy,
    on_unexpected,
)
from ecsd.http.routing import IndexedRouter
from ecsd.metrics import HttpObserver, Metrics
from ecsd.store import migrate
from ecsd.store.db import Store, StoreBusy

log = logging.getLogger("ecsd")


@dataclass
class Services:
    """Everything a handler may reach, built once per process."""

    settings: Settings
    store: Store
    auth: Authenticator
    driver: Any
    engine: Engine
    logins: logins.Logins
    emulator: Emulator | None = None       # the controls under /_ecsd/ (simulated driver only)

    def submitted(self) -> None:
        """Called after a transaction that inserted jobs has committed."""
        self.engine.notify()


def make_driver(settings: Settings) -> Any:
    if settings.driver == "simulated":
        return SimulatedDriver(delay=settings.sim_delay, disk_dir=os.environ.get("ECSD_SIM_DISK_DIR") or None,
                               oplog=os.environ.get("ECSD_SIM_OPLOG") or None,
                               memory_budget_mb=number("ECSD_SIM_MEMORY_BUDGET_MB", None, int))
    if settings.driver == "local":
        from ecsd.drivers.local import make_local_driver

        return make_local_driver(settings)
    raise SystemExit(f"unknown driver {settings.driver!r} (available: simulated, local)")


def prepare_store(settings: Settings) -> tuple[Store, dict | None]:
    """Open, migrate and (first start only) seed the database. Returns the new credentials, if any."""
    if settings.seed_file and settings.driver != "simulated":
        raise SystemExit("a seed file writes servers as if they ran: it needs the simulated driver")
    if settings.database_url is None:
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
        mode = os.stat(settings.data_dir).st_mode & 0o777
        if mode & 0o077:
            log.warning("the data directory %s can be read by other users (mode %o): it holds the database and "
                        "the secret key; chmod 700 it", settings.data_dir, mode)
    store = Store(settings.url)      # the SQLite files are made 0600 (store/db.py: protect_sqlite_files)
    migrate.upgrade(store.engine)
    with store.tx() as conn:
        settled = recovery.settle_orphans(conn)
    if settled:
        log.warning("settled %d server(s) whose operation had no live job", settled)
    try:
        box = access_keys.secret_box(settings)  # SK encryption key; a bad ECSD_SECRET_KEY stops here
    except access_keys.SecretKeyError as exc:
        store.close()
        raise SystemExit(str(exc)) from None
    sealing.configure(box)       # guest secrets at rest are sealed with the same key (domain/sealing.py)
    creds = None
    with store.tx() as conn:
        resealed = sealing.seal_stored(conn)
        if resealed:
            log.warning("sealed %d stored guest secret(s) that an older version kept in the clear", resealed)
        if not access_keys.box_opens_stored_keys(conn, box):
            log.error("the stored secret access keys cannot be decrypted with %s: AK/SK requests will fail "
                      "until the key they were created with is restored",
                      "ECSD_SECRET_KEY" if settings.secret_key else settings.secret_key_file)
        if settings.seed_demo and not seed.is_seeded(conn):
            creds = seed.seed_demo(conn, settings.region, box, settings.fault_images)
            if settings.seed_file:       # the first start only: its state is what a reset returns to
                creds["seeded"] = seedfile.apply(conn, seedfile.load_file(settings.seed_file), box)
        elif settings.fault_images:
            seed.ensure_fault_images(conn)
        if creds is not None and settings.emulator_enabled:
            emulator_state.keep_initial(conn)      # the first start's state: what POST /_ecsd/reset returns to
    return store, creds


def write_credentials(settings: Settings, creds: dict) -> str:
    path = os.path.join(settings.data_dir, "credentials.json")
    os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        stdjson.dump({**creds, "auth_url": f"{settings.endpoint}/v3", "endpoint": settings.endpoint,
                  **operator_credentials(settings)}, fh, indent=2)
    os.chmod(path, 0o600)
    return path


def make_emulator(settings: Settings, engine: Engine, driver: Any, log: RequestLog | None) -> Emulator | None:
    if not settings.emulator_enabled:
        return None
    if log is None:
        log = RequestLog(1)         # ECSD_REQUEST_LOG_SIZE=0: nothing is ever added to it
    token = settings.operator_token or operator_token(access_keys.raw_secret_key(settings))
    return Emulator(Controls(engine, driver, settings.sim_delay), log, token)


def operator_credentials(settings: Settings) -> dict:
    """What credentials.json adds for the emulator: the operator token (docs/testing-with-ecsd.md)."""
    if not settings.emulator_enabled:
        return {}
    return {"operator_token": settings.operator_token or operator_token(access_keys.raw_secret_key(settings))}


def settle_heap() -> None:
    """Once started: move what start-up allocated (modules, tables, compiled statements) out of the
    collector's sight and collect less often. A full collection over those objects paused the event
    loop for ~10 ms now and then, which was the p99 of short requests; per-request garbage is acyclic
    and freed by reference counting anyway."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        store, creds = prepare_store(settings)
        if creds is not None:
            path = write_credentials(settings, creds)
            log.warning("first start: demo credentials written to %s", path)
        driver = make_driver(settings)
        capacity.configure(store.engine, driver)       # creates and starts admitted by its memory budget
        engine = Engine(store, driver, all_job_types(), owner=settings.worker_name,
                        lease_seconds=settings.lease_seconds, max_inflight=settings.max_inflight_jobs)
        app_metrics.attach(store, engine, worker=settings.run_worker)
        hasher = PasswordHasher(settings.password_hash_threads or None)
        app.state.services = Services(settings, store, Authenticator(store), driver, engine,
                                      logins.Logins(store, settings.login_policy, hasher, settings.token_ttl),
                                      make_emulator(settings, engine, driver, request_log))
        background = [asyncio.create_task(store.keep_wal_short(settings.wal_checkpoint_interval))]
        if settings.run_worker:
            await driver.recover()       # what a killed process left on the host, before its jobs resume
            await engine.start()
            background.append(asyncio.create_task(power_sync.watch(store, driver, settings.power_sync_interval)))
        health.schema_head()          # read the migration scripts now, not in the first readiness probe
        settle_heap()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if settings.run_worker:
                await engine.stop()
            hasher.close()
            store.close()

    # The request log records from the first request (emulator/requests.py); only with the emulator.
    log_size = number("ECSD_REQUEST_LOG_SIZE", 1000, int) if settings.emulator_enabled else 0
    request_log = RequestLog(log_size) if log_size else None       # 0: no request log
    app_metrics = Metrics()          # this app's own registry (GET /metrics)
    routes = []
    # limits before servers: /cloudservers/limits is not a server id
    # server_groups and tags before servers: /cloudservers/os-server-groups and /cloudservers/tags are not ids
    # volumes, disks, nics, resize and consoles before servers too: /cloudservers/nics/{nic_id} is not a server
    for module in (health, versions, identity, images, flavors, keypairs, limits, server_groups, tags, volumes,
                   disks, nics, resize, consoles, servers, nova, metadata, monitoring, changeos, jobs,
                   nova_lifecycle, instance_actions, openapi, metrics, emulator, webconsole):
        routes.extend(module.routes)
    routes.extend(versions.named_routes)     # GET /{api_version}: last, it matches any one-segment path
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        EcsError: on_ecs_error, HTTPException: on_http_exception, ClientDisconnect: on_client_disconnect,
        StoreBusy: on_store_busy, Exception: on_unexpected})
    app.router = IndexedRouter(routes, lifespan=lifespan)    # same routes, fewer regexes tried per request
    app.state.metrics = app_metrics
    if request_log is not None:
        app.add_middleware(RequestLogMiddleware, log=request_log)      # inside: it sees the request id
    # 0: no request metrics (docs/operations.md; the bench's A/B)
    observe = HttpObserver(app_metrics) if number("ECSD_HTTP_METRICS", 1, int) else None
    app.add_middleware(RequestIdMiddleware, observe=observe)
    return app
