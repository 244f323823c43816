"""The tables a tenant owns in a tenant database, in dependency order.

Read from the database itself (reflection) rather than from the models, so a table a
later revision adds is copied, exported and purged without touching this code. A table
belongs to tenants when it has a ``tenant_id`` column; fences are bookkeeping of the
database, not tenant data.
"""
from __future__ import annotations

from sqlalchemy import Connection, MetaData, Table

NOT_TENANT_DATA = frozenset({"tenant_fences", "alembic_version"})


def tenant_tables(connection: Connection) -> list[Table]:
    """Every tenant-owned table, parents before children (copy in this order, purge in reverse)."""
    metadata = MetaData()
    metadata.reflect(bind=connection)
    return [table for table in metadata.sorted_tables
            if "tenant_id" in table.c and table.name not in NOT_TENANT_DATA]
