"""The job as callers see it: ``GET /v1/{project_id}/jobs/{job_id}`` (querying_task_execution_status.rst)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, bindparam, case, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.domain.errors import EcsError
from ecsd.store.prepared import Prepared
from ecsd.store.schema import jobs

# A disk job (domain/volumes.py) names its disk in the parameters: they are read for those jobs only.
_VOLUME_JOBS = (st.CREATE_VOLUME, st.DELETE_VOLUME)
_COLUMNS = (jobs.c.job_id, jobs.c.job_type, jobs.c.status, jobs.c.server_id, jobs.c.parent_id, jobs.c.runnable,
            jobs.c.begin_time, jobs.c.end_time, jobs.c.error_code, jobs.c.fail_reason,
            case((or_(*(jobs.c.job_type == t for t in _VOLUME_JOBS)), jobs.c.params), else_=None).label("volume_params"))
# EVS' JobEntities / SubJobEntities: what a disk job shows of its parameters.
_VOLUME_ENTITIES = ("volume_id", "volume_type", "size", "name")


def _view(row: dict[str, Any], sub_jobs: list | None) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    if row["server_id"]:
        entities["server_id"] = row["server_id"]
    if row["volume_params"]:
        params = orjson.loads(row["volume_params"])
        entities.update({k: params[k] for k in _VOLUME_ENTITIES if params.get(k) is not None})
    if row["parent_id"] and row["status"] == "FAIL":
        entities["errorcode_message"] = row["fail_reason"]
    if sub_jobs is not None:
        entities["sub_jobs_total"] = len(sub_jobs)
        entities["sub_jobs"] = [_view(s, None) for s in sub_jobs]
    return {"status": row["status"], "entities": entities, "job_id": row["job_id"], "job_type": row["job_type"],
            "begin_time": clock.iso_ms(row["begin_time"]), "end_time": clock.iso_ms(row["end_time"]),
            "error_code": row["error_code"], "fail_reason": row["fail_reason"]}


# Prepared statements (store/prepared.py): this is polled a lot.
_GET = Prepared(select(*_COLUMNS).where(and_(jobs.c.job_id == bindparam("job_id"),
                                            jobs.c.project_id == bindparam("project_id"))))
_SUBS = Prepared(select(*_COLUMNS).where(jobs.c.parent_id == bindparam("job_id"))
                 .order_by(jobs.c.created_at, jobs.c.job_id))


def get_job(conn: Connection, project_id: str, job_id: str) -> dict[str, Any]:
    """The job and, for a batch job, its sub-jobs; unknown or foreign ids are 400 Common.0011."""
    if not clock.is_hex32(job_id):
        raise EcsError("Common.0011", "Invalid job ID.")
    row = _GET.first(conn, {"job_id": job_id, "project_id": project_id})
    if row is None:
        raise EcsError("Common.0011", "Invalid job ID.")
    subs = None
    if not row["runnable"] and row["parent_id"] is None:
        subs = _SUBS.all(conn, {"job_id": job_id})
    return _view(row, subs)
