"""versions endpoints (being written)."""

routes: list = []
