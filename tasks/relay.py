"""The relay job (queue ``relay``): re-send overdue outbox messages from every database."""
from __future__ import annotations

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
