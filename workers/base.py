"""The task base: every message handler runs through ``domain_task`` (EXAMPLES §4).

It does the plumbing once: late acks and reject on worker loss (from the app config),
JSON envelopes in, the inbox check and the effects in one transaction
(domain.messaging.handling), publishing what the handler emitted after the commit,
retrying transient errors (database hiccups, ``domain.errors.Transient``) with backoff
and jitter, giving up on a delivery redelivered too often (``workers.redelivery``: one that
kills its worker would otherwise loop forever), telling the handler when it runs its last
retry (``ctx.last_attempt``), and recording other failures on the outbox row, where the
relay re-sends them until they are dead.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from domain.errors import Transient
from domain.identity import sessions as identity_sessions
from domain.messaging import bus, handling
from domain.messaging.contracts import Contract
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from workers import redelivery
from workers.publisher import publish

log = logging.getLogger(__name__)
# Database hiccups, and whatever a handler says may pass on a later try (a gateway down).
TRANSIENT = (OperationalError, Transient)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def retry_delay(retries: int, first: float, jitter: float | None = None) -> float:
    """Seconds before retry number ``retries + 1``: ``first``, then twice as long each time (at
    most a minute), plus up to ``first`` of random jitter (``jitter`` in [0, 1), drawn if None)."""
    if jitter is None:
        jitter = random.random()  # noqa: S311 - jitter, not a secret
    return min(first * 2 ** retries, 60.0) + first * jitter


def domain_task(*, contract: type[Contract]) -> Callable[[Callable[..., None]], Task]:
    """Turn ``fn(ctx, msg)`` into the Celery task ``tasks.<ctx>.<fn>`` for ``contract``."""

    def decorate(fn: Callable[[HandlerContext, Any], None]) -> Task:
        name = f"{fn.__module__}.{fn.__name__}"
        target = bus.target_of(name.removeprefix("tasks."))  # where it writes, from the bus table

        # No result: the outbox, inbox and the domain's own rows are the record, and storing
        # STARTED/SUCCESS states would cost two Redis writes per message.
        # Four retries (1+2+4+8 times TASK_RETRY_SECONDS) stay well inside a lease, so the
        # relay does not re-send a message that is only waiting for its retry.
        @shared_task(name=name, bind=True, max_retries=4, ignore_result=True)
        def run(self: Task, envelope: dict[str, Any]) -> str:
            message = Envelope.from_dict(envelope)
            if redelivery.looping(self, message):  # it killed its worker every time: stop the loop
                return "given up"
            try:
                provider = self.app.provider
                outcome = handling.handle(
                    provider, message, contract, target, fn, ports=self.app.ports,
                    guard=lambda msg: identity_sessions.actor_refusal(provider, msg),
                    last_attempt=self.request.retries >= self.max_retries)
            except Exception as exc:
                if _is_transient(exc) and self.request.retries < self.max_retries:
                    delay = retry_delay(self.request.retries, self.app.provider.settings.task_retry_seconds)
                    raise self.retry(exc=exc, countdown=delay) from exc
                # Out of retries or not transient: the relay re-sends it until it is dead,
                # and operators see why.
                try:
                    handling.note_failure(self.app.provider, message, f"{type(exc).__name__}: {exc}")
                except SQLAlchemyError:
                    log.warning("could not record the failure of %s", message.id, exc_info=True)
                raise
            if outcome.refused:
                log.warning("%s refused %s: %s", name, message.id, outcome.refused)
            publish(self.app, outcome.emitted)
            return "duplicate" if outcome.duplicate else "done"

        run.__doc__ = fn.__doc__
        return run

    return decorate
