"""The Prometheus metrics of one process (served at ``GET /metrics``, http/metrics.py; by ``ecsd worker
--metrics-port``): every metric, its labels and what to alert on are listed in docs/operations.md.

One :class:`Metrics` per application (its own ``CollectorRegistry``, never the library's global one,
so that several apps in one process do not collide). Exposition is the official client library's;
the values are kept the cheap way:

* HTTP requests and job steps are observed on the event loop into plain lists (:class:`Histograms`:
  one ``bisect`` and two additions, about a microsecond, against several for the library's locked
  ``Histogram.observe``); the request path only ever touches series bound once per route template,
  method and status (never a raw path: label values stay bounded).
* Everything else is read when scraped: the engine's counters (``EngineStats``: the engine imports
  nothing of Prometheus), the jobs this process accepted (``Store.accepted_jobs``, counted on
  commit), the SQLAlchemy pool, and the queue (one indexed query, off the event loop).
"""

from __future__ import annotations

import bisect
import contextvars
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ecsd.engine.engine import Engine, queue_state
from ecsd.store.db import Store

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"      # the route label of a request no route matched (404s, slash redirects)
QUEUE_TIMEOUT = 2.0          # seconds a scrape waits for the queue query
# The request being served, for log records (cli/serve.py: --log-format json); set by the middleware below.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("ecsd_request_id", default=None)
_now = time.perf_counter          # module globals: the request path looks up no attributes
_bucket = bisect.bisect_left
_set_request_id = request_id.set


class Histograms:
    """Histograms by label values, as plain lists ``[count per bucket..., +Inf count, sum]``.

    Written by one thread (the event loop); a scrape from another thread (the worker's metrics
    server) copies each list in one C call, and derives the count from the buckets it copied, so
    that ``_count`` always equals the ``+Inf`` bucket."""

    __slots__ = ("bounds", "series")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[tuple[str, ...], list] = {}

    def child(self, labels: tuple[str, ...]) -> list:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * (len(self.bounds) + 1) + [0.0]
        return series

    def observe(self, series: list, value: float) -> None:
        series[bisect.bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def family(self, name: str, doc: str, label_names: list[str]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=label_names)
        les = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        for labels, series in list(self.series.items()):
            values = series[:]
            total, buckets = 0, []
            for le, n in zip(les, values[:-1], strict=True):
                total += n
                buckets.append((le, total))
            fam.add_metric(list(labels), buckets, values[-1])
        return fam


def _labelled(kind: type, name: str, doc: str, label_names: list[str], values: dict) -> Metric:
    """A counter or gauge family from a dict of label value(s) -> number (copied in one C call)."""
    fam = kind(name, doc, labels=label_names)
    for key, value in sorted(values.copy().items()):
        fam.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return fam


def _counter(name: str, doc: str, label_names: list[str], values: dict) -> Metric:
    return _labelled(CounterMetricFamily, name, doc, label_names, values)


class Metrics(Collector):
    """The registry of one application or worker process, and the collector of all its values."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http = Histograms(HTTP_BUCKETS)
        self.steps = Histograms(STEP_BUCKETS)
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.worker = False              # whether this process runs jobs (its engine was started)
        self.queue_inline = False        # True: collect() queries the queue itself (it runs off the loop)
        self._queue: tuple[int, float | None] | None = None
        self.scrape_errors = 0
        self.registry.register(self)
        if process:
            ProcessCollector(registry=self.registry)     # CPU, memory, open files of this process
            PlatformCollector(registry=self.registry)    # python_info

    def attach(self, store: Store, engine: Engine, *, worker: bool, queue_inline: bool = False) -> None:
        """Read this store and engine from now on (the lifespan opens them after the app is built)."""
        self.store = store
        self.engine = engine
        self.worker = worker
        self.queue_inline = queue_inline
        engine.stats.on_step = self.observe_step

    def observe_step(self, job_type: str, step: str, seconds: float) -> None:
        self.steps.observe(self.steps.child((job_type, step)), seconds)

    async def refresh_queue(self) -> None:
        """Query the queue on the store's side thread (the event loop never waits); the next
        :meth:`collect` shows it. A query that fails or times out leaves the gauges out."""
        if self.store is None:
            return
        try:
            self._queue = await self.store.aside(queue_state, QUEUE_TIMEOUT)
        except Exception:  # noqa: BLE001 - a scrape never fails for the database: the gauges are absent
            self._queue = None
            self.scrape_errors += 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        yield self.http.family("ecsd_http_request_duration_seconds",
                               "HTTP requests by route template, method and status: latency (its _count "
                               "counts the requests)", ["route", "method", "status"])
        store, engine = self.store, self.engine
        if store is None or engine is None:
            return
        yield _counter("ecsd_jobs_accepted", "Jobs this process accepted (committed), by type",
                       ["job_type"], store.accepted_jobs)
        yield from self._engine(engine)
        yield from self._pool(store)
        yield from self._queue_gauges(store)
        yield CounterMetricFamily("ecsd_metrics_scrape_errors", "Scrapes whose queue query failed or timed out",
                                  value=self.scrape_errors)

    def _engine(self, engine: Engine) -> Iterator[Metric]:
        stats = engine.stats
        yield GaugeMetricFamily("ecsd_worker_up", "1 if this process runs jobs (its engine is started)",
                                value=1 if self.worker else 0)
        yield _counter("ecsd_jobs_claimed", "Jobs this worker claimed (started or resumed), by type",
                       ["job_type"], stats.claimed_by_type)
        yield _labelled(GaugeMetricFamily, "ecsd_jobs_running", "Jobs running in this worker now, by type",
                        ["job_type"], stats.running)
        yield _counter("ecsd_jobs_finished", "Jobs this worker finished, by type and status (SUCCESS, FAIL)",
                       ["job_type", "status"], stats.finished)
        yield self.steps.family("ecsd_job_step_duration_seconds",
                                "Job steps: act (driver work) and checkpoint, by job type and step",
                                ["job_type", "step"])
        yield _counter("ecsd_job_lease_takeovers", "Jobs claimed from a worker whose lease had expired, by type",
                       ["job_type"], stats.takeovers)
        yield CounterMetricFamily("ecsd_job_leases_lost",
                                  "Jobs this worker stopped because another took them over (lease lost)",
                                  value=stats.lost_leases)
        yield _counter("ecsd_driver_errors", "Driver work of a step that raised, by job type, step and kind "
                       "(failed: the driver refused or failed; crashed: an unexpected exception)",
                       ["job_type", "step", "kind"], stats.act_errors)

    def _pool(self, store: Store) -> Iterator[Metric]:
        pool = store.pool_state()
        for key, doc in (("size", "Database connections the pool keeps open (configured)"),
                         ("checked_out", "Database connections in use now"),
                         ("overflow", "Database connections open beyond the pool size now"),
                         ("max", "Database connections the pool may open at most"),
                         ("waiting", "Transactions waiting for a database thread now (PostgreSQL)")):
            yield GaugeMetricFamily(f"ecsd_db_pool_{key}", doc, value=pool[key])

    def _queue_gauges(self, store: Store) -> Iterator[Metric]:
        if self.queue_inline:
            try:
                self._queue = store.read_sync(queue_state)
            except Exception:  # noqa: BLE001 - as in refresh_queue
                self._queue = None
                self.scrape_errors += 1
        if self._queue is None:
            return
        depth, oldest = self._queue
        yield GaugeMetricFamily("ecsd_jobs_queued", "Jobs waiting to be claimed by any worker (INIT)", value=depth)
        yield GaugeMetricFamily("ecsd_jobs_oldest_queued_age_seconds",
                                "Age of the oldest job waiting to be claimed (0 when none waits)",
                                value=0.0 if oldest is None else max(0.0, time.time() - oldest))


class HttpObserver:
    """Records one HTTP request: its latency and status, by the matched route's template. Called by
    http/core.py's RequestIdMiddleware (the one middleware layer, whose send wrapper already sees the
    status) after each request, so that the metrics add no layer of their own.

    Per request: one dict lookup of a series bound once per (route, method, status), one bisect, two
    list updates. The route is the router's match (``scope["route"]``, http/routing.py); a request no
    route matched counts under ``unmatched``."""

    def __init__(self, metrics: Metrics) -> None:
        self.hist = metrics.http
        self.bound: dict[tuple[int, str, int], list] = {}

    def __call__(self, scope: dict, status: int, took: float) -> None:
        route = scope.get("route")
        key = (id(route), scope["method"], status)     # routes live as long as the app
        series = self.bound.get(key)
        if series is None:
            series = self._bind(key, route)
        series[_bucket(HTTP_BUCKETS, took)] += 1
        series[-1] += took

    def _bind(self, key: tuple[int, str, int], route: Any) -> list:
        _, method, status = key
        template = getattr(route, "path", None) or UNMATCHED
        series = self.hist.child((template, method if method in METHODS else "other", str(status)))
        if method in METHODS:       # an unknown method is not kept as a key: they are unbounded
            self.bound[key] = series
        return series
