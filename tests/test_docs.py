"""The docs stay current: every route the service has is listed in docs/api-coverage.md."""

from __future__ import annotations

import os
import re

from ecsd.app import create_app
from ecsd.config import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_route_is_in_api_coverage():
    with open(os.path.join(ROOT, "docs", "api-coverage.md"), encoding="utf-8") as fh:
        doc = fh.read()
    # parameter names may differ (a route cannot name {project_id} twice): compare with them blanked
    doc = re.sub(r"\{[^}/]*\}", "{}", doc)
    app = create_app(Settings(data_dir="/nonexistent-not-started"))
    missing = []
    for route in app.routes:
        path = re.sub(r"\{[^}/]*\}", "{}", route.path)
        for method in sorted(getattr(route, "emulator_handlers", None) or route.methods or ()):
            if method != "HEAD" and not any(f"`{method} {p}`" in doc for p in
                                            (path, path.rstrip("/"), path.rstrip("/") + "/")):
                missing.append(f"{method} {route.path}")
    assert missing == [], f"run scripts/api_coverage.py: {missing}"


def test_readme_starts_with_the_two_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        head = fh.read().split("```")[1]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        ci = fh.read()
    install_and_run, tests = [line for line in head.strip().splitlines() if line]
    assert install_and_run.endswith("ecsd serve")
    assert tests in ci   # CI runs exactly the README's test command
