"""Request dependencies: a database session per request and the authenticated user of a bearer token."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from optuna.artifacts._protocol import ArtifactStore
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from nas_service.api.batching import LatencyBatcher
from nas_service.api.cache import ResultsCache, SingleFlight
from nas_service.config import Settings
from nas_service.services import tokens

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or revoked bearer token."}}

TOKEN_CACHE_SECONDS = 10.0
"""How long a resolved token is trusted without asking the database again (a revocation takes at most this)."""


@dataclass
class TokenCache:
    """Token digest -> (user, expiry): spares a database round trip on every request of a busy client.

    When an entry expires, one request re-resolves it while concurrent ones keep the entry a moment
    longer, so a busy client's tokens never send a burst of lookups to the database.
    """

    ttl: float = TOKEN_CACHE_SECONDS
    _entries: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flights: SingleFlight = field(default_factory=SingleFlight)

    def fresh_user(self, token: str) -> str | None:
        """The cached user of `token` if the entry has not expired (the fast path's question)."""
        entry = self._entries.get(tokens.hash_token(token))
        return entry[0] if entry is not None and entry[1] >= time.monotonic() else None

    async def user(self, token: str, lookup: Callable[[str], str | None]) -> str | None:
        """The user of `token` from cache, or from `lookup` (run in the thread pool) when missing or expired."""
        digest = tokens.hash_token(token)
        entry = self._entries.get(digest)
        if entry is not None and (entry[1] >= time.monotonic() or self._flights.running(digest)):
            return entry[0]
        user = await self._flights.run(digest, lambda: run_in_threadpool(lookup, token))
        with self._lock:
            if user is None:
                self._entries.pop(digest, None)
                return None
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (user, time.monotonic() + self.ttl)
        return user


@dataclass
class AppContext:
    """What every route needs, built once by `create_app` and kept on `app.state.ctx`."""

    settings: Settings
    engine: sa.Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    token_cache: TokenCache = field(default_factory=TokenCache)
    results: ResultsCache = field(default_factory=ResultsCache)
    latency: LatencyBatcher = field(default_factory=LatencyBatcher)


async def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def db_session(ctx: Annotated[AppContext, Depends(context)]) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


def _lookup(ctx: AppContext, token: str) -> str | None:
    with ctx.sessions() as session:
        return tokens.user_for_token(session, token)


bearer = HTTPBearer(auto_error=False, description="An API token from `nas tokens create --user NAME`.")


async def current_user(
    ctx: Annotated[AppContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The user owning the request's bearer token; 401 without a valid one. Async, so a cached token costs
    no thread hop; only a miss asks the database (in the thread pool)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    user = await ctx.token_cache.user(token, lambda t: _lookup(ctx, t)) if tokens.well_formed(token) else None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API token",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


User = Annotated[str, Depends(current_user)]
DbSession = Annotated[Session, Depends(db_session)]
Ctx = Annotated[AppContext, Depends(context)]
