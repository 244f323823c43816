"""Tables of the publications context (tenant databases; every row carries tenant_id)."""
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
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import TenantBase, TenantScoped, created_at_column
from domain.translations.translator import N_

# draft -> scheduled (publish_at in the future) -> publishing -> published | failed;
# draft -> publishing at once. A scheduled one can go back to draft.
STATUSES = ("draft", "scheduled", "publishing", "published", "failed")
# How pages name each status (translated when shown; a unit test holds it to STATUSES).
STATUS_LABELS: dict[str, str] = {
    "draft": N_("draft"), "scheduled": N_("scheduled"), "publishing": N_("publishing"),
    "published": N_("published"), "failed": N_("failed"),
}
EDITABLE = ("draft", "scheduled", "failed")  # failed: nothing went out; fix it and publish again
AUDIENCES = ("everyone", "org_unit", "people")


class Publication(TenantScoped, TenantBase):
    """One publication: what it says, to whom, and where publishing it stands.

    The audience is kept as asked (everyone, an org unit with or without its sub-units, a
    list of employee ids) and resolved to people only when it goes out; ``recipients``
    (people reached) and ``notified`` (of them, those with an account) are counted then.
    """

    __tablename__ = "publications"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'scheduled', 'publishing', 'published', 'failed')",
                        name="status"),
        CheckConstraint("audience_kind IN ('everyone', 'org_unit', 'people')", name="audience_kind"),
        CheckConstraint("status <> 'scheduled' OR publish_at IS NOT NULL", name="scheduled_has_time"),
        Index("ix_publications_tenant_created", "tenant_id", "created_at"),
        # What beat looks for in every tenant database: scheduled ones that are due.
        Index("ix_publications_due", "publish_at", postgresql_where=text("status = 'scheduled'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown, as written
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised HTML of ``body``
    status: Mapped[str] = mapped_column(String(20), default="draft")
    audience_kind: Mapped[str] = mapped_column(String(20), default="everyone")
    audience_unit_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    audience_sub_units: Mapped[bool] = mapped_column(Boolean, default=False)
    audience_people: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), default=list)
    attachments: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), default=list)  # asset ids
    publish_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    author_name: Mapped[str] = mapped_column(String(200))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    notified: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Section(TenantScoped, TenantBase):
    """A section of a publication: a heading and a Markdown body, at its position (0, 1, ...)."""

    __tablename__ = "publication_sections"
    __table_args__ = (
        # Deferred: a reorder moves every position in one transaction.
        UniqueConstraint("publication_id", "position", deferrable=True, initially="DEFERRED"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    publication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = created_at_column()


class Delivery(TenantScoped, TenantBase):
    """A publication reached one employee: the read receipt (``read_at``, set once).

    ``user_id`` is the employee's account in the tenant when it went out (None: no
    account, counted as a recipient without a notice), or the account whose email was the
    employee's work email when it first opened it: the one account that reads it.
    """

    __tablename__ = "publication_deliveries"
    __table_args__ = (
        Index("ix_publication_deliveries_reader", "tenant_id", "employee_id"),
        Index("ix_publication_deliveries_user", "user_id"),
    )

    publication_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("publications.id", ondelete="CASCADE"), primary_key=True)
    employee_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = created_at_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
