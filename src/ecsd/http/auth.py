"""Who is calling: ``X-Auth-Token`` today; the AK/SK signature verifier plugs in here (issue 3).

Authentication failures are 401 ``Common.0013`` (openstacksdk re-authenticates on 401, never on
403); a project in the path that the caller's token is not scoped to is 400 ``Ecs.0023``.
"""

from __future__ import annotations

from starlette.requests import Request

from ecsd.domain import identity
from ecsd.domain.errors import EcsError
from ecsd.domain.identity import Identity, IdentityCache


class Authenticator:
    def __init__(self, store, cache_ttl: float = 5.0) -> None:
        self.store = store
        self.cache = IdentityCache(ttl=cache_ttl)

    async def authenticate(self, request: Request) -> Identity:
        token = request.headers.get("x-auth-token")
        if not token:
            raise EcsError("Common.0013", "X-Auth-Token is missing.", status=401)
        return await self.authenticate_token(token)

    async def authenticate_token(self, token: str) -> Identity:
        ident = self.cache.get(token)
        if ident is None:
            if len(token) > 16384:
                raise EcsError("Common.0013", "The token is not valid.", status=401)
            ident = await self.store.run(identity.lookup_token, token)
            if ident is None:
                raise EcsError("Common.0013", "The token is not valid or has expired.", status=401)
            self.cache.put(token, ident)
        return ident

    @staticmethod
    def check_project(ident: Identity, project_id: str | None) -> None:
        if project_id is not None and project_id != ident.project_id:
            raise EcsError("Ecs.0023")

    def forget(self, token: str) -> None:
        self.cache.drop(token)
