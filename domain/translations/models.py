"""Tables of the translations context (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column


class TranslationOverride(ManagementBase):
    """A tenant's own text for one product string in one locale."""

    __tablename__ = "translation_overrides"
    __table_args__ = (UniqueConstraint("tenant_id", "locale", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserLocale(ManagementBase):
    """The language a user chose for pages and emails."""

    __tablename__ = "user_locales"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    locale: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
