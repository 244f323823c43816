"""Running one delivery exactly once in effect (DESIGN §4.3).

``handle`` opens a session on the database the handler writes to, records the delivery
in that database's inbox, runs the handler and commits both together. A redelivered
message finds its inbox row and is skipped. New messages the handler emits go through
the same transaction's outbox and are returned for publishing after the commit.

The outbox row is marked completed in that same transaction when it lives in the same
database (on a queue under admission control, the slot it frees goes to the tenant's next
parked delivery in that transaction too: domain.messaging.fairness). When it lives in
another one, the inbox row is the record: the relay confirms the delivery from it once the
lease has passed, instead of every message paying a second transaction on its origin
(DESIGN §4.3-4.4).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy.orm import Session

from domain.db.provider import DataProvider
from domain.messaging import bus, fairness, inbox, outbox
from domain.messaging.contracts import Contract
from domain.messaging.outbox import Envelope


@dataclass
class HandlerContext:
    """What a handler gets besides its message: the session and the envelope's ids."""

    session: Session
    envelope: Envelope
    provider: DataProvider
    # The process's adapters a handler may need (mailer, storage, public URL, ...).
    ports: Mapping[str, Any] = field(default_factory=dict)
    emitted: list[Envelope] = field(default_factory=list)
    # True when the runner will not retry this delivery after a Transient error (its last
    # retry): a handler that calls outside the database then settles instead of raising.
    last_attempt: bool = False

    @property
    def tenant_id(self) -> uuid.UUID | None:
        """The tenant the message acts for."""
        return uuid.UUID(self.envelope.tenant_id) if self.envelope.tenant_id else None

    def emit(self, message: Contract, tenant_id: uuid.UUID | None = None) -> None:
        """Record a new message in this transaction's outbox, for ``tenant_id`` or, by
        default, the tenant this one acts for (for no tenant, a message of no tenant)."""
        if tenant_id is None and not message.tenantless():
            tenant_id = self.tenant_id
        self.emitted += outbox.record(self.session, message, tenant_id=tenant_id,
                                      correlation_id=self.envelope.correlation_id)


Handler = Callable[[HandlerContext, Contract], None]
C = TypeVar("C", bound=Contract)
# Says why a message must not be acted on (e.g. the user it acts for was cut off), or None.
Guard = Callable[[Contract], "str | None"]


@dataclass(frozen=True)
class Outcome:
    """What handling a delivery did."""

    duplicate: bool
    emitted: list[Envelope]
    refused: str | None = None


def handle(provider: DataProvider, envelope: Envelope, contract: type[Contract],
           target: bus.Target, handler: Handler, *, ports: Mapping[str, Any] | None = None,
           guard: Guard | None = None, last_attempt: bool = False) -> Outcome:
    """Run ``handler`` for ``envelope`` once in effect; return what it emitted.

    When ``guard`` refuses the message, the delivery is recorded as handled without
    running the handler (it would be refused again on every redelivery).
    """
    message = message_of(envelope, contract)
    delivery = uuid.UUID(envelope.id)
    tenant_id = uuid.UUID(envelope.tenant_id) if envelope.tenant_id else None
    refused = guard(message) if guard is not None else None
    if target == "management":
        session = provider.management()
    else:
        if tenant_id is None:
            raise ValueError(f"{envelope.type} has no tenant; {envelope.handler} needs one")
        session = provider.tenant(tenant_id)
    same_database = session.info["db_key"] == envelope.origin
    with session:
        if not inbox.claim(session, delivery, envelope.handler, tenant_id):
            session.rollback()
            _complete_at_origin(provider, envelope)
            return Outcome(duplicate=True, emitted=[])
        ctx = HandlerContext(session, envelope, provider, ports or {}, last_attempt=last_attempt)
        if refused is None:
            handler(ctx, message)
        fair = fairness.queue_of(envelope.handler) in fairness.limits_of(session)
        if same_database:
            outbox.mark_completed(session, delivery)
            if fair and tenant_id is not None:  # the freed slot goes to the tenant's next parked one
                outbox.release_parked(session, fairness.queue_of(envelope.handler), [tenant_id])
        pending = outbox.take_pending(session)
        session.commit()
    if fair and not same_database and tenant_id is not None:
        pending += _release_at_origin(provider, envelope, tenant_id)
    return Outcome(duplicate=False, emitted=pending, refused=refused)


def message_of(envelope: Envelope, contract: type[C]) -> C:
    """The delivery's message; PermissionError when its payload names another tenant than the
    one the delivery is recorded and routed for, or when a message of no tenant (its contract
    has no ``tenant_id``: an account's own, such as its password reset) is recorded for one."""
    message = contract.parse(envelope.version, envelope.payload)
    tenant_id = uuid.UUID(envelope.tenant_id) if envelope.tenant_id else None
    if tenant_id is not None and message.tenantless():
        raise PermissionError(f"{envelope.type} {envelope.id} is delivered as tenant {tenant_id} "
                              "and is no tenant's message")
    if (named := message.other_tenant(tenant_id)) is not None:
        # Routed by the envelope, acted on by the payload: never both, and never run. Not
        # transient, so the relay buries it where operators see it.
        raise PermissionError(f"{envelope.type} {envelope.id} is delivered as tenant {tenant_id} "
                              f"and names tenant {named}")
    return cast(C, message)


def accept(provider: DataProvider, envelope: Envelope, contract: type[C]) -> C:
    """``message_of`` for a task that runs a delivery itself instead of through ``handle`` (a
    promotion, an import): a refusal is kept on the delivery's outbox row, as the task base
    keeps a handler's, and raised."""
    try:
        return message_of(envelope, contract)
    except PermissionError as exc:
        note_failure(provider, envelope, f"PermissionError: {exc}")
        raise


def _release_at_origin(provider: DataProvider, envelope: Envelope, tenant_id: uuid.UUID) -> list[Envelope]:
    # Handled on another database than the one that admitted it: complete it there too, so
    # its slot frees now rather than when the relay confirms it from the inbox.
    with provider.unscoped(envelope.origin) as origin:
        outbox.mark_completed(origin, uuid.UUID(envelope.id))
        outbox.release_parked(origin, fairness.queue_of(envelope.handler), [tenant_id])
        released = outbox.take_pending(origin)
        origin.commit()
    return released


def _complete_at_origin(provider: DataProvider, envelope: Envelope) -> None:
    # A copy of a delivery already handled: confirm it at its origin so the relay stops.
    with provider.unscoped(envelope.origin) as origin:
        outbox.mark_completed(origin, uuid.UUID(envelope.id))
        origin.commit()


def note_failure(provider: DataProvider, envelope: Envelope, error: str) -> None:
    """Keep a handler's last error on its outbox row for operators."""
    with provider.unscoped(envelope.origin) as origin:
        outbox.record_failure(origin, uuid.UUID(envelope.id), error)
        origin.commit()


def confirm_delivery(provider: DataProvider, envelope: Envelope) -> None:
    """Mark a delivery completed at its origin, for a task that keeps its own record of
    the work instead of the inbox (a long procedure such as a promotion)."""
    _complete_at_origin(provider, envelope)
