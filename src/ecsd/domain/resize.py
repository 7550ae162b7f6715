"""(being written)"""

from __future__ import annotations

JOB_TYPES: list = []
