"""Tasks of the publications context (queue ``publications``, in the default pool)."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from domain.db.base import utcnow
from domain.messaging.contracts.publications import PublishPublicationV1
from domain.messaging.handling import HandlerContext
from domain.publications import handlers, scheduling
from workers.base import domain_task
from workers.publisher import publish


@domain_task(contract=PublishPublicationV1)
def publish_publication(ctx: HandlerContext, msg: PublishPublicationV1) -> None:
    """Send a publication out to its audience."""
    handlers.publish_publication(ctx, msg)


@shared_task(name="tasks.publications.publish_due", bind=True)
def publish_due(self: Any) -> int:
    """Beat: claim the scheduled publications that are due and queue them (once each)."""
    emitted = scheduling.publish_due(self.app.provider, now=utcnow())
    publish(self.app, emitted)
    return len(emitted)
