"""Health endpoints for orchestrators (no authentication).

    GET /healthz   liveness: the process answers (no I/O; also the benchmarks' baseline)
    GET /readyz    readiness: the database answers and the schema is current; 503 otherwise
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.http.core import json


async def healthz(request: Request) -> Response:
    return json({"status": "ok"})


async def readyz(request: Request) -> Response:
    services = request.app.state.services
    checks: dict[str, object] = {}
    ok = True
    started = time.perf_counter()
    try:
        await services.store.ping()
        checks["database"] = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with the reason
        ok = False
        checks["database"] = {"status": "unavailable", "reason": exc.__class__.__name__}
    engine = services.engine
    checks["worker"] = {"status": "running" if services.settings.run_worker else "disabled",
                        "jobs_in_flight": engine.inflight}
    return json({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
