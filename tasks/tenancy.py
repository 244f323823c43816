"""Tasks of the tenancy context (queue ``tenancy``)."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.messaging.handling import HandlerContext
from domain.tenancy import handlers, migrations
from workers.base import domain_task


@domain_task(contract=ProvisionTenantV1)
def provision_tenant(ctx: HandlerContext, msg: ProvisionTenantV1) -> None:
    """Provision a signed-up trial tenant."""
    handlers.provision_tenant(ctx, msg)


@shared_task(name="tasks.tenancy.migrate_tenant_database", bind=True)
def migrate_tenant_database(self: Any, database: str) -> dict[str, Any]:
    """Upgrade one tenant database to head and record the outcome."""
    return migrations.migrate_database(self.app.provider, database).as_dict()


@shared_task(name="tasks.tenancy.check_migration_drift", bind=True)
def check_migration_drift(self: Any) -> list[str]:
    """Report tenant databases not at head (beat)."""
    return migrations.drifted_databases(self.app.provider)
