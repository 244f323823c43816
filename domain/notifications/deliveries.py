"""Recording emails at most once per (event, recipient), for the sending stage to send.

``record`` writes one row per email in the management database, in the caller's
transaction (or, on a session in autocommit, in one of its own, committed when it
returns), with one ``INSERT ... SELECT`` for all of an event's recipients: state
``queued`` with the email sealed in ``payload`` (an invitation's body carries its token),
or ``throttled`` past the recipient's hourly rate (left to the digest), or ``suppressed``
for an undeliverable address. Rows that count against the rate are counted under a
per-recipient advisory lock, taken in address order, so the rate is exact under
concurrency. ``(event_id, recipient)`` is unique: a redelivered event finds its rows and
records nothing new; what they say is returned instead.

``domain.notifications.sending`` sends the queued rows in batches and settles each one.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.db.sql import Sql, atomic, in_autocommit, pipelined
from domain.notifications.mail import Email, message_id
from domain.notifications.models import COUNTED, EmailDelivery, UndeliverableAddress

# States in the sending stage's hands: to the notice, its email is "queued".
IN_PROGRESS = frozenset({"queued", "sending", "retry"})


class Sealer(Protocol):
    """Encrypts an email for the row and back (``PasswordSealer``)."""

    def seal(self, value: str) -> str:
        """An encrypted, authenticated copy."""

    def unseal(self, sealed: str) -> str | None:
        """The value, or None if it was sealed under another key."""


@dataclass(frozen=True)
class Request:
    """What one email is for: the event, the address, whose it is, and its rate limit."""

    event_id: uuid.UUID
    recipient: str
    category: str
    subject: str
    user_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None
    throttle_per_hour: int | None = None  # None: never collapsed into the digest


@dataclass(frozen=True)
class Outcome:
    """What became of the email when it was recorded: ``queued`` (the sending stage has it),
    ``throttled``, ``suppressed``, or a redelivered event's earlier outcome (``sent``,
    ``failed``, ``unconfirmed``), and why (for the notice)."""

    state: str
    error: str | None = None


def seal_email(sealer: Sealer, email: Email) -> str:
    """The sealed payload of ``email``."""
    return sealer.seal(json.dumps(asdict(email), separators=(",", ":")))


def unseal_email(sealer: Sealer, payload: str) -> Email | None:
    """The email of a payload, or None if it cannot be unsealed (SECRET_KEY rotated)."""
    found = sealer.unseal(payload)
    return Email(**json.loads(found)) if found is not None else None


_LOCK = Sql("SELECT pg_advisory_xact_lock(hashtextextended(r, 5)) "
            "FROM (SELECT DISTINCT r FROM unnest(CAST(:recipients AS text[])) AS r ORDER BY r) AS s")

# PostgreSQL plans a prepared statement afresh on every run for as long as a plan made for the
# run's values looks cheaper than the generic one, and an array parameter always makes it
# look so (the generic plan assumes 100 elements, an event has a few recipients): planning
# the record cost more than running it (0.7 ms of CPU). Every lookup in these statements goes
# through an index whatever the values, so the generic plan is as good; this asks for it, for
# the rest of the transaction (set_config(..., true)).
_GENERIC_PLANS = Sql("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")

# One statement for every email of an event: undeliverable, throttled or queued. ``decided``
# is materialised: inlined, its count would run once for each of the five places that read
# ``throttled``.
_RECORD = Sql(f"""
WITH input AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:events AS uuid[]), CAST(:recipients AS text[]),
                         CAST(:users AS uuid[]), CAST(:tenants AS uuid[]), CAST(:categories AS text[]),
                         CAST(:subjects AS text[]), CAST(:mids AS text[]), CAST(:payloads AS text[]),
                         CAST(:hourly AS int[]))
        AS t(id, event_id, recipient, user_id, tenant_id, category, subject, message_id, payload, hourly)
), decided AS MATERIALIZED (
    SELECT i.*, u.reason AS undeliverable,
           coalesce(i.hourly IS NOT NULL AND (
               SELECT count(*) FROM email_deliveries d
               WHERE d.recipient = i.recipient AND d.state IN {COUNTED!r}
                 AND d.created_at > now() - interval '1 hour') >= i.hourly, false) AS throttled
    FROM input AS i LEFT JOIN undeliverable_addresses AS u ON u.address = i.recipient
)
INSERT INTO email_deliveries (id, event_id, recipient, user_id, tenant_id, category, subject, state,
                              attempts, error, message_id, payload, due_at, finished_at)
SELECT id, event_id, recipient, user_id, tenant_id, category, left(subject, 300),
       CASE WHEN undeliverable IS NOT NULL THEN 'suppressed' WHEN throttled THEN 'throttled'
            ELSE 'queued' END,
       0,
       CASE WHEN undeliverable IS NOT NULL THEN 'the address is undeliverable (' || undeliverable || ')'
            WHEN throttled THEN 'more than ' || hourly || ' emails in an hour: left to the digest' END,
       message_id,
       CASE WHEN undeliverable IS NULL AND NOT throttled THEN payload END,
       CASE WHEN undeliverable IS NULL AND NOT throttled THEN now() END,
       CASE WHEN undeliverable IS NOT NULL OR throttled THEN now() END
FROM decided
ON CONFLICT (event_id, recipient) DO NOTHING
RETURNING event_id, recipient, state, error
""")


def record(session: Session, sealer: Sealer, sender: str,
           emails: list[tuple[Request, Email]]) -> list[Outcome]:
    """Record each email for the sending stage, unless its (event, recipient) was recorded.

    One outcome per email, in order. In a transaction, the caller commits (the locks are
    held until then); on a session in autocommit, the locks and the rows are one
    transaction of their own, committed in the same round trip (``atomic``).
    """
    if not emails:
        return []
    recipients = [request.recipient.lower() for request, _ in emails]
    # The lock first when a rate applies (the counts must see every earlier row), sent in
    # the record's round trip: the record runs once the lock is granted, on a fresh snapshot.
    locks = [(_LOCK, {"recipients": recipients})] if any(
        request.throttle_per_hour is not None for request, _ in emails) else []
    connection = session.connection()
    # In autocommit the statements are a transaction of their own, so the generic plans end
    # with them; a caller's transaction keeps PostgreSQL's own choice for its other statements.
    alone = in_autocommit(connection)
    run_together, setup = (atomic, [(_GENERIC_PLANS, {})]) if alone else (pipelined, [])
    *_, rows = run_together(connection, *setup, *locks, (_RECORD, {
        "ids": [uuid.uuid4() for _ in emails],
        "events": [request.event_id for request, _ in emails],
        "recipients": recipients,
        "users": [request.user_id for request, _ in emails],
        "tenants": [request.tenant_id for request, _ in emails],
        "categories": [request.category for request, _ in emails],
        "subjects": [request.subject for request, _ in emails],
        "mids": [message_id(email.key, sender) for _, email in emails],
        "payloads": [seal_email(sealer, email) for _, email in emails],
        "hourly": [request.throttle_per_hour for request, _ in emails],
    }))
    found = {(event_id, recipient): Outcome(state, error) for event_id, recipient, state, error in rows}
    keys = [(request.event_id, recipient) for (request, _), recipient in zip(emails, recipients, strict=True)]
    missing = [key for key in keys if key not in found]
    if missing:  # a redelivery: what became of them
        found.update(_existing(session, missing))
    return [_as_notice_sees(found[key]) for key in keys]


def _existing(session: Session, keys: list[tuple[uuid.UUID, str]]) -> dict[tuple[uuid.UUID, str], Outcome]:
    events = sorted({event for event, _ in keys})
    rows = session.execute(select(EmailDelivery.event_id, EmailDelivery.recipient, EmailDelivery.state,
                                  EmailDelivery.error)
                           .where(EmailDelivery.event_id.in_(events),
                                  EmailDelivery.recipient.in_(sorted({r for _, r in keys}))))
    return {(row.event_id, row.recipient): Outcome(row.state, row.error) for row in rows}


def _as_notice_sees(outcome: Outcome) -> Outcome:
    return Outcome("queued") if outcome.state in IN_PROGRESS else outcome


def states_for(session: Session, user_id: uuid.UUID, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, Outcome]:
    """What became of the user's emails of ``event_ids`` (for notices whose email was queued)."""
    if not event_ids:
        return {}
    rows = session.execute(select(EmailDelivery.event_id, EmailDelivery.state, EmailDelivery.error)
                           .where(EmailDelivery.event_id.in_(event_ids), EmailDelivery.user_id == user_id))
    return {row.event_id: _as_notice_sees(Outcome(row.state, row.error)) for row in rows}


def mark_undeliverable(session: Session, address: str, reason: str, detail: str | None = None) -> bool:
    """Send no more email to ``address``; False if it was already so marked."""
    inserted = session.execute(insert(UndeliverableAddress)
                               .values(address=normal_address(address), reason=reason, detail=detail)
                               .on_conflict_do_nothing(index_elements=["address"])
                               .returning(UndeliverableAddress.address)).first()
    return inserted is not None


def is_undeliverable(session: Session, address: str) -> bool:
    """True once ``address`` bounced for good, complained or was refused."""
    return session.get(UndeliverableAddress, normal_address(address)) is not None


def normal_address(address: str) -> str:
    """An address as the undeliverable list keys it: trimmed, lower-case."""
    return address.strip().lower()
