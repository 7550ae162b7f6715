"""Every job type the engine can run, collected from the domain modules that define them."""

from __future__ import annotations

from ecsd.engine.engine import JobType


def all_job_types() -> dict[str, JobType]:
    from ecsd.domain import attachments, batch, changeos, lifecycle, nic_changes, resize, volumes

    types: dict[str, JobType] = {}
    for module in (changeos, lifecycle, batch, volumes, attachments, nic_changes, resize):
        for jt in module.JOB_TYPES:
            types[jt.name] = jt
    return types
