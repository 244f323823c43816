"""Tables of the tenancy context (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column


class Tenant(ManagementBase):
    """A customer organisation and where its data lives."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="trial")
    plan: Mapped[str] = mapped_column(String(40), default="trial")
    placement_server: Mapped[str | None] = mapped_column(Text)
    database_name: Mapped[str | None] = mapped_column(Text)
    # The reseller that sold this tenant, whose admins manage its subscription.
    reseller_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resellers.id"), index=True)
    created_at: Mapped[datetime] = created_at_column()


class Signup(ManagementBase):
    """A trial signup: the job row the status URL reads (provisioning steps)."""

    __tablename__ = "signups"
    # One live signup per email: a second one is refused at once (409), by the database.
    __table_args__ = (Index("uq_signups_live_email", "admin_email", unique=True,
                            postgresql_where=text("status IN ('pending', 'provisioned')")),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), unique=True)
    admin_name: Mapped[str] = mapped_column(String(200))
    admin_email: Mapped[str] = mapped_column(String(320))
    # The password sealed by identity.PasswordSealer until the worker hashes it; then None.
    sealed_password: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    provisioned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TenantMigration(ManagementBase):
    """The outcome of upgrading one tenant database in a migrate-all run."""

    __tablename__ = "tenant_migrations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    database: Mapped[str] = mapped_column(Text, index=True)
    revision_before: Mapped[str | None] = mapped_column(String(64))
    revision_after: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = created_at_column()
