"""Declarative bases for the management and tenant databases, and the TenantScoped mixin.

Management tables live in ``ManagementBase.metadata``; tables that exist in every tenant
database (the shared trial database and each dedicated one) live in
``TenantBase.metadata``. Every tenant table mixes in ``TenantScoped``: the data provider
filters it by ``tenant_id`` on every ORM query and Row Level Security backs that up.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, Uuid, func
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class ManagementBase(DeclarativeBase):
    """Tables of the management database: tenants, users, roles, purchases, ..."""

    metadata = MetaData(naming_convention=NAMING)


class TenantBase(DeclarativeBase):
    """Tables present in every tenant database (trial and dedicated)."""

    metadata = MetaData(naming_convention=NAMING)


class TenantScoped:
    """Mixin for rows that belong to one tenant; filtered automatically by the provider."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(Uuid, nullable=False, index=True)


def created_at_column() -> Mapped[datetime]:
    """A non-null creation timestamp set by the database."""
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
