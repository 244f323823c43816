"""The transactional outbox: messages are rows written with the change that raised them.

``record`` inserts one row per delivery (one for a command, one per subscriber for an
event) in the caller's transaction and remembers the envelopes on the session (or on the
``StatementWriter`` of a one-statement request). After the commit, the edge (web request,
task wrapper) hands ``take_pending`` to the publisher.
A row is due again ``lease`` seconds after it was written; the relay re-sends what is
still not completed by then (DESIGN §4).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from sqlalchemy import CTE, bindparam, insert, null, update
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.provider import Writes, gated_writes
from domain.db.sql import Sql, bound_insert, bound_params
from domain.messaging import bus, fairness
from domain.messaging.contracts import Contract
from domain.messaging.tables import outbox

PENDING_KEY = "outbox_pending"


@dataclass(frozen=True)
class Envelope:
    """What travels to a handler: ids, the contract payload, and where it came from."""

    id: str
    event_id: str
    type: str
    version: int
    handler: str
    payload: dict[str, Any]
    origin: str
    tenant_id: str | None
    correlation_id: str | None
    attempt: int = 0
    sent_at: float = 0.0  # epoch seconds of this copy's send, as recorded on the outbox row

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, the task's only argument (the payload is shared, not copied:
        ``dataclasses.asdict`` deep-copies, which cost more than the rest of a publish)."""
        return {field.name: getattr(self, field.name) for field in _ENVELOPE_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """Rebuild an envelope from a task argument."""
        return cls(**data)


_ENVELOPE_FIELDS = fields(Envelope)


def record(session: Session, message: Contract, *, tenant_id: uuid.UUID | None,
           correlation_id: str | None) -> list[Envelope]:
    """Write ``message`` to the outbox of the session's database, one row per delivery.

    A delivery to a queue under admission control that its tenant has no room for is
    written parked: it is published later, when a slot frees (domain.messaging.fairness).
    """
    rows, envelopes = prepare(session, message, tenant_id=tenant_id, correlation_id=correlation_id)
    if rows:
        parked = fairness.admit(session, rows)
        session.execute(insert(outbox), rows)
        remember(session, [e for e in envelopes if uuid.UUID(e.id) not in parked])
    return envelopes


def prepare(session: Session | Writes, message: Contract, *, tenant_id: uuid.UUID | None,
            correlation_id: str | None) -> tuple[list[dict[str, Any]], list[Envelope]]:
    """The outbox rows of ``message`` and their envelopes, for a caller that inserts the
    rows itself (e.g. in the same statement as its business row); call ``remember`` after."""
    if (named := message.other_tenant(tenant_id)) is not None:
        raise ValueError(f"{message.message_type} names tenant {named}, recorded for tenant {tenant_id}")
    if tenant_id is not None and message.tenantless():
        raise ValueError(f"{message.message_type} is no tenant's message, recorded for tenant {tenant_id}")
    lease_seconds = session.info["lease_seconds"]
    event_id = uuid.uuid4()
    payload = message.model_dump(mode="json")
    now = utcnow()
    origin = session.info["db_key"]
    rows, envelopes = [], []
    for handler in bus.handlers_for(message):
        delivery = uuid.uuid4() if message.kind == "event" else event_id
        rows.append({
            "id": delivery, "event_id": event_id, "type": message.message_type,
            "version": message.version, "handler": handler, "payload": payload,
            "tenant_id": tenant_id, "correlation_id": correlation_id,
            "next_attempt_at": now + timedelta(seconds=lease_seconds), "sent_at": now,
        })
        envelopes.append(Envelope(
            id=str(delivery), event_id=str(event_id), type=message.message_type,
            version=message.version, handler=handler, payload=payload, origin=origin,
            tenant_id=str(tenant_id) if tenant_id else None, correlation_id=correlation_id,
            sent_at=now.timestamp(),
        ))
    return rows, envelopes


_COLUMNS = ("id", "event_id", "type", "version", "handler", "payload", "tenant_id",
            "correlation_id", "next_attempt_at", "sent_at")


def insert_template(name: str) -> CTE:
    """A single-row outbox INSERT as a CTE with bound parameters ``<name>_<column>``.

    A hot path builds its statement once around this and binds each row with
    ``template_params``: no statement to build or compile per call.
    """
    return bound_insert(outbox, name, _COLUMNS)


def template_params(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``insert_template(name)`` for one row from ``prepare``."""
    return bound_params(name, {c: row[c] for c in _COLUMNS})


def remember(session: Session | Writes, envelopes: list[Envelope]) -> None:
    """Keep envelopes whose rows are in this transaction, to publish after commit."""
    session.info.setdefault(PENDING_KEY, []).extend(envelopes)


def release_parked(session: Session, queue: str, tenants: list[uuid.UUID] | None = None, *,
                   wait: bool = True) -> list[Envelope]:
    """Un-park the deliveries the queue's free slots now allow (``fairness.release``); they
    are published after the commit like new ones, in the order returned."""
    origin = session.info["db_key"]
    envelopes = [Envelope(
        id=str(row["id"]), event_id=str(row["event_id"]), type=row["type"], version=row["version"],
        handler=row["handler"], payload=row["payload"], origin=origin,
        tenant_id=str(row["tenant_id"]) if row["tenant_id"] else None,
        correlation_id=row["correlation_id"], sent_at=row["sent_at"].timestamp(),
    ) for row in fairness.release(session, queue, tenants, wait=wait)]
    remember(session, envelopes)
    return envelopes


def take_pending(session: Session | Writes) -> list[Envelope]:
    """Envelopes recorded on this session since the last call (publish them after commit)."""
    pending: list[Envelope] = session.info.pop(PENDING_KEY, [])
    return pending


def discard_pending(session: Session | Writes) -> None:
    """Forget recorded envelopes after a rollback: their rows never existed."""
    session.info.pop(PENDING_KEY, None)


# A copy still queued when the relay buried the delivery (a pool down for longer than every
# backoff) can complete it later: then it is done, not dead, and must leave the dead list
# instead of inviting an operator to send it again.
_COMPLETE = Sql(update(outbox).where(outbox.c.id == bindparam("id"), outbox.c.completed_at.is_(None))
                .values(completed_at=bindparam("at"), dead_at=null()))


def mark_completed(session: Session, delivery_id: uuid.UUID) -> None:
    """Mark one delivery done so the relay stops re-sending it.

    Every handled delivery of a database's own messages runs it, so it is built once and
    sent straight to the driver, behind the session's write gate (``gated_writes``): the
    session's statement machinery cost a handler more CPU than the statement.
    """
    gated_writes(session, (_COMPLETE, {"id": delivery_id, "at": utcnow()}))


def record_failure(session: Session, delivery_id: uuid.UUID, error: str) -> None:
    """Keep the last error of a delivery for operators."""
    session.execute(update(outbox).where(outbox.c.id == delivery_id).values(last_error=error[:2000]))
