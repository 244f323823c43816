"""Tasks of the tenancy context (queue ``tenancy``)."""
from __future__ import annotations

import uuid
from typing import Any

from celery import shared_task

from domain.db.base import utcnow
from domain.messaging import handling
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import PromoteTenantV1, ProvisionTenantV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from domain.tenancy import export, handlers, migrations, promotion, trials
from workers.base import domain_task
from workers.publisher import publish


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


@domain_task(contract=PurchaseCompletedV1)
def apply_plan(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Give a tenant the plan or add-on it bought (a paid plan promotes a trial tenant)."""
    handlers.apply_plan(ctx, msg)


@domain_task(contract=PurchaseRefundedV1)
def revert_plan(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Undo the plan change of a refunded purchase."""
    handlers.revert_plan(ctx, msg)


def _run_promotion(task: Any, promotion_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> dict[str, Any]:
    result = promotion.run(task.app.provider, promotion_id, tenant_id=tenant_id,
                           report=lambda p: task.update_state(state="PROGRESS", meta=p.as_dict()))
    publish(task.app, result.emitted)
    return {**result.progress.as_dict(), "busy": result.busy}


# A big tenant's promotion (its copy) or archive takes longer than the default limits: up to
# an hour, still inside the broker's visibility timeout (config/celery.py).
LONG_LIMITS = {"soft_time_limit": 3300, "time_limit": 3500}


# Its own task, not a domain_task: a promotion outlives one transaction, and keeps its own
# record (the promotion row and its steps) instead of the inbox.
@shared_task(name="tasks.tenancy.promote_tenant", bind=True, **LONG_LIMITS)
def promote_tenant(self: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) a promotion; progress shows as the task's PROGRESS state (Flower)."""
    message = Envelope.from_dict(envelope)
    command = handling.accept(self.app.provider, message, PromoteTenantV1)  # its own tenant's only
    try:
        return _run_promotion(self, command.promotion_id, command.tenant_id)
    finally:
        # Done, failed (beat resumes it, after its resume delay), or another run holds it:
        # the command is delivered. Only a run that dies leaves it to the relay as well.
        handling.confirm_delivery(self.app.provider, message)


@shared_task(name="tasks.tenancy.resume_promotion", bind=True, **LONG_LIMITS)
def resume_promotion(self: Any, promotion_id: str) -> dict[str, Any]:
    """Run a recorded promotion again (beat, or an operator's re-run)."""
    return _run_promotion(self, uuid.UUID(promotion_id))


@shared_task(name="tasks.tenancy.resume_promotions", bind=True)
def resume_promotions(self: Any) -> list[str]:
    """Beat: send a run for every unfinished promotion whose resume delay has passed (a busy
    one answers at once)."""
    with self.app.provider.management() as session:
        ids = [str(i) for i in promotion.due_for_resume(
            session, now=utcnow(), base_seconds=self.app.provider.settings.promotion_resume_seconds)]
    for promotion_id in ids:
        resume_promotion.delay(promotion_id)
    return ids


# Exports and offboardings: plain tasks taking the job's id; the tenant_exports row is the
# record, the run is idempotent and locked per job, and beat re-sends what was lost.


def _run_export(task: Any, export_id: str) -> dict[str, Any]:
    status = export.run(task.app.provider, task.app.ports["storage"], uuid.UUID(export_id),
                        progress=lambda step, percent, details: task.update_state(
                            state="PROGRESS", meta={"step": step, "percent": percent, **details}))
    return status.as_dict()


@shared_task(name="tasks.tenancy.export_tenant", bind=True, **LONG_LIMITS)
def export_tenant(self: Any, export_id: str) -> dict[str, Any]:
    """Write every row of a tenant into an archive on the storage."""
    return _run_export(self, export_id)


@shared_task(name="tasks.tenancy.offboard_tenant", bind=True, **LONG_LIMITS)
def offboard_tenant(self: Any, export_id: str) -> dict[str, Any]:
    """Export a tenant, then delete its data and stop routing to it."""
    return _run_export(self, export_id)


@shared_task(name="tasks.tenancy.resume_exports", bind=True)
def resume_exports(self: Any, older_than: float = 60.0) -> list[str]:
    """Beat: send again every unfinished export or offboarding that no runner holds."""
    jobs = export.resumable(self.app.provider, older_than=older_than)
    for export_id, kind in jobs:
        task = offboard_tenant if kind == "offboard" else export_tenant
        task.apply_async(args=[str(export_id)], task_id=str(export_id))
    return [str(export_id) for export_id, _ in jobs]


@shared_task(name="tasks.tenancy.remind_trials", bind=True)
def remind_trials(self: Any) -> int:
    """Beat: tell the admins of each trial ending soon, once per tenant."""
    settings = self.app.settings
    emitted = trials.remind_trials(self.app.provider, now=utcnow(), trial_days=settings.trial_days,
                                   reminder_days=settings.trial_reminder_days)
    publish(self.app, emitted)
    return len(emitted)
