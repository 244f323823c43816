"""The relay job (queue ``relay``): re-send overdue outbox messages from every database."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

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
    """Delete delivered messages past their retention from every database (beat)."""
    retention = timedelta(days=self.app.settings.message_retention_days)
    return relay.prune_all(self.app.provider, retention=retention)
