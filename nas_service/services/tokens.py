"""API users and bearer tokens: issue a token for a user, resolve a token to its user.

Only the SHA-256 digest of a token is stored, so a leaked database does not leak usable tokens;
the token itself is shown once, when it is created. Tokens are 256-bit random, so an unsalted
fast hash is enough (there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from nas_service.db.models import utcnow
from nas_service.db.users import ApiToken, User

TOKEN_PREFIX = "nas_"
TOKEN_SHAPE = re.compile(r"nas_[A-Za-z0-9_-]{43}")
"""What `create_token` issues: the prefix and 32 random bytes in URL-safe base64."""
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


class UserNameError(ValueError):
    """A user name that cannot own jobs; the message says which characters are allowed."""


@dataclass(frozen=True)
class IssuedToken:
    user: str
    token: str
    token_id: int


def well_formed(token: str) -> bool:
    """Whether `token` could have been issued here: anything else is refused without asking the database."""
    return TOKEN_SHAPE.fullmatch(token) is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: str, label: str | None = None) -> IssuedToken:
    """A new token for `user`, creating the user on first use. The returned secret is not stored."""
    if not USER_NAME.match(user):
        raise UserNameError(f"user name {user!r} is invalid: expected 1-200 letters, digits or . _ @ -, "
                            "starting with a letter or digit")
    row = session.scalar(sa.select(User).where(User.name == user))
    if row is None:
        row = User(name=user)
        session.add(row)
        session.flush()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user_id=row.id, token_hash=hash_token(token), label=label)
    session.add(record)
    session.commit()
    return IssuedToken(user=user, token=token, token_id=record.id)


def user_for_token(session: Session, token: str) -> str | None:
    """The name of the user owning `token`, or None for an unknown or revoked token."""
    stmt = (sa.select(User.name).join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)))
    return session.scalar(stmt)


def revoke_tokens(session: Session, user: str) -> int:
    """Revoke every live token of `user`; returns how many were revoked."""
    user_id = session.scalar(sa.select(User.id).where(User.name == user))
    if user_id is None:
        return 0
    result = session.execute(sa.update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
