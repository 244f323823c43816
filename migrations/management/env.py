"""Alembic environment of the management database."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from migrations.metadata import LOCK_KEY, MANAGEMENT

target_metadata = MANAGEMENT


def run() -> None:
    """Run migrations online against the configured URL."""
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          transaction_per_migration=False)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            context.run_migrations()
    engine.dispose()


run()
