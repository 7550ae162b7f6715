"""(being written)"""

from __future__ import annotations

routes: list = []
NOVA_ACTIONS: dict = {}        # Nova server actions served here (http/nova.py dispatches them)
NOVA_ACTION_ARGS: dict = {}   # their arguments as JSON Schema (GET /openapi.json)
