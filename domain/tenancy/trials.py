"""Trial reminders: beat tells a trial tenant's admins, once, that its trial ends soon.

A trial lasts ``TRIAL_DAYS`` from the tenant's creation. ``remind_trials`` finds the trial
tenants whose trial ends within ``TRIAL_REMINDER_DAYS`` and has not ended, and for each one
claims its row in ``trial_reminders`` and records a ``TrialEnding`` event in the same
transaction: a second run (two beats) finds the row and emits nothing.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column
from domain.db.provider import DataProvider
from domain.messaging import outbox
from domain.messaging.contracts.tenancy import TrialEndingV1
from domain.messaging.outbox import Envelope
from domain.tenancy.models import Tenant


class TrialReminder(ManagementBase):
    """The reminder a trial tenant was sent (one per tenant)."""

    __tablename__ = "trial_reminders"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


def remind_trials(provider: DataProvider, *, now: datetime, trial_days: int,
                  reminder_days: int) -> list[Envelope]:
    """Record a TrialEnding for each trial ending within ``reminder_days``; the envelopes to publish."""
    length = timedelta(days=trial_days)
    with provider.management() as session:
        due = session.execute(select(Tenant.id, Tenant.name, Tenant.created_at).where(
            Tenant.status == "trial", Tenant.plan == "trial",
            Tenant.created_at <= now - length + timedelta(days=reminder_days),
            Tenant.created_at > now - length,
            Tenant.id.not_in(select(TrialReminder.tenant_id))).order_by(Tenant.created_at)).all()
        for tenant_id, name, created_at in due:
            claimed = session.execute(
                insert(TrialReminder).values(tenant_id=tenant_id, ends_at=created_at + length)
                .on_conflict_do_nothing(index_elements=["tenant_id"]).returning(TrialReminder.tenant_id)).first()
            if claimed is not None:
                outbox.record(session, TrialEndingV1(tenant_id=tenant_id, tenant_name=name,
                                                     ends_at=created_at + length),
                              tenant_id=tenant_id, correlation_id=None)
        pending = outbox.take_pending(session)
        session.commit()
    return pending
