"""Health endpoints for orchestrators (no authentication).

    GET /healthz   liveness: the process answers (no I/O; also the benchmarks' baseline)
    GET /readyz    readiness: the database answers within ``PING_TIMEOUT`` seconds and its schema is
                   the one this code expects; 503 otherwise

Both answer in milliseconds under any load: the database check runs on a thread of its own, in a
transaction that takes no write lock, shared by concurrent probes (store/db.py: Store.ping).
"""

from __future__ import annotations

import functools
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecsd.http.core import documented, json
from ecsd.store import migrate


@functools.cache
def schema_head() -> str:
    """The schema revision this code expects (read once, at start-up: it reads the migration scripts)."""
    return migrate.head_revision()


@documented(ok=200)
async def healthz(request: Request) -> Response:
    return json({"status": "ok"})


@documented(ok=(200, 503))      # 503: not ready, with the same body
async def readyz(request: Request) -> Response:
    services = request.app.state.services
    checks: dict[str, object] = {}
    ok = True
    started = time.perf_counter()
    try:
        revision = await services.store.ping()
    except TimeoutError:
        ok = False
        checks["database"] = {"status": "unavailable", "reason": "timeout"}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with the reason
        ok = False
        checks["database"] = {"status": "unavailable", "reason": exc.__class__.__name__}
    else:
        ms = round((time.perf_counter() - started) * 1000, 2)
        if revision != schema_head():
            ok = False
            checks["database"] = {"status": "unavailable", "reason": "schema", "schema": revision,
                                  "expected": schema_head(), "ms": ms}
        else:
            checks["database"] = {"status": "ok", "schema": revision, "ms": ms}
    engine = services.engine
    checks["worker"] = {"status": "running" if services.settings.run_worker else "disabled",
                        "jobs_in_flight": engine.inflight}
    return json({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
