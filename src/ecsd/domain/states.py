"""Every state of servers and jobs, the allowed transitions, and what each in-flight state becomes after a crash.

This module is the single declaration of the state machine (appendix/ecs_statuses.rst and the
spec digest §4). Everything else asks it; nothing else spells a status string twice.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- server: OS-EXT-STS:vm_state ------------------------------------------------------------------
BUILDING = "building"
ACTIVE = "active"
STOPPED = "stopped"
ERROR = "error"
DELETED = "deleted"

# Server states change in jobs (their steps and failure handlers), in the recovery at start
# (AFTER_CRASH_*), and in one place outside both: power-state sync (domain/power_sync.py) moves an
# ACTIVE server with no task whose machine stopped on its own to STOPPED / POWER_SHUTDOWN.

# --- server: OS-EXT-STS:task_state (None = no task) ------------------------------------------------
SCHEDULING = "scheduling"
BLOCK_DEVICE_MAPPING = "block_device_mapping"
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
REBUILDING = "rebuilding"
REBUILD_BDM = "rebuild_block_device_mapping"
REBUILD_SPAWNING = "rebuild_spawning"
DELETING = "deleting"
# resize (domain/resize.py): the RESIZE, VERIFY_RESIZE and REVERT_RESIZE rows of the status table
RESIZED = "resized"                      # vm_state after a resize, until confirmed or reverted
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"

# --- server: OS-EXT-STS:power_state ----------------------------------------------------------------
POWER_NOSTATE = 0
POWER_RUNNING = 1
POWER_SHUTDOWN = 4

_REBUILD_TASKS = (REBUILDING, REBUILD_BDM, REBUILD_SPAWNING)

# (vm_state, task_state) -> status, exactly the table of appendix/ecs_statuses.rst.
_STATUS: dict[tuple[str, str | None], str] = {}
for _t in (SCHEDULING, BLOCK_DEVICE_MAPPING, "networking", SPAWNING, None):
    _STATUS[(BUILDING, _t)] = "BUILD"
for _t in (REBOOTING, "reboot_pending", "reboot_started"):
    _STATUS[(ACTIVE, _t)] = "REBOOT"
for _t in (REBOOTING_HARD, "reboot_pending_hard", "reboot_started_hard"):
    _STATUS[(ACTIVE, _t)] = "HARD_REBOOT"
for _vm in (ACTIVE, STOPPED, ERROR):
    for _t in _REBUILD_TASKS:
        _STATUS[(_vm, _t)] = "REBUILD"
_STATUS[(ACTIVE, "migrating")] = "MIGRATING"
for _t in (POWERING_OFF, DELETING, None):
    _STATUS[(ACTIVE, _t)] = "ACTIVE"
for _t in ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish"):
    _STATUS[(STOPPED, _t)] = "RESIZE"
for _t in (POWERING_ON, DELETING, None):
    _STATUS[(STOPPED, _t)] = "SHUTOFF"
_STATUS[("resized", "resize_reverting")] = "REVERT_RESIZE"
_STATUS[("resized", None)] = "VERIFY_RESIZE"
for _t in (DELETING, None):
    _STATUS[(ERROR, _t)] = "ERROR"
_STATUS[(DELETED, None)] = "DELETED"


def status_of(vm_state: str, task_state: str | None) -> str:
    """The API ``status`` derived from vm_state and task_state (anything undeclared is UNKNOWN)."""
    return _STATUS.get((vm_state, task_state), "UNKNOWN")


# --- jobs ------------------------------------------------------------------------------------------
JOB_INIT = "INIT"
JOB_RUNNING = "RUNNING"
JOB_SUCCESS = "SUCCESS"
JOB_FAIL = "FAIL"
JOB_TERMINAL = frozenset({JOB_SUCCESS, JOB_FAIL})
JOB_IN_FLIGHT = (JOB_INIT, JOB_RUNNING)
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JOB_INIT: frozenset({JOB_RUNNING, JOB_FAIL}),
    JOB_RUNNING: frozenset({JOB_RUNNING, JOB_SUCCESS, JOB_FAIL}),  # RUNNING -> RUNNING: resumed by a new owner
    JOB_SUCCESS: frozenset(),
    JOB_FAIL: frozenset(),
}

# Job types (G5 of the spec digest: change/reinstall are single jobs, batch operations have sub-jobs).
CHANGE_OS = "changeOS"
REINSTALL_OS = "reinstallOS"
CREATE_SERVER = "createServer"
CREATE_SINGLE_SERVER = "createSingleServer"
DELETE_SERVER = "deleteServer"
DELETE_SINGLE_SERVER = "deleteSingleServer"
START_SERVER = "batchStartServer"
START_SINGLE_SERVER = "startServer"
STOP_SERVER = "batchStopServer"
STOP_SINGLE_SERVER = "stopServer"
REBOOT_SERVER = "batchRebootServer"
REBOOT_SINGLE_SERVER = "rebootServer"
# disks (domain/attachments.py, domain/volumes.py): attach and detach run on the server they change
# (servers.job_id is claimed with no task_state: the status stays ACTIVE or SHUTOFF, as on the cloud);
# attaching one shared disk to several servers is a parent with one attachVolume sub-job per server;
# creating and deleting a disk (EVS) are jobs without a server.
ATTACH_VOLUME = "attachVolume"
DETACH_VOLUME = "detachVolume"
BATCH_ATTACH_VOLUME = "batchAttachVolume"
CREATE_VOLUME = "createVolume"
DELETE_VOLUME = "deleteVolume"
# NICs (domain/nic_changes.py): claimed like attach and detach, with no task_state.
ADD_NICS = "addNics"
DELETE_NICS = "deleteNics"
# resize (domain/resize.py)
RESIZE_SERVER = "resizeServer"
REVERT_RESIZE = "revertResize"
CONFIRM_RESIZE = "confirmResize"


# --- which operation may start from which state ------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """The states a mutating operation may start from, and the task_state it sets on acceptance."""

    from_vm_states: frozenset[str]
    task_state: str | None
    # An ERROR server is accepted only if its last failed operation is one of these (rule 13, G3).
    error_retry_ops: frozenset[str] = frozenset()


GATES: dict[str, Gate] = {
    # change / reinstall OS from SHUTOFF; from ACTIVE only with mode=withStopServer (decided per
    # request in domain/changeos.py); from ERROR only after a failed change/reinstall.
    CHANGE_OS: Gate(frozenset({STOPPED, ACTIVE, ERROR}), REBUILDING, frozenset({CHANGE_OS, REINSTALL_OS})),
    REINSTALL_OS: Gate(frozenset({STOPPED, ACTIVE, ERROR}), REBUILDING, frozenset({CHANGE_OS, REINSTALL_OS})),
    START_SINGLE_SERVER: Gate(frozenset({STOPPED}), POWERING_ON),
    STOP_SINGLE_SERVER: Gate(frozenset({ACTIVE}), POWERING_OFF),
    REBOOT_SINGLE_SERVER: Gate(frozenset({ACTIVE}), REBOOTING),
    DELETE_SINGLE_SERVER: Gate(frozenset({ACTIVE, STOPPED, ERROR, RESIZED}), DELETING),
    # attach / detach / NIC changes: a running or stopped server with no other operation; the job holds
    # servers.job_id and sets no task_state. Detaching the system disk needs SHUTOFF (domain/attachments.py).
    ATTACH_VOLUME: Gate(frozenset({ACTIVE, STOPPED}), None),
    DETACH_VOLUME: Gate(frozenset({ACTIVE, STOPPED}), None),
    ADD_NICS: Gate(frozenset({ACTIVE, STOPPED}), None),
    DELETE_NICS: Gate(frozenset({ACTIVE, STOPPED}), None),
    # resize: from ACTIVE or SHUTOFF (domain/resize.py decides what ACTIVE needs: v1 withStopServer;
    # a running server is claimed with powering-off, a stopped one with resize_prep); confirm (at once,
    # no job) and revert only from VERIFY_RESIZE (vm_state resized).
    RESIZE_SERVER: Gate(frozenset({ACTIVE, STOPPED}), RESIZE_PREP),
    CONFIRM_RESIZE: Gate(frozenset({RESIZED}), None),
    REVERT_RESIZE: Gate(frozenset({RESIZED}), RESIZE_REVERTING),
}


def gate_refusal(op: str, vm_state: str, task_state: str | None, job_id: str | None,
                 failed_op: str | None) -> bool:
    """True if ``op`` must be refused (Ecs.0100) in this state. Locks are checked by the caller."""
    gate = GATES[op]
    if task_state is not None or job_id is not None:
        return True  # one operation at a time (rule 14)
    if vm_state not in gate.from_vm_states:
        return True
    if vm_state == ERROR and op not in (DELETE_SINGLE_SERVER,):
        return failed_op not in gate.error_retry_ops
    return False


# --- after a crash ----------------------------------------------------------------------------------
# Jobs are durable and every step is checkpointed, so after a crash the job engine resumes each job
# from its last completed step once its lease has expired (engine/engine.py):
AFTER_CRASH_JOB = {
    JOB_INIT: "claimed by the next worker as usual (nothing has run yet)",
    JOB_RUNNING: "lease expires; any worker claims it and resumes at the first step not yet "
                 "checkpointed; after MAX_ATTEMPTS claims it is failed with Common.0999",
    JOB_SUCCESS: "terminal, untouched",
    JOB_FAIL: "terminal, untouched",
}
MAX_ATTEMPTS = 5

# A server whose task_state is set always belongs to an in-flight job (servers.job_id), and the job
# owns the task_state: resuming the job drives it on. Should a server ever carry a task_state without
# a live job (a job failed by MAX_ATTEMPTS, or a database edited by hand), the reconciler settles it:
# (vm_state, task_state) -> (vm_state, task_state) after the crash.
AFTER_CRASH_ORPHAN_TASK: dict[str, tuple[str | None, str | None]] = {
    SCHEDULING: (ERROR, None),
    BLOCK_DEVICE_MAPPING: (ERROR, None),
    SPAWNING: (ERROR, None),
    POWERING_ON: (None, None),      # None: keep the vm_state it had, clear the task
    POWERING_OFF: (None, None),
    REBOOTING: (None, None),
    REBOOTING_HARD: (None, None),
    REBUILDING: (ERROR, None),      # the system disk is whichever the last checkpoint attached
    REBUILD_BDM: (ERROR, None),
    REBUILD_SPAWNING: (ERROR, None),
    DELETING: (ERROR, None),
    # resize (domain/resize.py): nothing is destroyed on the way, and each checkpoint records the
    # machine as it is (stopped, then the flavor in servers.flavor_id): the server keeps that state,
    # SHUTOFF with whichever flavor was recorded, or VERIFY_RESIZE (resized) for a revert, which may
    # be asked again. (A running server's resize starts with powering-off, settled above.)
    RESIZE_PREP: (None, None),
    RESIZE_MIGRATING: (None, None),
    RESIZE_MIGRATED: (None, None),
    RESIZE_FINISH: (None, None),
    RESIZE_REVERTING: (None, None),
}
# A server whose job_id is set with no task_state (attach, detach, NIC changes) and no live job is
# released as it stands (job_id cleared); its volumes are settled by AFTER_CRASH_ORPHAN_VOLUME.


# --- volumes (EVS disks): volumes.status -------------------------------------------------------------
VOLUME_CREATING = "creating"
VOLUME_AVAILABLE = "available"
VOLUME_IN_USE = "in-use"
VOLUME_ATTACHING = "attaching"
VOLUME_DETACHING = "detaching"
VOLUME_DELETING = "deleting"
VOLUME_ERROR = "error"
VOLUME_ERROR_DELETING = "error_deleting"
# A volume in a transitional status belongs to an in-flight job, which resumes after a crash. Left
# without one (a job failed by MAX_ATTEMPTS, a database edited by hand), it is settled to:
AFTER_CRASH_ORPHAN_VOLUME: dict[str, str] = {
    VOLUME_CREATING: VOLUME_ERROR,
    VOLUME_ATTACHING: VOLUME_AVAILABLE,     # its attachment row is dropped: the attach never finished
    VOLUME_DETACHING: VOLUME_IN_USE,        # still attached: a detach may be asked again
    VOLUME_DELETING: VOLUME_ERROR_DELETING,
}
