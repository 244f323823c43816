"""Tables of the assets context: an asset per file (tenant databases) and each tenant's
storage policy (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, TenantBase, TenantScoped, created_at_column
from domain.translations.translator import N_

# awaiting_upload: an upload link was handed out, no confirm yet (never processed).
# uploaded -> processing -> ready | rejected; deleted by its owner, an admin or clean-up.
STATUSES = ("awaiting_upload", "uploaded", "processing", "ready", "rejected", "deleted")
WORKING = ("uploaded", "processing")  # confirmed or received, and not yet ready or rejected
# How pages name each status (translated when shown; a unit test holds it to STATUSES).
STATUS_LABELS: dict[str, str] = {
    "awaiting_upload": N_("awaiting upload"), "uploaded": N_("uploaded"), "processing": N_("processing"),
    "ready": N_("ready"), "rejected": N_("rejected"), "deleted": N_("deleted"),
}
# The assets whose bytes count against the quota: what is stored or about to be.
LIVE = ("awaiting_upload", "uploaded", "processing", "ready")
FINAL = ("ready", "rejected", "deleted")


class Asset(TenantScoped, TenantBase):
    """One file a member uploaded, where its processing stands and what it produced.

    Its bytes live on the storage under ``tenants/<tenant>/assets/<id>/`` (``original``,
    ``upload`` while a presigned upload waits for its confirm, ``renditions/...``); the
    user's file name is kept for display and downloads only.
    """

    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint("status IN ('awaiting_upload', 'uploaded', 'processing', 'ready', 'rejected', "
                        "'deleted')", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        Index("ix_assets_tenant_status", "tenant_id", "status"),
        # What beat's clean-up looks for: deleted or rejected assets whose files remain.
        Index("ix_assets_unpurged", "status", postgresql_where=text("purged_at IS NULL AND "
                                                                    "status IN ('deleted', 'rejected')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(20))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(255))
    declared_type: Mapped[str] = mapped_column(String(255))
    sniffed_type: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(20))
    # How the bytes came: "stream" (through the web tier) or "presigned" (to the storage).
    via: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    renditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When clean-up removed its files (deleted, rejected or never-confirmed assets).
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AssetPolicy(ManagementBase):
    """A tenant's storage quota and the kinds of file it refuses (defaults when absent)."""

    __tablename__ = "asset_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                                 primary_key=True)
    # None: the ASSET_QUOTA_BYTES default.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # None: the default (executables refused).
    blocked_kinds: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
