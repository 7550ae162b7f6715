"""Faults, holds and the step delay: the emulator's grip on running jobs, and the operator token.

* **Faults** (``fail_next``): the next ``count`` jobs of an operation (optionally of one server) fail
  at a step with the chosen error code, through the job's normal failure path (its ``on_fail`` and
  ``cleanup``), as a real failure at that step would. Without a step, the step whose own error
  code is the chosen one (``changeOS`` + ``Ecs.0226``: ``start``), else the job's first step.
* **Holds** (``hold``): jobs of an operation wait before a step until released, so that a test can
  look at the in-between state (``REBUILD``) for as long as it likes.
* **Step delay**: the simulated driver's time per operation.

Operations are job types (``changeOS``, ``reinstallOS``, ``createServer``, ``deleteServer``,
``batchStartServer``, ...); a batch type names its per-server sub-jobs (``createServer`` ->
``createSingleServer``). All of this lives in the process that runs the jobs; ``Engine.step_hook``
is set only while a fault or hold is registered, so that an idle emulator costs the engine nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field

from ecsd.domain import clock
from ecsd.domain import states as st
from ecsd.domain.errors import invalid
from ecsd.engine.engine import Engine, JobContext, JobType, Step, StepFailed

# A batch operation's sub-jobs carry the steps.
SUB_JOB = {st.CREATE_SERVER: st.CREATE_SINGLE_SERVER, st.DELETE_SERVER: st.DELETE_SINGLE_SERVER,
           st.START_SERVER: st.START_SINGLE_SERVER, st.STOP_SERVER: st.STOP_SINGLE_SERVER,
           st.REBOOT_SERVER: st.REBOOT_SINGLE_SERVER, st.BATCH_ATTACH_VOLUME: st.ATTACH_VOLUME}
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}\.[0-9A-Za-z]{1,8}")
MAX_FAULTS = 1000
MAX_DELAY = 600.0


def operator_token(secret_key: bytes) -> str:
    """The operator credential derived from the installation's secret key (ECSD_SECRET_KEY or
    DATA_DIR/secret.key): every process sharing the key agrees on it, and no tenant can guess it."""
    digest = hmac.new(secret_key, b"ecsd emulator operator token v1", hashlib.sha256).digest()
    return "ecsd-op-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Fault:
    operation: str            # the job type whose steps run (sub-job type for batch operations)
    step: str
    code: str
    server_id: str | None
    remaining: int
    reason: str
    requested: str            # the operation as the caller named it

    def view(self) -> dict:
        return {"operation": self.requested, "step": self.step, "code": self.code, "server_id": self.server_id,
                "remaining": self.remaining, "reason": self.reason}


@dataclass
class Hold:
    operation: str | None     # None: every operation
    step: str | None          # None: the operation's first step
    requested: str | None

    def matches(self, ctx: JobContext, step: Step, first: bool) -> bool:
        return ((self.operation is None or self.operation == ctx.job_type)
                and (step.name == self.step if self.step is not None else first))

    def view(self) -> dict:
        return {"operation": self.requested, "step": self.step}


@dataclass
class Controls:
    engine: Engine
    driver: object                     # the simulated driver (its ``delay``)
    default_delay: float
    faults: list[Fault] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    waiting: dict[str, dict] = field(default_factory=dict)        # job id -> where it waits
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    # --- naming ---------------------------------------------------------------------------------------
    def _job_type(self, operation: str) -> JobType:
        name = SUB_JOB.get(operation, operation)
        jt = self.engine.types.get(name)
        if jt is None or not jt.steps:
            known = sorted({*SUB_JOB, *(n for n, t in self.engine.types.items() if t.steps)})
            raise invalid(f"unknown operation {operation!r}; one of: {', '.join(known)}")
        return jt

    @staticmethod
    def _step(jt: JobType, step: str) -> str:
        names = [s.name for s in jt.steps]
        if step not in names:
            raise invalid(f"operation {jt.name} has no step {step!r}; its steps: {', '.join(names)}")
        return step

    # --- faults ---------------------------------------------------------------------------------------
    def fail_next(self, operation: str, code: str, step: str | None = None, server_id: str | None = None,
                  count: int = 1, reason: str | None = None) -> Fault:
        jt = self._job_type(operation)
        if len(code) > 16 or not _CODE.fullmatch(code):
            raise invalid(f"code {code!r} is not an error code such as Ecs.0226")
        if not 1 <= count <= 10_000:
            raise invalid("count must be between 1 and 10000")
        if len(self.faults) >= MAX_FAULTS:
            raise invalid(f"at most {MAX_FAULTS} faults can be registered at once")
        if step is None:
            step = next((s.name for s in jt.steps if s.error_code == code), jt.steps[0].name)
        fault = Fault(jt.name, self._step(jt, step), code, server_id, count,
                      reason or f"injected fault at step {step}", operation)
        self.faults.append(fault)
        self._arm()
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()
        self._arm()

    def _take_fault(self, ctx: JobContext, step: Step) -> Fault | None:
        for fault in self.faults:
            if (fault.operation == ctx.job_type and fault.step == step.name
                    and (fault.server_id is None or fault.server_id == ctx.server_id)):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                    self._arm()
                return fault
        return None

    # --- holds ----------------------------------------------------------------------------------------
    def hold(self, operation: str | None = None, step: str | None = None) -> Hold:
        if operation is None:
            if step is not None:
                raise invalid("a step needs an operation")
            hold = Hold(None, None, None)
        else:
            jt = self._job_type(operation)
            hold = Hold(jt.name, None if step is None else self._step(jt, step), operation)
        self.holds.append(hold)
        self._arm()
        return hold

    def release(self) -> int:
        """Every hold ends and every waiting job goes on. Returns how many were waiting."""
        waiting = len(self.waiting)
        self.holds.clear()
        self._released.set()
        self._released = asyncio.Event()
        self._arm()
        return waiting

    # --- the step delay -------------------------------------------------------------------------------
    @property
    def step_delay(self) -> float:
        return float(getattr(self.driver, "delay", 0.0))

    def set_step_delay(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_DELAY:
            raise invalid(f"seconds must be between 0 and {MAX_DELAY:g}")
        self.driver.delay = seconds     # type: ignore[attr-defined]

    # --- everything -----------------------------------------------------------------------------------
    def reset(self) -> None:
        self.clear_faults()
        self.release()
        self.set_step_delay(self.default_delay)
        reset_driver = getattr(self.driver, "reset", None)
        if reset_driver is not None:
            reset_driver()

    def view(self) -> dict:
        return {"faults": [f.view() for f in self.faults], "holds": [h.view() for h in self.holds],
                "held_jobs": sorted(self.waiting.values(), key=lambda w: w["since"]),
                "step_delay": self.step_delay}

    # --- the engine hook ------------------------------------------------------------------------------
    def _arm(self) -> None:
        self.engine.step_hook = self._before_step if (self.faults or self.holds) else None

    async def _before_step(self, ctx: JobContext, step: Step) -> None:
        first = step is self.engine.types[ctx.job_type].steps[0]
        while any(h.matches(ctx, step, first) for h in self.holds):
            self.waiting[ctx.job_id] = {"job_id": ctx.job_id, "operation": ctx.job_type, "step": step.name,
                                        "server_id": ctx.server_id, "since": clock.iso_ms(clock.now())}
            try:
                await self._released.wait()
            finally:
                self.waiting.pop(ctx.job_id, None)
        fault = self._take_fault(ctx, step)
        if fault is not None:
            raise StepFailed(fault.code, fault.reason)
