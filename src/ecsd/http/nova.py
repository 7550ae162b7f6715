"""Native (Nova) server actions and lists (being written)."""

routes: list = []
