"""The local driver after kill -9: helper processes are recorded and ended at start-up, and a change
OS killed at each of its steps ends SUCCESS with one system disk and no process left behind.

* Driver level (no boot, a few seconds): the gate that keeps an unrecorded helper from running; only
  recorded helpers of dead owners are signalled, and only when pid, start time and argv[0] still
  match; a process holding a FUSE view of a disk (qemu-storage-daemon) killed with SIGKILL leaves the
  daemon running with the disk's lock, and the next driver's ``recover`` ends it.
* Service level (``ecsd serve --driver local``, three boots under TCG, about 40-60 s): a change OS
  is killed with SIGKILL at every step (``ECSD_LOCAL_TEST_PAUSE`` holds the driver at a named point,
  the test kills it there), ecsd restarted each time.

Skipped, with the reason, where QEMU, e2fsprogs, static busybox or a Debian kernel package is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ecsd.domain.states import MAX_ATTEMPTS
from ecsd.drivers.base import DiskSource, Injection
from ecsd.drivers.local import LocalDriver, LocalOptions
from ecsd.drivers.local.disks import fuse_usable
from ecsd.drivers.local.driver import PAUSE_POINTS, PAUSED
from ecsd.drivers.local.helpers import GATE, argv0, boot_id, is_mounted, same_process, start_time
from ecsd.drivers.local.images import FILE_KEY, import_image
from tests import local_images
from tests.procs import ECSD, Client, Proc, free_port, read_json
from tests.support import server_body

pytestmark = pytest.mark.slow

local_images.skip_unless_testable()

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1Key1Key1Key1Key1Key1Key1Key1Key1Key1 one@test"


def processes_of(data_dir: str, exclude: tuple[int, ...] = ()) -> list[tuple[int, list[str]]]:
    """Live processes (zombies have no command line) whose command line names ``data_dir``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                argv = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if any(data_dir in a for a in argv):
            found.append((int(name), argv))
    return found


def named(procs: list[tuple[int, list[str]]], program: str) -> list[int]:
    return [pid for pid, argv in procs if os.path.basename(argv[0]) == program]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# --- driver level -------------------------------------------------------------------------------------

def test_the_gate_runs_nothing_until_the_record_is_written():
    gate = ["sh", "-c", GATE, "echo", "the helper ran"]
    closed = subprocess.run(gate, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10, check=False)
    assert closed.returncode == 125 and closed.stdout == ""      # the owner died before "go": nothing ran
    opened = subprocess.run(gate, input="go\n", capture_output=True, text=True, timeout=10, check=False)
    assert opened.returncode == 0 and opened.stdout == "the helper ran\n"


def test_only_recorded_helpers_of_dead_owners_are_ended(tmp_path):
    driver = LocalDriver(str(tmp_path / "local"), LocalOptions(accel="tcg", disk_format="raw", kernel="/dev/null",
                                                               initrd="/dev/null"))
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead_owner = {"pid": gone.pid, "start": 1}
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(5)]
    try:
        def record(p: subprocess.Popen, **changes) -> None:
            start = start_time(p.pid)
            value = {"kind": "test", "pid": p.pid, "start": start, "names": ["sleep"], "boot": boot_id(),
                     "owner": dead_owner, "mountpoint": None, **changes}
            with open(os.path.join(driver.layout.helpers, f"{p.pid}.{start}.json"), "w") as fh:
                json.dump(value, fh)

        record(sleepers[0], names=["qemu-storage-daemon", "sh"])    # the pid now runs another program
        record(sleepers[1], start=start_time(sleepers[1].pid) + 1)  # a recycled pid: another start time
        record(sleepers[2], owner=driver.helpers.owner)             # its owner (this process) still runs
        record(sleepers[3], boot="another boot")                    # recorded before the host rebooted
        record(sleepers[4])                                         # ours, and its ecsd is gone: ended
        asyncio.run(driver.recover())
        try:
            ended = sleepers[4].wait(timeout=10)
        except subprocess.TimeoutExpired:
            pid = sleepers[4].pid
            raise AssertionError(f"helper {pid} not ended: start {start_time(pid)}, boot {boot_id()}, "
                                 f"records {driver.helpers.records()}") from None
        assert ended == -signal.SIGTERM
        assert [p.poll() for p in sleepers[:4]] == [None] * 4
        left = sorted(r["pid"] for _n, r in driver.helpers.records())
        assert left == [sleepers[2].pid]                             # the others' records are settled
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


CHILD = """
import asyncio, sys
from ecsd.drivers.base import Injection
from ecsd.drivers.local import LocalDriver, LocalOptions
root, vid, key = sys.argv[1:4]
driver = LocalDriver(root, LocalOptions(accel="tcg", disk_format="qcow2", kernel="/dev/null", initrd="/dev/null",
                                        test_pause="inject"))
asyncio.run(driver.inject(vid, Injection(public_keys=(key,))))
"""


@pytest.mark.skipif(not fuse_usable(), reason="qcow2 views need root, /dev/fuse and qemu-storage-daemon")
def test_a_disk_view_left_by_a_killed_process_is_ended_by_the_next_driver(tmp_path):
    root = str(tmp_path / "local")
    options = LocalOptions(accel="tcg", disk_format="qcow2", kernel="/dev/null", initrd="/dev/null")
    first = LocalDriver(root, options)
    row = import_image(first.layout.images, local_images.os_image("A"), name="A")
    vid = str(uuid.uuid4())
    asyncio.run(first.create_disk(vid, DiskSource(row["id"], "raw", 1, {FILE_KEY: f"{row['id']}.raw"}), 1))
    disk = first.disks.find(vid)[0]

    child = subprocess.Popen([sys.executable, "-c", CHILD, root, vid, KEY], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(os.path.join(root, PAUSED)) or child.poll() is not None, 30, "the pause")
        assert child.poll() is None, child.stdout.read()
        [(_name, rec)] = first.helpers.records()
        pid, start = rec["pid"], rec["start"]
        assert argv0(pid) == "qemu-storage-daemon" and is_mounted(rec["mountpoint"])
    finally:
        child.kill()                            # kill -9 of the process that started the helper
        child.wait()
    time.sleep(0.3)
    assert same_process(pid, start), "the helper should outlive the process that started it"
    locked = subprocess.run(["qemu-img", "info", disk], capture_output=True, text=True, check=False)
    assert locked.returncode != 0 and "lock" in locked.stderr   # it still holds the disk

    second = LocalDriver(root, options)                       # what ecsd's restart builds
    asyncio.run(second.recover())
    assert not same_process(pid, start)
    assert not is_mounted(rec["mountpoint"]) and not os.path.exists(rec["mountpoint"])
    assert second.helpers.records() == []
    assert subprocess.run(["qemu-img", "info", disk], capture_output=True, check=False).returncode == 0
    asyncio.run(second.inject(vid, Injection(public_keys=(KEY,))))      # the disk opens again
    assert os.listdir(second.layout.tmp) == [] and second.helpers.records() == []


# --- service level: kill -9 of ecsd at every change-OS step ---------------------------------------------

class Service:
    """One `ecsd serve --driver local` at a time on a fixed port; ``pause`` sets ECSD_LOCAL_TEST_PAUSE."""

    def __init__(self, data_dir: str, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.port = free_port()
        self.proc: Proc | None = None
        self.paused = os.path.join(data_dir, "local", PAUSED)
        self.pids: list[int] = []

    def start(self, pause: str | None = None) -> Client:
        self.proc = Proc.serve(self.data_dir, {**self.env, "ECSD_LOCAL_TEST_PAUSE": pause or ""}, self.port,
                               ["--driver", "local"], os.path.join(self.data_dir, "ecsd.log"))
        self.pids.append(self.proc.proc.pid)
        return Client(self.proc.base, read_json(os.path.join(self.data_dir, "credentials.json")), timeout=30)

    def wait_paused(self, point: str, client: Client, job_id: str, timeout: float = 120) -> None:
        polls = iter(range(1 << 30))

        def there() -> bool:
            assert self.proc is not None and self.proc.alive, "ecsd ended (see ecsd.log)"
            try:
                with open(self.paused) as fh:
                    return fh.read() == point
            except FileNotFoundError:
                pass
            if next(polls) % 25 == 24:                      # the job may have ended instead
                job = client.get(f"/v1/{{pid}}/jobs/{job_id}").json()
                assert job["status"] not in ("SUCCESS", "FAIL"), (f"job ended before the pause at {point}", job)
            return False
        wait_for(there, timeout, f"the driver to pause at {point}")
        os.unlink(self.paused)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()                       # SIGKILL to the ecsd process this test started

    def stop(self) -> None:
        if self.proc is not None and self.proc.alive:
            self.proc.stop()


def _system_disks(client: Client, sid: str) -> list[str]:
    r = client.get(f"/v1/{{pid}}/cloudservers/{sid}/block_device")
    assert r.status_code == 200, r.text
    return [d["volumeId"] for d in r.json()["volumeAttachments"] if d["bootIndex"] == 0]


def test_kill_9_at_every_change_os_step(tmp_path):
    kit = local_images.boot_kit()
    data_dir = str(tmp_path / "data")
    root = os.path.join(data_dir, "local")
    ids = {}
    for letter in "AB":
        out = subprocess.run([*ECSD, "images", "import", local_images.os_image(letter), "--name", f"OS {letter}",
                              "--json", "--data-dir", data_dir], capture_output=True, text=True, check=True)
        ids[letter] = json.loads(out.stdout)["id"]
    env = {"ECSD_LOCAL_KERNEL": kit.kernel, "ECSD_LOCAL_INITRD": kit.initrd, "ECSD_LOCAL_ACCEL": "tcg",
           "ECSD_LOCAL_BOOT_MARKER": "", "ECSD_LOCAL_BOOT_TIMEOUT": "120",
           "ECSD_LOCAL_STOP_TIMEOUT": "20", "ECSD_LEASE_SECONDS": "1", "ECSD_POWER_SYNC_INTERVAL": "1"}
    svc = Service(data_dir, env)
    qcow2 = fuse_usable()
    # A job may be claimed MAX_ATTEMPTS times: each kill costs one claim, the last run one more.
    per_job = MAX_ATTEMPTS - 1
    plan = [PAUSE_POINTS[i:i + per_job] for i in range(0, len(PAUSE_POINTS), per_job)]
    started = time.monotonic()
    try:
        client = svc.start()
        r = client.post("/v1/{pid}/cloudservers", server_body(ids["A"], name="crash"))
        assert r.status_code == 200, r.text
        job = client.wait(r.json()["job_id"], timeout=180)
        assert job["status"] == "SUCCESS", job
        sid = job["entities"]["sub_jobs"][0]["entities"]["server_id"]
        kills = []
        for n, points in enumerate(plan):
            target = ids["B" if n % 2 == 0 else "A"]
            svc.stop()
            client = svc.start(pause=points[0])
            r = client.post(f"/v1/{{pid}}/cloudservers/{sid}/changeos",
                            {"os-change": {"imageid": target, "mode": "withStopServer"}})
            assert r.status_code == 200, r.text
            job_id = r.json()["job_id"]
            for i, point in enumerate(points):
                svc.wait_paused(point, client, job_id)
                if qcow2 and point in ("create_disk", "inject"):   # the FUSE view is open: the key case
                    assert named(processes_of(data_dir), "qemu-storage-daemon"), point
                if point == "start":                                # QEMU launched, its boot not confirmed
                    launched = named(processes_of(data_dir, exclude=(svc.proc.proc.pid,)), "qemu-system-x86_64")
                    assert len(launched) == 1, launched
                svc.kill()
                kills.append(point)
                client = svc.start(pause=points[i + 1] if i + 1 < len(points) else None)
            job = client.wait(job_id, timeout=180)
            assert job["status"] == "SUCCESS", (kills, job)
            server = client.get(f"/v1/{{pid}}/cloudservers/{sid}").json()["server"]
            assert server["status"] == "ACTIVE" and server["image"]["id"] == target
            disks = _system_disks(client, sid)
            assert len(disks) == 1, disks
            assert sorted(os.listdir(os.path.join(root, "disks"))) == [f"{disks[0]}.{'qcow2' if qcow2 else 'raw'}"]
            left = processes_of(data_dir, exclude=tuple(svc.pids))
            assert named(left, "qemu-storage-daemon") == [] and os.listdir(os.path.join(root, "helpers")) == []
            qemus = named(left, "qemu-system-x86_64")
            with open(os.path.join(root, "servers", sid, "qemu.pid")) as fh:
                assert qemus == [int(fh.read())]                   # one QEMU: the server's
            if "start" in points:
                assert qemus == launched       # the server survived the restart: confirmed, not booted again
            assert [p for p, _a in left if p not in qemus] == [], left
        assert kills == list(PAUSE_POINTS)

        r = client.post("/v1/{pid}/cloudservers/delete", {"servers": [{"id": sid}], "delete_volume": True})
        assert r.status_code == 200, r.text
        assert client.wait(r.json()["job_id"], timeout=60)["status"] == "SUCCESS"
        svc.stop()
        assert processes_of(data_dir) == []
        assert os.listdir(os.path.join(root, "disks")) == [] and os.listdir(os.path.join(root, "servers")) == []
        with open(os.path.join(data_dir, "ecsd.log")) as fh:
            reaped = fh.read().count("ending fuse-view helper")
        assert reaped == (2 if qcow2 else 0)       # the views of the kills at create_disk and inject
        print(f"\nkill -9 at {', '.join(kills)}: {time.monotonic() - started:.1f} s")
    finally:
        _clean_up(svc, root)


def _clean_up(svc: Service, root: str) -> None:
    """Whatever failed: end the ecsd this test started, then its servers and helpers (by their records)."""
    if svc.proc is not None and svc.proc.alive:
        svc.proc.kill()
    leftover = LocalDriver(root, LocalOptions(accel="tcg", kernel="/dev/null", initrd="/dev/null"))
    for sid in leftover._server_ids():
        asyncio.run(leftover.destroy(sid))
    asyncio.run(leftover.recover())
