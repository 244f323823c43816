"""Tables of the identity context (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column


class User(ManagementBase):
    """A person who can sign in; may belong to several tenants (iam memberships)."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(Text)
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = created_at_column()
    # When the platform got proof that this person receives mail at ``email``: an invitation
    # accepted, a verification link followed (with the account's password), or an external
    # provider's verified email that made the account. None: no proof, so no external
    # identity is linked to the account by its email.
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailedLink:
    """The columns of a single-use, expiring link emailed to an account's address.

    Only a hash of the token is kept: the token itself travels once, sealed in the message
    that emails it and readable only in the email.
    """

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))  # where it was sent (the account's address, then)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailVerification(EmailedLink, ManagementBase):
    """A link that proves an account's address."""

    __tablename__ = "email_verifications"


class PasswordReset(EmailedLink, ManagementBase):
    """A link that sets a new password for an account whose owner lost it: short-lived,
    valid only while the account still has the address it was sent to."""

    __tablename__ = "password_resets"


class AuthSession(ManagementBase):
    """One signed-in session: a family of rotating refresh tokens and the access tokens
    issued from them (every token carries the session id as ``sid``).

    ``refresh_jti`` is the one refresh token that may be used next; presenting any other
    token of the family means it was stolen and replayed, and revokes the session.
    """

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_live_user", "user_id",
                            postgresql_where=text("revoked_at IS NULL")),
                      Index("ix_auth_sessions_revoked_at", "revoked_at",
                            postgresql_where=text("revoked_at IS NOT NULL")),
                      Index("ix_auth_sessions_parent_id", "parent_id",
                            postgresql_where=text("parent_id IS NOT NULL")))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))
    method: Mapped[str] = mapped_column(String(20))  # "password" or "oidc"
    refresh_jti: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(100))
    # The session this one was opened from by a tenant switch (which proved nothing new):
    # it ends when that one does, and is revoked with it.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth_sessions.id"))


class ExternalIdentity(ManagementBase):
    """An account at an external OpenID Connect provider, linked to a user."""

    __tablename__ = "external_identities"

    issuer: Mapped[str] = mapped_column(Text, primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = created_at_column()
