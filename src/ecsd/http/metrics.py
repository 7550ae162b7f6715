"""The metrics endpoint for Prometheus (no authentication, like the health endpoints).

    GET /metrics   this process's metrics in the Prometheus text format (ecsd/metrics.py; every
                   metric, its labels and what to alert on: docs/operations.md "Metrics")

The queue gauges need one indexed query: it runs on the store's side thread with a deadline
(Store.aside), so a scrape never makes the event loop wait for the database. The text itself is
built on a thread too (tens of milliseconds for a few hundred series; the values are copied in
single C calls, ecsd/metrics.py), so that requests go on meanwhile.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.http.core import documented


@documented(ok=200)
async def metrics_endpoint(request: Request) -> Response:
    metrics = request.app.state.metrics
    await metrics.refresh_queue()
    return Response(await asyncio.to_thread(metrics.exposition), media_type=CONTENT_TYPE_PLAIN_0_0_4)


metrics_endpoint.media_type = CONTENT_TYPE_PLAIN_0_0_4.split(";")[0]    # type: ignore[attr-defined]  (openapi.py)

routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
