"""flavors endpoints (being written)."""

routes: list = []
