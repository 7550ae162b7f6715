"""Retake the web console's screenshots in docs/console/ (docs/console.md).

    .venv/bin/python scripts/console_screenshots.py

Runs the browser tests of tests/test_webconsole.py (headless Debian Chromium against a real
``ecsd serve``) with ``ECSD_CONSOLE_SCREENSHOTS`` pointing at docs/console/: each test saves the
pages it passes through (login, servers, server details, change OS dialog, job progress, jobs).
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "console")
LIMIT = 200 * 1024      # bytes per PNG: the docs stay light


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    env = {**os.environ, "ECSD_CONSOLE_SCREENSHOTS": OUT}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-m", "browser",
                           os.path.join(ROOT, "tests", "test_webconsole.py")], check=False, env=env, cwd=ROOT)
    if done.returncode:
        return done.returncode
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        print(f"{name}: {size // 1024} KB{'  (over 200 KB)' if size > LIMIT else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
