"""Public liveness (`/health`) and the caller's identity (`/me`, used by the dashboard's login)."""

from __future__ import annotations

from importlib import metadata

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException

from nas_service.api.deps import AUTH_RESPONSES, Ctx, User
from nas_service.api.schemas import Health, Me

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(ctx: Ctx) -> Health:
    """Public: the service is up and its database answers. 503 when the database does not."""
    try:
        with ctx.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise HTTPException(503, f"database unreachable: {type(exc).__name__}") from None
    return Health(status="ok", version=metadata.version("nas-service"), database=ctx.engine.dialect.name)


@router.get("/me", response_model=Me, responses=AUTH_RESPONSES)
def me(user: User) -> Me:
    """The user owning the bearer token."""
    return Me(user=user)
