"""The relay job (queue ``relay``): re-send overdue outbox messages from every database; and
the hourly pruning of what is done (delivered messages, dead verification and password
reset links)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from domain.db.base import utcnow
from domain.identity import recovery
from domain.identity import services as identity
from domain.messaging import relay
from workers.publisher import publish, queue_probe


@shared_task(name="tasks.relay.sweep_outboxes", bind=True)
def sweep_outboxes(self: Any) -> dict[str, int]:
    """Re-send overdue messages, bury those out of attempts (beat)."""
    settings = self.app.settings
    report = relay.sweep_all(self.app.provider, lease_seconds=settings.message_lease_seconds,
                                max_attempts=settings.message_max_attempts,
                                batch=settings.relay_batch_size,
                                publish=lambda envelopes: publish(self.app, envelopes),
                                still_queued=queue_probe(self.app))
    return report


@shared_task(name="tasks.relay.prune_messages", bind=True)
def prune_messages(self: Any) -> dict[str, int]:
    """Delete delivered messages past their retention from every database, and the email
    verification and password reset links used or expired longer ago than that (beat)."""
    retention = timedelta(days=self.app.settings.message_retention_days)
    report = relay.prune_all(self.app.provider, retention=retention)
    dead_before = utcnow() - retention
    with self.app.provider.management() as session:
        report["verifications"] = identity.prune_email_verifications(session, older_than=dead_before)
        report["password_resets"] = recovery.prune_password_resets(session, older_than=dead_before)
        session.commit()
    return report
