"""changeos endpoints (being written)."""

routes: list = []
