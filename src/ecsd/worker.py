"""``ecsd worker``: a process that only runs jobs (no HTTP), for scale-out beside ``ecsd serve --no-worker``.

It claims jobs from the shared database like the in-process worker of ``ecsd serve``; on SIGTERM or
SIGINT it stops claiming, lets running steps finish for a grace period and hands the rest back.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from ecsd.app import make_driver, prepare_store, settle_heap
from ecsd.config import Settings
from ecsd.domain import power_sync
from ecsd.domain.jobtypes import all_job_types
from ecsd.engine.engine import Engine

log = logging.getLogger("ecsd.worker")


async def run(settings: Settings, grace: float = 10.0) -> None:
    settings.seed_demo = False  # the API process seeds a fresh install and writes its credentials
    store, _ = prepare_store(settings)
    engine = Engine(store, make_driver(settings), all_job_types(), owner=settings.worker_name,
                    lease_seconds=settings.lease_seconds, max_inflight=settings.max_inflight_jobs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await engine.driver.recover()     # what a killed process left on the host, before its jobs resume
    await engine.start()
    watcher = asyncio.gather(power_sync.watch(store, engine.driver, settings.power_sync_interval),
                             store.keep_wal_short(settings.wal_checkpoint_interval))
    settle_heap()
    log.warning("worker %s started (lease %.0f s)", settings.worker_name, settings.lease_seconds)
    try:
        await stop.wait()
    finally:
        log.warning("worker %s stopping: %d job(s) in flight", settings.worker_name, engine.inflight)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await engine.stop(grace)
        store.close()
