"""Running host tools: asyncio subprocesses for the driver (the event loop never blocks on them), and a
synchronous twin for the command line. A missing tool, a non-zero exit or a timeout is a DriverError.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass

from ecsd.drivers.base import DriverError

# debugfs, mke2fs, e2fsck and resize2fs live in sbin, which is not on every user's PATH.
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
# debugfs pipes long output through a pager when it finds one; never here.
_ENV = {"DEBUGFS_PAGER": "__none__", "PAGER": "__none__", "LC_ALL": "C"}


def which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for d in _EXTRA_PATH:
        candidate = os.path.join(d, tool)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def tool(name: str) -> str:
    found = which(name)
    if found is None:
        raise DriverError(f"{name} is not installed on this host (see docs/drivers.md for the packages)")
    return found


def env() -> dict[str, str]:
    return {**os.environ, **_ENV}


@dataclass
class Result:
    rc: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def error_text(self) -> str:
        return self.err.decode("utf-8", "replace").strip()


def _describe(argv: list[str], res: Result) -> str:
    detail = res.error_text or res.text.strip()
    lines = [ln for ln in detail.splitlines() if ln and not ln.startswith("debugfs ")]
    return f"{os.path.basename(argv[0])} failed (exit {res.rc}): {' '.join(lines[-3:])[:500]}"


async def communicate(p: asyncio.subprocess.Process, program: str, timeout: float,
                      input: bytes | None = None) -> tuple[bytes, bytes]:
    """``p.communicate(input)``, killing ``p`` when it takes over ``timeout`` seconds (DriverError) or
    when the caller is cancelled."""
    try:
        return await asyncio.wait_for(p.communicate(input), timeout)
    except TimeoutError:
        p.kill()
        await p.wait()
        raise DriverError(f"{os.path.basename(program)} did not finish within {timeout:.0f} s") from None
    except asyncio.CancelledError:
        if p.returncode is None:
            p.kill()
            await p.wait()
        raise


async def run(argv: list[str], *, input: bytes | None = None, timeout: float = 60.0, cwd: str | None = None,
              check: bool = True) -> Result:
    argv = [tool(argv[0]), *argv[1:]]
    try:
        p = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env())
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc}") from exc
    out, err = await communicate(p, argv[0], timeout, input)
    res = Result(p.returncode if p.returncode is not None else -1, out, err)
    if check and res.rc != 0:
        raise DriverError(_describe(argv, res))
    return res


def run_sync(argv: list[str], *, input: bytes | None = None, timeout: float = 600.0, cwd: str | None = None,
             check: bool = True) -> Result:
    argv = [tool(argv[0]), *argv[1:]]
    try:
        p = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, cwd=cwd, env=env(), check=False)
    except subprocess.TimeoutExpired:
        raise DriverError(f"{os.path.basename(argv[0])} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc}") from exc
    res = Result(p.returncode, p.stdout, p.stderr)
    if check and res.rc != 0:
        raise DriverError(_describe(argv, res))
    return res
