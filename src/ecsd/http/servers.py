"""servers endpoints (being written)."""

routes: list = []
