"""Alembic environment of the management database."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import domain.iam.models
import domain.identity.models
import domain.tenancy.models  # noqa: F401
from domain.db.base import ManagementBase
from domain.messaging.tables import metadata as messaging_metadata

target_metadata = [ManagementBase.metadata, messaging_metadata]


def run() -> None:
    """Run migrations online against the configured URL."""
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
