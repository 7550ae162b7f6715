"""What must hold after any crash and restart, as functions that return the violations they find.

Used by the crash tests and the soak benchmark (and usable by an operator against a live database):
every check reads the database (and, for the simulated driver, its disk directory and operation log)
and returns a list of human-readable violations; an empty list means the invariant holds.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.engine import Connection

from ecsd.domain import states as st
from ecsd.store.schema import flavors, jobs, projects, servers, volume_attachments, volumes


def jobs_finished(conn: Connection) -> list[str]:
    """Every job reached SUCCESS or FAIL (call once the workers had time to finish)."""
    rows = conn.execute(select(jobs.c.job_id, jobs.c.job_type, jobs.c.status, jobs.c.step, jobs.c.attempts)
                        .where(jobs.c.status.in_(st.JOB_IN_FLIGHT))).all()
    return [f"job {r.job_id} ({r.job_type}) still {r.status} at step {r.step} after {r.attempts} claims"
            for r in rows]


def accepted_jobs_recorded(conn: Connection, accepted: Iterable[str]) -> list[str]:
    """No accepted request was lost: every job id handed to a client exists."""
    wanted = set(accepted)
    if not wanted:
        return []
    found: set[str] = set()
    ids = sorted(wanted)
    for i in range(0, len(ids), 500):
        found.update(r[0] for r in conn.execute(select(jobs.c.job_id).where(jobs.c.job_id.in_(ids[i:i + 500]))))
    return [f"accepted job {j} is not in the database" for j in sorted(wanted - found)]


def one_system_disk(conn: Connection) -> list[str]:
    """Every live server has exactly one attached system disk, created from the server's image; but a
    stopped server may have none (its system disk was detached: domain/attachments.py)."""
    disks = (select(volumes.c.server_id, func.count().label("n"), func.min(volumes.c.image_id).label("image"))
             .where(volumes.c.boot_index == 0).group_by(volumes.c.server_id).subquery())
    rows = conn.execute(select(servers.c.id, servers.c.image_id, servers.c.vm_state, disks.c.n, disks.c.image)
                        .select_from(servers.outerjoin(disks, disks.c.server_id == servers.c.id))
                        .where(servers.c.deleted.is_(False))).all()
    out = []
    for r in rows:
        if r.n is None and r.vm_state == st.STOPPED:
            continue
        if r.n != 1:
            out.append(f"server {r.id} has {r.n or 0} system disks")
        elif r.image != r.image_id:
            out.append(f"server {r.id} shows image {r.image_id} but its system disk holds {r.image}")
    return out


def image_of_last_successful_change(conn: Connection) -> list[str]:
    """A server whose last change/reinstall OS succeeded runs that job's image."""
    last = (select(jobs.c.server_id, func.max(jobs.c.created_at).label("at"))
            .where(jobs.c.job_type.in_((st.CHANGE_OS, st.REINSTALL_OS)))
            .group_by(jobs.c.server_id).subquery())
    rows = conn.execute(select(jobs.c.job_id, jobs.c.server_id, jobs.c.params, servers.c.image_id)
                        .join(last, and_(last.c.server_id == jobs.c.server_id, last.c.at == jobs.c.created_at))
                        .join(servers, servers.c.id == jobs.c.server_id)
                        .where(and_(jobs.c.status == st.JOB_SUCCESS, servers.c.deleted.is_(False)))).all()
    out = []
    for r in rows:
        image = json.loads(r.params)["image"]["id"]
        if image != r.image_id:
            out.append(f"server {r.server_id} runs {r.image_id}, but its last change {r.job_id} installed {image}")
    return out


def flavor_of_last_successful_resize(conn: Connection) -> list[str]:
    """A server whose last resize (or revert) succeeded has that job's flavor."""
    kinds = (st.RESIZE_SERVER, st.REVERT_RESIZE)
    last = (select(jobs.c.server_id, func.max(jobs.c.created_at).label("at"))
            .where(jobs.c.job_type.in_(kinds)).group_by(jobs.c.server_id).subquery())
    rows = conn.execute(select(jobs.c.job_id, jobs.c.server_id, jobs.c.params, servers.c.flavor_id)
                        .join(last, and_(last.c.server_id == jobs.c.server_id, last.c.at == jobs.c.created_at))
                        .join(servers, servers.c.id == jobs.c.server_id)
                        .where(and_(jobs.c.job_type.in_(kinds), jobs.c.status == st.JOB_SUCCESS,
                                    servers.c.deleted.is_(False)))).all()
    out = []
    for r in rows:
        flavor = json.loads(r.params)["new_flavor"]
        if flavor != r.flavor_id:
            out.append(f"server {r.server_id} has flavor {r.flavor_id}, but its last resize {r.job_id} set {flavor}")
    return out


def servers_released(conn: Connection) -> list[str]:
    """No live server is still marked busy once every job has ended."""
    rows = conn.execute(select(servers.c.id, servers.c.task_state, servers.c.job_id).where(and_(
        servers.c.deleted.is_(False), (servers.c.task_state.is_not(None)) | (servers.c.job_id.is_not(None))))).all()
    return [f"server {r.id} still has task {r.task_state} for job {r.job_id}" for r in rows]


def server_counts_match(conn: Connection) -> list[str]:
    """Each project's kept usage (servers, their flavors' vCPUs and RAM: what quotas are checked against)
    equals that of the live servers it has."""
    actual = (select(servers.c.project_id, func.count().label("n"),
                     func.coalesce(func.sum(flavors.c.vcpus), 0).label("cores"),
                     func.coalesce(func.sum(flavors.c.ram), 0).label("ram"))
              .select_from(servers.outerjoin(flavors, flavors.c.id == servers.c.flavor_id))
              .where(servers.c.deleted.is_(False)).group_by(servers.c.project_id).subquery())
    rows = conn.execute(select(projects.c.id, projects.c.server_count, projects.c.cores_used, projects.c.ram_used,
                               actual.c.n, actual.c.cores, actual.c.ram)
                        .select_from(projects.outerjoin(actual, actual.c.project_id == projects.c.id))).all()
    out = []
    for r in rows:
        kept, real = (r.server_count, r.cores_used, r.ram_used), (r.n or 0, int(r.cores or 0), int(r.ram or 0))
        if kept != real:
            out.append(f"project {r.id} counts {kept[0]} servers, {kept[1]} vCPUs, {kept[2]} MB "
                       f"but has {real[0]}, {real[1]}, {real[2]}")
    return out


def no_orphan_volumes(conn: Connection) -> list[str]:
    """No system disk is left unattached, and no disk is stuck half created or half deleted."""
    rows = conn.execute(select(volumes.c.id, volumes.c.status, volumes.c.image_id, volumes.c.server_id).where(
        (volumes.c.status.in_(("creating", "deleting"))) |
        (volumes.c.server_id.is_(None) & (volumes.c.boot_index == 0)))).all()
    return [f"volume {r.id} is {r.status}, attached to {r.server_id}" for r in rows]


def attachments_consistent(conn: Connection) -> list[str]:
    """A disk that is not shared is attached in volumes.server_id only (never through volume_attachments);
    every attachment row belongs to a shared disk and a live server; no server has two disks at one device."""
    out = []
    rows = conn.execute(select(volume_attachments.c.volume_id, volume_attachments.c.server_id,
                               volumes.c.multiattach, volumes.c.server_id.label("own"), servers.c.deleted)
                        .select_from(volume_attachments
                                     .join(volumes, volumes.c.id == volume_attachments.c.volume_id)
                                     .outerjoin(servers, servers.c.id == volume_attachments.c.server_id))).all()
    for r in rows:
        if not r.multiattach or r.own is not None:
            out.append(f"volume {r.volume_id} is not shared but has an attachment row for server {r.server_id}")
        if r.deleted is None or r.deleted:
            out.append(f"volume {r.volume_id} is attached to server {r.server_id}, which does not exist")
    orphans = conn.execute(select(volumes.c.id, volumes.c.server_id)
                           .select_from(volumes.outerjoin(servers, servers.c.id == volumes.c.server_id))
                           .where(and_(volumes.c.server_id.is_not(None),
                                       or_(servers.c.id.is_(None), servers.c.deleted.is_(True))))).all()
    out += [f"volume {r.id} is attached to server {r.server_id}, which does not exist" for r in orphans
            if not _deleting(conn, r.id)]
    devices = union_all(select(volumes.c.server_id, volumes.c.device).where(volumes.c.server_id.is_not(None)),
                        select(volume_attachments.c.server_id, volume_attachments.c.device)).subquery()
    dup = conn.execute(select(devices.c.server_id, devices.c.device).where(devices.c.device.is_not(None))
                       .group_by(devices.c.server_id, devices.c.device).having(func.count() > 1)).all()
    out += [f"server {r.server_id} has several disks at {r.device}" for r in dup]
    return out


def _deleting(conn: Connection, volume_id: str) -> bool:
    return conn.execute(select(volumes.c.status).where(volumes.c.id == volume_id)).scalar() == st.VOLUME_DELETING


def backend_disks_match(conn: Connection, disk_ids: Iterable[str]) -> list[str]:
    """The driver holds exactly the disks the database knows (no orphan, none missing)."""
    backend = set(disk_ids)
    known = {r[0] for r in conn.execute(select(volumes.c.id).where(volumes.c.status != "error"))}
    return ([f"disk {d} exists in the backend but not in the database" for d in sorted(backend - known)] +
            [f"volume {v} has no disk in the backend" for v in sorted(known - backend)])


def overlapping_operations(oplog_lines: Iterable[str]) -> list[str]:
    """No two driver operations on the same server or disk ran at the same time (no job ran twice at once).

    Each line is JSON ``{"pid", "seq", "phase": "start"|"end", "op", "targets", "t"}``; an operation whose
    process was killed has no end and is ignored.
    """
    starts: dict[tuple[int, int], dict] = {}
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for line in oplog_lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line torn by kill -9
        key = (rec["pid"], rec["seq"])
        if rec["phase"] == "start":
            starts[key] = rec
        elif key in starts:
            begin = starts.pop(key)
            for target in begin["targets"]:
                spans[target].append((begin["t"], rec["t"], f"{begin['op']}@{begin['pid']}"))
    out = []
    for target, items in spans.items():
        items.sort()
        for (_a0, a1, a), (b0, _b1, b) in itertools.pairwise(items):
            if b0 < a1:
                out.append(f"{a} and {b} overlapped on {target}")
    return out


def check_all(conn: Connection, accepted: Iterable[str] = (), disk_dir: str | None = None,
              oplog: str | None = None) -> list[str]:
    found = (jobs_finished(conn) + accepted_jobs_recorded(conn, accepted) + one_system_disk(conn)
             + image_of_last_successful_change(conn) + flavor_of_last_successful_resize(conn)
             + servers_released(conn) + no_orphan_volumes(conn) + server_counts_match(conn)
             + attachments_consistent(conn))
    if disk_dir is not None:
        found += backend_disks_match(conn, os.listdir(disk_dir) if os.path.isdir(disk_dir) else [])
    if oplog is not None and os.path.exists(oplog):
        with open(oplog, encoding="utf-8") as fh:
            found += overlapping_operations(fh)
    return found
