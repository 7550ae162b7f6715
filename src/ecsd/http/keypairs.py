"""keypairs endpoints (being written)."""

routes: list = []
