"""Tables of the IAM context (management database; tenant rows carry tenant_id)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Boolean, DateTime, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column


class Role(ManagementBase):
    """A named set of permissions within one tenant."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    permissions: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class Membership(ManagementBase):
    """A user holds a role in a tenant."""

    __tablename__ = "memberships"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id"), primary_key=True)


class TenantUser(ManagementBase):
    """A user's standing in a tenant: active, or deactivated by a tenant admin.

    Roles are granted by ``Membership`` rows; a deactivated member keeps them (so that
    reactivation restores them) but holds no permission while deactivated.
    """

    __tablename__ = "tenant_users"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = created_at_column()


class Invitation(ManagementBase):
    """An invitation to join a tenant with a role; single use, expires.

    Only a hash of the token is kept: the token itself travels once, in the email.
    """

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))


class Reseller(ManagementBase):
    """A partner that sells the platform; manages the subscriptions of its own tenants."""

    __tablename__ = "resellers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = created_at_column()


class ResellerAdmin(ManagementBase):
    """A user who administers a reseller (the reseller-admin role)."""

    __tablename__ = "reseller_admins"

    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
