"""Waiting for a job: poll ``GET /v1/{project_id}/jobs/{job_id}`` and show how it gets on.

The job body says only INIT / RUNNING / SUCCESS / FAIL (and, for a batch job, its sub-jobs). The steps
of a one-server job show on the server instead, as its ``OS-EXT-STS:task_state`` (``powering-off``,
``rebuilding``, ``rebuild_block_device_mapping``, ``rebuild_spawning`` for a change OS;
``scheduling``, ``block_device_mapping``, ``spawning`` for a create), so while such a job runs its
server is read along with it. A batch job with several servers shows how many sub-jobs have ended.

The display goes to stderr, never to stdout. When stdout and stderr are both terminals it is a live
``rich`` line (a spinner, the step, a bar for batches, the time taken) with one line kept per step;
otherwise there is no animation and no escape code, only the plain step lines, one per change.
Polling is every :data:`POLL_INTERVAL` seconds, after a quicker start (0.1, 0.2, 0.4 s) so that a short
job is not waited for longer than it runs; 429 and 503 answers wait for their ``Retry-After`` (http.Client).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ecsd.cli.client.http import ApiError, Client, ClientError
from ecsd.cli.client.session import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_TIMEOUT

POLL_INTERVAL = 0.5
FIRST_INTERVAL = 0.1
ENDED = ("SUCCESS", "FAIL")

# task_state -> what the step does, in words
STEPS = {
    "scheduling": "scheduling",
    "block_device_mapping": "creating the disks",
    "networking": "connecting the network",
    "spawning": "starting",
    "powering-off": "stopping the server",
    "powering-on": "starting the server",
    "rebuilding": "creating the new system disk",
    "rebuild_block_device_mapping": "swapping the system disk",
    "rebuild_spawning": "starting from the new disk",
    "deleting": "deleting",
    "rebooting": "rebooting",
    "resize_prep": "preparing the resize",
}


class JobFailed(ClientError):
    exit_code = EXIT_JOB_FAILED


class WaitTimeout(ClientError):
    exit_code = EXIT_TIMEOUT


class Interrupted(ClientError):
    exit_code = EXIT_INTERRUPTED


def sub_jobs(job: dict[str, Any]) -> list[dict[str, Any]]:
    return (job.get("entities") or {}).get("sub_jobs") or []


def watched_server(job: dict[str, Any]) -> str | None:
    """The one server whose task_state shows this job's step, if there is exactly one."""
    entities = job.get("entities") or {}
    if entities.get("server_id"):
        return entities["server_id"]
    subs = sub_jobs(job)
    if len(subs) == 1:
        return (subs[0].get("entities") or {}).get("server_id")
    return None


def failure_message(job: dict[str, Any]) -> str:
    """``job ID (type) failed: CODE: reason``, and a line per failed sub-job."""
    lines = [(f"job {job.get('job_id')} ({job.get('job_type')}) failed: "
              f"{job.get('error_code') or '-'}: {job.get('fail_reason') or 'no reason given'}")]
    for sub in sub_jobs(job):
        if sub.get("status") == "FAIL":
            server = (sub.get("entities") or {}).get("server_id") or sub.get("job_id")
            lines.append(f"  server {server}: {sub.get('error_code') or '-'}: {sub.get('fail_reason') or '-'}")
    return "\n".join(lines)


def check_success(job: dict[str, Any]) -> None:
    if job.get("status") == "FAIL":
        raise JobFailed(failure_message(job))


class Display:
    """What the user sees while waiting: :meth:`update` with every poll, :meth:`close` at the end."""

    def __init__(self, job_id: str, animate: bool | None = None) -> None:
        self.job_id = job_id
        self.animate = sys.stdout.isatty() and sys.stderr.isatty() if animate is None else animate
        self.console = Console(stderr=True, force_terminal=self.animate, force_interactive=self.animate,
                               highlight=False, soft_wrap=True)
        self.start = time.monotonic()
        self.last_line: str | None = None
        self.job: dict[str, Any] = {}
        self.task: str | None = None
        self.spinner = Spinner("dots", style="cyan")
        self.live = Live(console=self.console, refresh_per_second=10, transient=True,
                         get_renderable=self._render) if self.animate else None
        if self.live is not None:
            self.live.start()

    def update(self, job: dict[str, Any], server: dict[str, Any] | None) -> None:
        self.job = job
        self.task = server.get("OS-EXT-STS:task_state") if server else None
        line = self._step_line(job, server)
        if line != self.last_line:
            self.last_line = line
            self.console.print(f"{time.monotonic() - self.start:6.1f}s  {line}", markup=False)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()

    def _step_line(self, job: dict[str, Any], server: dict[str, Any] | None) -> str:
        status = job.get("status", "?")
        line = f"{job.get('job_type', 'job')} {status}"
        subs = sub_jobs(job)
        if len(subs) > 1:
            done = sum(1 for s in subs if s.get("status") in ENDED)
            failed = sum(1 for s in subs if s.get("status") == "FAIL")
            line += f"  {done}/{len(subs)} servers done" + (f", {failed} failed" if failed else "")
        if server is not None and status not in ENDED:
            task = server.get("OS-EXT-STS:task_state")
            line += f"  server {server.get('status')}" + (f": {STEPS.get(task, task)}" if task else "")
        return line

    def _render(self) -> Any:
        status = self.job.get("status", "waiting")
        grid = Table.grid(padding=(0, 1))
        row: list[Any] = [self.spinner, Text(f"{self.job.get('job_type', 'job')} {self.job_id[:8]}", style="bold"),
                          Text(status, style="yellow")]
        if self.task:
            row.append(Text(STEPS.get(self.task, self.task)))
        subs = sub_jobs(self.job)
        if len(subs) > 1:
            done = sum(1 for s in subs if s.get("status") in ENDED)
            row += [ProgressBar(total=len(subs), completed=done, width=24), Text(f"{done}/{len(subs)}")]
        row.append(Text(f"{time.monotonic() - self.start:.1f}s", style="dim"))
        grid.add_row(*row)
        return Group(grid)


def wait_for_job(client: Client, job_id: str, *, timeout: float, interval: float = POLL_INTERVAL,
                 animate: bool | None = None) -> dict[str, Any]:
    """The job once it has ended (SUCCESS or FAIL), showing its progress on stderr meanwhile.

    Raises :class:`WaitTimeout` after ``timeout`` seconds and :class:`Interrupted` on Ctrl-C (the
    job goes on either way); FAIL is returned, for the caller to print, then :func:`check_success`.
    """
    display = Display(job_id, animate)
    deadline = time.monotonic() + timeout
    pid = client.project_id
    polls = 0
    try:
        while True:
            job = client.get(f"/v1/{pid}/jobs/{job_id}")
            server = None
            sid = watched_server(job)
            if sid and job.get("status") not in ENDED:
                try:
                    server = client.get(f"/v1/{pid}/cloudservers/{sid}")["server"]
                except ApiError:
                    server = None       # gone already (a delete): the job's status says enough
            display.update(job, server)
            if job.get("status") in ENDED:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} is still {job.get('status')} after {timeout:g} s; it goes on: "
                                  f"`ecsd job wait {job_id}` waits again")
            time.sleep(min(interval, FIRST_INTERVAL * 2 ** polls))
            polls += 1
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting; job {job_id} goes on: `ecsd job wait {job_id}` waits again") from None
    finally:
        display.close()
