"""Tables of the employment context (tenant databases; every row carries tenant_id)."""
from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import TenantBase, TenantScoped, created_at_column
from domain.translations.translator import N_

STATUSES = ("active", "on_leave", "left")
# How pages name each code (translated when shown; a unit test holds each mapping to its codes).
STATUS_LABELS: dict[str, str] = {"active": N_("active"), "on_leave": N_("on leave"), "left": N_("left")}
# An import runs pending -> running -> completed | failed, through its phases in this order.
IMPORT_STATUSES = ("pending", "running", "completed", "failed")
IMPORT_STATUS_LABELS: dict[str, str] = {
    "pending": N_("pending"), "running": N_("running"), "completed": N_("completed"), "failed": N_("failed"),
}
IMPORT_PHASES = ("employees", "managers", "done")
IMPORT_PHASE_LABELS: dict[str, str] = {
    "employees": N_("employees"), "managers": N_("managers"), "done": N_("done"),
}


def _updated_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class JobType(TenantScoped, TenantBase):
    """A kind of job (Engineer, Nurse, ...), named once per tenant."""

    __tablename__ = "job_types"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = created_at_column()


class OrgUnit(TenantScoped, TenantBase):
    """A unit of the organisation; units form a tree through ``parent_id``."""

    __tablename__ = "org_units"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # Deferred: a tenant's units are copied (promotion) in any order, children maybe first.
    # SET NULL: rows purged in batches may take a parent before its children.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("org_units.id", ondelete="SET NULL", deferrable=True, initially="DEFERRED"),
        index=True)
    created_at: Mapped[datetime] = created_at_column()


class Employee(TenantScoped, TenantBase):
    """A person employed by the tenant; the work email is unique within the tenant."""

    __tablename__ = "employees"
    __table_args__ = (
        UniqueConstraint("tenant_id", "work_email"),
        CheckConstraint("end_date IS NULL OR start_date IS NULL OR end_date >= start_date",
                        name="ends_after_start"),
        CheckConstraint("status IN ('active', 'on_leave', 'left')", name="status"),
        Index("ix_employees_tenant_name", "tenant_id", "name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    work_email: Mapped[str] = mapped_column(String(320))  # stored lower-case
    job_type_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("job_types.id"), index=True)
    org_unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = _updated_at_column()


class ImportJob(TenantScoped, TenantBase):
    """A bulk import of employees: the uploaded file and where its run stands.

    ``rows_done`` (employees) and ``managers_done`` (reporting lines) are the checkpoints:
    each batch moves them in the same transaction as its effects, so a run that dies
    resumes after the last committed batch and no batch counts twice.
    """

    __tablename__ = "import_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'running', 'completed', 'failed')", name="status"),
        CheckConstraint("phase IN ('employees', 'managers', 'done')", name="phase"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text, deferred=True)  # the CSV, as uploaded (UTF-8)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    phase: Mapped[str] = mapped_column(String(20), default="employees")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    managers_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)  # rows with a problem
    edges: Mapped[int] = mapped_column(Integer, default=0)  # reporting lines written or moved
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = _updated_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportProblem(TenantScoped, TenantBase):
    """Why one line of an import's file was not (fully) applied."""

    __tablename__ = "import_problems"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("import_jobs.id", ondelete="CASCADE"),
                                              primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    field: Mapped[str] = mapped_column(String(40), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
