"""Tables of the notifications context.

In every tenant database: ``notices`` (one per event and recipient, with what became of its
email). In the management database: ``email_deliveries`` (one per event and recipient
address, written and committed before the email is sent: the idempotency record, the
throttle's count and each day's digest claim), ``undeliverable_addresses`` (bounces,
complaints, refused addresses), ``notification_preferences`` and ``notification_settings``
(per user), and ``tenant_branding``.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, TenantBase, TenantScoped, created_at_column
from domain.translations.translator import N_

# What became of a notice's email (None: no email was wanted). ``queued``: handed to the
# sending stage when the notice was written; its delivery row says what became of it since.
EMAIL_STATES = ("queued", "sent", "failed", "throttled", "suppressed", "unconfirmed")
# How the notices page names each state (translated when shown; a unit test holds it to EMAIL_STATES).
EMAIL_STATE_LABELS: dict[str, str] = {
    "queued": N_("Email on its way"),
    "sent": N_("Email sent"),
    "failed": N_("The email could not be sent"),
    "throttled": N_("Email held for your daily summary"),
    "suppressed": N_("Email not sent: the address does not accept mail"),
    "unconfirmed": N_("The email may not have arrived"),
}
# Delivery rows that count against a recipient's hourly rate: sent, or on their way.
COUNTED = ("queued", "sending", "retry", "sent", "unconfirmed")


class Notice(TenantScoped, TenantBase):
    """One in-app notice for one user; one per (event, recipient)."""

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        # The list (newest first) and the unread count of one user.
        Index("ix_notices_user_created", "user_id", "created_at"),
        Index("ix_notices_unread", "user_id", postgresql_where=text("read_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    category: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = created_at_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_status: Mapped[str | None] = mapped_column(String(20))
    email_error: Mapped[str | None] = mapped_column(Text)


class EmailDelivery(ManagementBase):
    """One email to one address for one event, recorded before it is sent.

    ``state``: ``queued`` (recorded with its sealed ``payload``, waiting for the sending stage
    from ``due_at``), ``sending`` (an attempt started: if a sender finds it so after
    ``sending.STALE_AFTER``, that attempt died and the email may have gone: not sent again
    unless the transport is idempotent), ``retry`` (the last attempt certainly sent nothing;
    due again at ``due_at``), ``sent``, ``failed`` (refused for good), ``throttled`` (past the
    recipient's hourly rate: left to the digest), ``suppressed`` (undeliverable address),
    ``unconfirmed`` (may or may not have gone; never re-sent: at most once).
    ``claimed_until``: a sender holds the row in its batch until then.
    """

    __tablename__ = "email_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient"),
        # The hourly rate counts a recipient's rows in these states only: the index holds just
        # them, so the count stays as small as the rate however many were throttled.
        Index("ix_email_deliveries_counted", "recipient", "created_at",
              postgresql_where=text(f"state IN {COUNTED!r}")),
        Index("ix_email_deliveries_provider_id", "provider_id",
              postgresql_where=text("provider_id IS NOT NULL")),
        Index("ix_email_deliveries_user_category", "user_id", "category", "created_at"),
        # What the sending stage claims: rows due to be sent, oldest first.
        Index("ix_email_deliveries_due", "due_at", postgresql_where=text("state IN ('queued', 'retry')")),
        CheckConstraint("state IN ('queued', 'sending', 'retry', 'sent', 'failed', 'throttled', "
                        "'suppressed', 'unconfirmed')", name="state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    recipient: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    category: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()
    attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The email itself (sealed: an invitation's body carries its token) until it is settled.
    payload: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UndeliverableAddress(ManagementBase):
    """An address that gets no more email: it bounced for good, complained, or was refused."""

    __tablename__ = "undeliverable_addresses"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))  # bounce | complaint | refused
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class NotificationPreference(ManagementBase):
    """A user's choice for one category (no row: email and in-app both on)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean, default=True)
    in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NotificationSettings(ManagementBase):
    """A user's choices beyond categories: the daily digest (no row: no digest)."""

    __tablename__ = "notification_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantBranding(ManagementBase):
    """How a tenant's emails present themselves (no row: the tenant's name, no logo)."""

    __tablename__ = "tenant_branding"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    sender_address: Mapped[str | None] = mapped_column(String(320))
    logo_url: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
