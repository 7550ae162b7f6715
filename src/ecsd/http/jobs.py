"""jobs endpoints (being written)."""

routes: list = []
