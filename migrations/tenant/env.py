"""Alembic environment of tenant databases (the trial database and each dedicated one).

After every upgrade the RLS-bound application role gets its grants on every table, so
a revision that adds a table needs nothing more than ``rls.enable`` for its policy.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import domain.notifications.models  # noqa: F401 - registers tables on TenantBase.metadata
from domain.db.base import TenantBase
from domain.messaging.tables import metadata as messaging_metadata
from migrations.tenant import rls

target_metadata = [TenantBase.metadata, messaging_metadata]


def run() -> None:
    """Run migrations online against the configured URL."""
    role = context.config.attributes.get("tenant_role", "")
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
            if role:
                rls.grant_role(connection, role)
    engine.dispose()


run()
