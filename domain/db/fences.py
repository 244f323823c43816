"""Fences: a tenant whose data has moved out of a database is fenced there.

Promotion writes the fence into the trial database, and offboarding into the tenant's
database (trial or dedicated), while it holds the tenant's write lock. Every tenant write
session takes that lock (shared) on its database and then looks for the fence, so a writer
that still holds the old route can never write rows that the move would leave behind (see
``provider``).
"""
from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, Table, Text, Uuid, func

from domain.db.base import NAMING

metadata = MetaData(naming_convention=NAMING)

tenant_fences = Table(
    "tenant_fences", metadata,
    Column("tenant_id", Uuid, primary_key=True),
    Column("moved_to", Text, nullable=False),  # the database key the tenant moved to
    Column("fenced_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
