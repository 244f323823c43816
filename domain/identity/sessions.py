"""Signed-in sessions: refresh-token rotation with reuse detection, sign-out, cut-off.

A session is a family of tokens. Each refresh token may be used once: ``rotate`` swaps
the session's current refresh token id for a new one in a single conditional UPDATE, so
two concurrent refreshes with the same token cannot both win. A refresh token that is
not the current one has been used before: someone replayed it, and the whole session is
revoked (OAuth 2.0 Security BCP §4.14, refresh token rotation).

Revoking a session here is the durable record; the web edge also marks it in the
revocation store (``domain.identity.revocation``) so access tokens already issued are
refused from the next request on.
"""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.errors import DomainError
from domain.identity.models import AuthSession, User
from domain.messaging.contracts import Contract


class SessionRefused(DomainError):
    """A refresh token that cannot be used (revoked, expired, reused, account inactive)."""

    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason, field="refresh_token")


class RefreshReused(SessionRefused):
    """A refresh token presented a second time: its session (and those switched from it,
    ``session_ids``) has been revoked, and the caller must commit that revocation even
    though it answers 401."""

    def __init__(self, session_ids: list[uuid.UUID]) -> None:
        super().__init__("refresh token was already used; the session is revoked")
        self.session_ids = session_ids


@dataclass(frozen=True)
class SessionGrant:
    """What a new or rotated session lets the edge issue tokens for."""

    session_id: uuid.UUID
    refresh_jti: str
    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    operator: bool
    expires_at: datetime  # the session's end: no token of it may outlive this


@dataclass(frozen=True)
class SessionRow:
    """A session as the "my sessions" page lists it."""

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    method: str
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime


def new_jti() -> str:
    """A fresh, unguessable token id."""
    return secrets.token_urlsafe(24)


def start_session(session: Session, *, user_id: uuid.UUID, tenant_id: uuid.UUID | None,
                  operator: bool, method: str, lifetime: timedelta,
                  user_agent: str | None = None, ip: str | None = None,
                  ends_by: datetime | None = None, parent_id: uuid.UUID | None = None) -> SessionGrant:
    """Open a session for a user who has just proved who they are, for ``lifetime`` and not
    past ``ends_by`` (the end of the session it was opened from, ``parent_id``, when it proved
    nothing new: it is revoked with that one too).

    The account's row is locked (FOR SHARE) until the session commits, and a deactivated
    account gets none (``SessionRefused``): ``revoke_user`` locks the same row before it
    looks for sessions, so a session is either seen and revoked by it, or started after it
    and refused, never committed unseen just after it.
    """
    active = session.scalar(select(User.active).where(User.id == user_id).with_for_update(read=True))
    if not active:
        raise SessionRefused("account is deactivated")
    now = utcnow()
    ends = now + lifetime if ends_by is None else min(now + lifetime, ends_by)
    row = AuthSession(id=uuid.uuid4(), user_id=user_id, tenant_id=tenant_id, method=method,
                      refresh_jti=new_jti(), user_agent=(user_agent or "")[:300] or None,
                      ip=(ip or "")[:64] or None, last_used_at=now, expires_at=ends, parent_id=parent_id)
    session.add(row)
    session.flush()
    return SessionGrant(row.id, row.refresh_jti, user_id, tenant_id, operator, row.expires_at)


def rotate(session: Session, session_id: uuid.UUID, presented_jti: str) -> SessionGrant:
    """Swap the presented refresh token for a new one, or refuse it.

    A refresh token that was already used revokes the session (``RefreshReused``).
    """
    now, jti = utcnow(), new_jti()
    swapped = session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.refresh_jti == presented_jti,
               AuthSession.revoked_at.is_(None), AuthSession.expires_at > now)
        .values(refresh_jti=jti, last_used_at=now)
        .returning(AuthSession.user_id, AuthSession.tenant_id, AuthSession.expires_at)
    ).one_or_none()
    if swapped is None:
        row = session.get(AuthSession, session_id, with_for_update=True)
        if row is None or row.revoked_at is not None:
            raise SessionRefused("session has been signed out")
        if row.expires_at <= now:
            raise SessionRefused("refresh token has expired")
        # The token is ours (its signature says so) but not the current one: a replay.
        raise RefreshReused(_revoke_rows(session, [row.id], "refresh token reused", now))
    user = session.get(User, swapped.user_id)
    if user is None or not user.active:
        raise SessionRefused("account is deactivated")
    return SessionGrant(session_id, jti, swapped.user_id, swapped.tenant_id, user.is_operator,
                        swapped.expires_at)


def _revoke_rows(session: Session, ids: list[uuid.UUID], reason: str, now: datetime, *,
                 tenant_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Revoke the sessions ``ids`` and every live session switched from them (only those for
    ``tenant_id`` if given), generation by generation; ``ids`` and the ids of those sessions,
    for the revocation store.

    Each generation is updated before its children are looked for: a switch holds its
    session's row (``session_end(lock=True)``) until its new session commits, so the update
    waits for it and the lookup then finds that session.
    """
    revoked, generation = list(dict.fromkeys(ids)), list(dict.fromkeys(ids))
    while generation:
        session.execute(update(AuthSession).where(AuthSession.id.in_(generation),
                                                  AuthSession.revoked_at.is_(None))
                        .values(revoked_at=now, revoked_reason=reason[:100]))
        children = select(AuthSession.id).where(AuthSession.parent_id.in_(generation),
                                                AuthSession.revoked_at.is_(None))
        if tenant_id is not None:
            children = children.where(AuthSession.tenant_id == tenant_id)
        generation = [sid for sid in session.scalars(children) if sid not in revoked]
        revoked += generation
    return revoked


def revoke(session: Session, session_id: uuid.UUID, reason: str) -> list[uuid.UUID]:
    """Sign one session out, with the sessions switched from it; their ids."""
    return _revoke_rows(session, [session_id], reason, utcnow())


def revoke_user(session: Session, user_id: uuid.UUID, reason: str, *,
                tenant_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Sign out every live session of a user (only those for ``tenant_id`` if given, and
    those switched from them); return their ids for the revocation store. A cut-off in one
    tenant ends nothing in another: a session switched from one of its sessions to another
    tenant is left alone, as that tenant's admins, not this one's, decide who works there.
    The account's row is locked first (FOR NO KEY UPDATE): sessions being started wait, or
    are waited for (``start_session``)."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    query = select(AuthSession.id).where(AuthSession.user_id == user_id,
                                         AuthSession.revoked_at.is_(None))
    if tenant_id is not None:
        query = query.where(AuthSession.tenant_id == tenant_id)
    return _revoke_rows(session, list(session.scalars(query.with_for_update())), reason, utcnow(),
                        tenant_id=tenant_id)


def is_revoked(session: Session, session_id: uuid.UUID) -> bool:
    """True if the session was signed out or cut off (or never existed)."""
    revoked_at = session.execute(select(AuthSession.revoked_at).where(
        AuthSession.id == session_id)).one_or_none()
    return revoked_at is None or revoked_at[0] is not None


def session_end(session: Session, session_id: uuid.UUID, *, lock: bool = False) -> datetime | None:
    """When the session ends (its ``expires_at``, set once when it starts); None if it was
    signed out or cut off, or never existed. ``lock`` holds its row (FOR SHARE) until the
    transaction ends, for a switch opening a session from it: a revocation under way is
    waited for (and then seen), one that comes after finds the new session (``_revoke_rows``)."""
    query = select(AuthSession.expires_at).where(AuthSession.id == session_id,
                                                 AuthSession.revoked_at.is_(None))
    row = session.execute(query.with_for_update(read=True) if lock else query).one_or_none()
    return row[0] if row else None


def revoked_since(session: Session, since: datetime) -> list[uuid.UUID]:
    """Sessions revoked at or after ``since`` (to rebuild the revocation store)."""
    return list(session.scalars(select(AuthSession.id).where(AuthSession.revoked_at >= since)))


def live_sessions(session: Session, user_id: uuid.UUID) -> list[SessionRow]:
    """The user's sessions that are neither revoked nor expired, newest first."""
    rows = session.scalars(
        select(AuthSession).where(AuthSession.user_id == user_id,
                                  AuthSession.revoked_at.is_(None),
                                  AuthSession.expires_at > utcnow())
        .order_by(AuthSession.last_used_at.desc()))
    return [SessionRow(r.id, r.tenant_id, r.method, r.user_agent, r.ip, r.created_at,
                       r.last_used_at) for r in rows]


def owner_of(session: Session, session_id: uuid.UUID) -> uuid.UUID | None:
    """The user a session belongs to."""
    return session.scalar(select(AuthSession.user_id).where(AuthSession.id == session_id))


def actor_refusal(provider: DataProvider, message: Contract) -> str | None:
    """Why a message that acts for a user must not run: that user's session was signed
    out or cut off after it was sent (checked in the database, which does not forget)."""
    actor = message.actor_session
    if actor is None:
        return None
    with provider.management() as session:
        if is_revoked(session, actor):
            return "the session that asked for this has been signed out or cut off"
    return None
