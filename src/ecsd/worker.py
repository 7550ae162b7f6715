"""``ecsd worker``: a process that only runs jobs (no HTTP), for scale-out beside ``ecsd serve --no-worker``.

It claims jobs from the shared database like the in-process worker of ``ecsd serve``; on SIGTERM or
SIGINT it stops claiming, lets running steps finish for a grace period and hands the rest back.

With ``--metrics-port`` it serves its own metrics (ecsd/metrics.py) at ``/metrics`` on that port: the
client library's small HTTP server on a thread of its own, so that a scrape is answered (and the
queue query runs) off the event loop, even while the loop is busy.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from ecsd.app import make_driver, prepare_store, settle_heap
from ecsd.config import Settings
from ecsd.domain import power_sync
from ecsd.domain.jobtypes import all_job_types
from ecsd.engine.engine import Engine
from ecsd.metrics import Metrics

log = logging.getLogger("ecsd.worker")


def serve_metrics(metrics: Metrics, port: int, host: str) -> Any:
    """``GET /metrics`` of this process on host:port, from a daemon thread; returns the server (to shut down)."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, host, registry=metrics.registry)
    except OSError as exc:
        raise SystemExit(f"cannot serve metrics on {host}:{port}: {exc}") from None
    log.warning("worker metrics at http://%s:%d/metrics", host, port)
    return server


async def run(settings: Settings, grace: float = 10.0, metrics_port: int | None = None,
              metrics_host: str = "127.0.0.1") -> None:
    settings.seed_demo = False  # the API process seeds a fresh install and writes its credentials
    store, _ = prepare_store(settings)
    engine = Engine(store, make_driver(settings), all_job_types(), owner=settings.worker_name,
                    lease_seconds=settings.lease_seconds, max_inflight=settings.max_inflight_jobs)
    metrics_server = None
    if metrics_port is not None:
        metrics = Metrics()
        metrics.attach(store, engine, worker=True, queue_inline=True)   # scraped on the server's thread
        metrics_server = serve_metrics(metrics, metrics_port, metrics_host)
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
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        store.close()
