"""Alembic environment of tenant databases (the trial database and each dedicated one).

After every upgrade the RLS-bound application role gets its grants on every table, so
a revision that adds a table needs nothing more than ``rls.enable`` for its policy.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from migrations.metadata import LOCK_KEY, TENANT
from migrations.tenant import rls

target_metadata = TENANT


def run() -> None:
    """Run migrations online against the configured URL."""
    role = context.config.attributes.get("tenant_role", "")
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            context.run_migrations()
            if role:
                rls.grant_role(connection, role)
    engine.dispose()


run()
