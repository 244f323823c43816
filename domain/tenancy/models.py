"""Tables of the tenancy context (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column
from domain.translations.translator import N_

# trial (in the shared trial database) -> promoting -> dedicated (in a database of its own);
# suspended (DESIGN section 3; nothing suspends a tenant yet); deleted (offboarded).
STATUSES = ("trial", "promoting", "dedicated", "suspended", "deleted")
# How pages name each status (translated when shown; a unit test holds it to STATUSES).
STATUS_LABELS: dict[str, str] = {
    "trial": N_("trial"), "promoting": N_("moving to its own database"),
    "dedicated": N_("with its own database"), "suspended": N_("suspended"), "deleted": N_("deleted"),
}


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


class Promotion(ManagementBase):
    """A trial tenant's move to a database of its own: a persisted, step-by-step procedure.

    ``step`` is the last step done (see ``domain.tenancy.promotion.STEPS``); a re-run
    resumes after it. At most one promotion per tenant is pending or running.
    """

    __tablename__ = "promotions"
    __table_args__ = (Index("uq_promotions_active_tenant", "tenant_id", unique=True,
                            postgresql_where=text("status IN ('pending', 'running')")),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|running|completed|failed
    step: Mapped[str] = mapped_column(String(20), default="requested")
    percent: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(20), default="operator")  # operator|purchase
    purchase_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    server: Mapped[str | None] = mapped_column(Text)
    database: Mapped[str | None] = mapped_column(Text)
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_copied: Mapped[int] = mapped_column(BigInteger, default=0)
    # Per table: {"rows": n, "checksum": "..."} as verified on both databases.
    tables: Mapped[dict] = mapped_column(JSONB, default=dict)
    # How long the tenant's writes were held back (the copy-verify-switch window).
    write_stall_ms: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    switched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PlanChange(ManagementBase):
    """A plan or add-on a purchase gave a tenant; a refund reverts it."""

    __tablename__ = "plan_changes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    purchase_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # plan | addon
    product_code: Mapped[str] = mapped_column(String(60))
    plan_before: Mapped[str | None] = mapped_column(String(40))
    plan_after: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TenantExport(ManagementBase):
    """An operator's export (or offboarding) of a tenant: its rows as JSON Lines in an
    archive on the asset storage."""

    __tablename__ = "tenant_exports"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="export")  # export | offboard
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|running|completed|failed
    step: Mapped[str] = mapped_column(String(20), default="requested")
    storage_key: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # runs started
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
