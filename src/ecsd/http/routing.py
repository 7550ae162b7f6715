"""A Starlette router that tries only the routes a path could match.

Starlette's router tries every route's regular expression in order until one matches; with ~100
routes that scan cost more per request than a database read. :class:`IndexedRouter` files each route
under the number of path segments it matches and its last segment (when that is literal text, e.g.
``changeos`` or ``jobs``), and tries, in the original order, only the routes filed where the request
path falls. The outcome is the same as the full scan: the first route in declaration order that
matches fully wins, else the first partial match (405), and a path no candidate matches goes to the
stock router (trailing-slash redirects, 404).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Route, Router, get_route_path
from starlette.types import Receive, Scope, Send


def _shape(route: BaseRoute) -> tuple[int, str | None] | None:
    """(segments, literal last segment or None) for a plain route; None if it may span segments."""
    if not isinstance(route, Route):
        return None
    if any(getattr(conv, "regex", "") != "[^/]+" for conv in route.param_convertors.values()):
        return None     # a path (or other) convertor: may match a different number of segments
    parts = route.path.split("/")
    last = parts[-1]
    return len(parts), (None if "{" in last else last)


class IndexedRouter(Router):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reindex()

    def _reindex(self) -> None:
        shapes = [(i, r, _shape(r)) for i, r in enumerate(self.routes)]
        wild = [(i, r) for i, r, s in shapes if s is None]
        by_n: dict[int, list] = {}
        literal_keys: set[tuple[int, str]] = set()
        for i, r, s in shapes:
            if s is not None:
                by_n.setdefault(s[0], []).append((i, r, s[1]))
                if s[1] is not None:
                    literal_keys.add((s[0], s[1]))
        # For a path of n segments ending in text t: the routes of n segments ending in t or in a
        # parameter, plus those that may span segments, in declaration order.
        self._exact = {(n, t): [r for _, r in sorted([(i, r) for i, r, last in by_n[n] if last in (t, None)] + wild,
                                                      key=lambda p: p[0])]
                       for n, t in literal_keys}
        self._by_params = {n: [r for _, r in sorted([(i, r) for i, r, last in entries if last is None] + wild,
                                                    key=lambda p: p[0])]
                           for n, entries in by_n.items()}
        self._wild = [r for _, r in wild]

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        path = get_route_path(scope)
        n = path.count("/") + 1
        last = path.rpartition("/")[2]
        candidates = self._exact.get((n, last))
        if candidates is None:
            candidates = self._by_params.get(n, self._wild)
        scope.setdefault("router", self)
        partial = partial_scope = None
        for route in candidates:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        if await self._redirect_slash(scope, receive, send, path):
            return
        await self.default(scope, receive, send)      # 404

    async def _redirect_slash(self, scope: Scope, receive: Receive, send: Send, path: str) -> bool:
        if path == "/" or path.startswith("//"):
            return False
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if not other or other.startswith("//"):
            return False
        probe = {**scope, "path": other, "root_path": ""}
        for route in self.routes:
            match, _ = route.matches(probe)
            if match is not Match.NONE:
                location = quote(other, safe="/:@!$&'()*+,;=-._~")
                query = scope.get("query_string", b"")
                if query:
                    location += "?" + quote(query.decode("latin-1"), safe="%=&;+/:@!$'()*,?-._~")
                await RedirectResponse(location)(scope, receive, send)
                return True
        return False
