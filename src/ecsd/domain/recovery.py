"""After a crash: settle servers whose task_state has no live job, as states.AFTER_CRASH_ORPHAN_TASK says,
and disks left in a transitional status by a job that is gone (states.AFTER_CRASH_ORPHAN_VOLUME,
attachments.settle_orphan_volumes).

Normally a server's task_state belongs to an in-flight job that the engine resumes; this only finds
servers left behind by a job that ended without releasing them (or a database edited by hand).
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain import attachments, clock
from ecsd.domain import states as st
from ecsd.store.schema import jobs, servers


def settle_orphans(conn: Connection) -> int:
    live = select(jobs.c.job_id).where(and_(jobs.c.job_id == servers.c.job_id, jobs.c.status.in_(st.JOB_IN_FLIGHT)))
    rows = conn.execute(select(servers.c.id, servers.c.vm_state, servers.c.task_state).where(and_(
        servers.c.deleted.is_(False),
        or_(servers.c.task_state.is_not(None), servers.c.job_id.is_not(None)),
        ~live.exists()))).all()
    for row in rows:
        vm_state, task_state = st.AFTER_CRASH_ORPHAN_TASK.get(row.task_state, (None, None))
        values = {"task_state": task_state, "job_id": None, "updated_at": clock.now()}
        if vm_state is not None:
            values["vm_state"] = vm_state
            if vm_state == st.ERROR:
                values["power_state"] = st.POWER_NOSTATE
                if row.task_state in (st.REBUILDING, st.REBUILD_BDM, st.REBUILD_SPAWNING):
                    values["failed_op"] = st.CHANGE_OS   # a failed OS change may be retried
        conn.execute(servers.update().where(servers.c.id == row.id).values(**values))
    return len(rows) + attachments.settle_orphan_volumes(conn)
