"""``ecsd job show|wait``, and what every command that starts a job does with it (:func:`finish`).

``GET /v1/{project_id}/jobs/{job_id}`` (querying_task_execution_status.rst): ``status`` INIT,
RUNNING, SUCCESS or FAIL; ``entities.server_id`` for a one-server job, ``entities.sub_jobs`` for a
batch (create, delete, start/stop); ``error_code`` and ``fail_reason`` when it failed.
"""

from __future__ import annotations

from typing import Any

import click

from ecsd.cli.client import output
from ecsd.cli.client.progress import check_success, sub_jobs, wait_for_job
from ecsd.cli.client.session import Session, api_command

DEFAULT_TIMEOUT = 1800.0

timeout_option = click.option("--timeout", type=click.FloatRange(0, min_open=True), default=DEFAULT_TIMEOUT,
                              show_default=True, metavar="SECONDS",
                              help="How long to wait for the job; then exit 5 (the job goes on).")
wait_option = click.option("--wait", is_flag=True,
                           help="Follow the job until it ends: exit 0 on SUCCESS, 1 on FAIL.")


@click.group("job")
def job() -> None:
    """Jobs: what the asynchronous ECS calls return (HTTP API client)."""


def show_job(data: dict[str, Any]) -> None:
    entities = data.get("entities") or {}
    output.fields([
        ("job", data.get("job_id")), ("type", data.get("job_type")), ("status", data.get("status")),
        ("server", entities.get("server_id")), ("begin", data.get("begin_time")), ("end", data.get("end_time")),
        ("error code", data.get("error_code")), ("fail reason", data.get("fail_reason")),
    ])
    subs = sub_jobs(data)
    if subs:
        click.echo()
        output.table(["sub-job", "status", "server", "error code", "fail reason"],
                     [[s.get("job_id"), s.get("status"), (s.get("entities") or {}).get("server_id"),
                       s.get("error_code"), s.get("fail_reason")] for s in subs])


def finish(session: Session, accepted: dict[str, Any], wait: bool, timeout: float, what: str) -> None:
    """After a call that answered ``{"job_id": ...}``: print the answer, or wait and print the ended job.

    ``-o json``: the API's answer without --wait, the ended job's body with it. A job that FAILs ends
    the command with exit 1 (the job is printed first, its code and reason go to stderr).
    """
    job_id = accepted["job_id"]
    if not wait:
        if session.json:
            output.emit_json(accepted)
        else:
            click.echo(f"{what}: job {job_id} accepted.")
            for sid in accepted.get("serverIds") or ():
                click.echo(f"  server {sid}")
            click.echo(f"Follow it with: ecsd job wait {job_id}")
        return
    ended = wait_for_job(session.client, job_id, timeout=timeout)
    if session.json:
        output.emit_json(ended)
    else:
        show_job(ended)
    check_success(ended)


@api_command(job, "show")
@click.argument("job_id", metavar="JOB")
def job_show(session: Session, job_id: str) -> None:
    """Show a job and its sub-jobs (exit 0 whatever its status)."""
    data = session.client.get(f"/v1/{session.project_id}/jobs/{job_id}")
    if session.json:
        output.emit_json(data)
    else:
        show_job(data)


@api_command(job, "wait")
@click.argument("job_id", metavar="JOB")
@timeout_option
def job_wait(session: Session, job_id: str, timeout: float) -> None:
    """Wait until a job ends, showing its steps: exit 0 on SUCCESS, 1 on FAIL, 5 on timeout."""
    finish(session, {"job_id": job_id}, True, timeout, "job")
