"""images endpoints (being written)."""

routes: list = []
