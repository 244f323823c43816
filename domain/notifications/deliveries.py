"""Sending an email at most once per (event, recipient): record, then send, then settle.

``deliver`` first claims the delivery in a committed transaction on the management database
(the caller's session: the reads that resolved the recipient commit with it): a new row in
state ``sending`` (or ``throttled`` past the recipient's hourly rate, or ``suppressed`` for
an undeliverable address) written by one ``INSERT ... SELECT``, under a per-recipient
advisory lock so the rate is counted exactly. Then it sends (the Message-ID comes from the
same key) and settles the row in one autocommitted statement (``sent``, ``failed``,
``unconfirmed``, or ``retry`` before a transient error goes up to the task, which retries
it with backoff).

A redelivered event finds the row: ``sent``, ``failed``, ``throttled``, ``suppressed`` and
``unconfirmed`` are final and nothing is sent; ``retry`` is sent again. ``sending`` means the
attempt that wrote it died (a worker killed while it talked to the server): the email may
have gone, so it is not sent again but settled ``unconfirmed`` (at most once, as issue 5
prefers); operators find those rows. Only an idempotent transport (the Maildir, where the
same key rewrites the same file) simply sends it again.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.provider import MANAGEMENT, DataProvider
from domain.notifications.errors import MailerMisconfigured, MailRejected, MailTransient, MailUncertain
from domain.notifications.mail import Email, Mailer, message_id
from domain.notifications.models import EmailDelivery, UndeliverableAddress

# Rows that count against the hourly rate: sent, or on their way.
_COUNTED = ("sending", "retry", "sent", "unconfirmed")
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:recipient, 5))")
DIED = "an earlier attempt died while sending: not sent again (at most once)"


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
    """What became of the email: ``sent``, ``failed``, ``throttled``, ``suppressed`` or
    ``unconfirmed``, and why (for the notice)."""

    state: str
    error: str | None = None


@dataclass(frozen=True)
class _Claim:
    id: uuid.UUID
    state: str
    error: str | None
    attempts: int


def deliver(provider: DataProvider, session: Session, mailer: Mailer, email: Email, request: Request, *,
            sender: str, last_attempt: bool = False) -> Outcome:
    """Send ``email`` unless this (event, recipient) was sent, refused, throttled or may have gone.

    ``session`` is a management session the claim is committed on. Raises MailTransient
    (after recording ``retry``) for the task to retry, unless this is its last attempt: then
    the email is settled ``failed``. MailerMisconfigured goes up too.
    """
    claim = _claim(session, request, message_id(email.key, sender), mailer.idempotent)
    if claim.state != "sending":
        return Outcome(claim.state, claim.error)
    try:
        result = mailer.send(email)
    except MailRejected as exc:
        _settle(provider, claim.id, "failed", str(exc))
        if exc.bad_address:
            mark_undeliverable(session, request.recipient, "refused", str(exc))
            session.commit()
        return Outcome("failed", str(exc))
    except MailUncertain as exc:
        _settle(provider, claim.id, "unconfirmed", str(exc))
        return Outcome("unconfirmed", str(exc))
    except MailTransient as exc:
        if last_attempt:
            reason = f"gave up after {claim.attempts} attempts: {exc}"
            _settle(provider, claim.id, "failed", reason)
            return Outcome("failed", reason)
        _settle(provider, claim.id, "retry", str(exc))
        raise
    except MailerMisconfigured as exc:
        _settle(provider, claim.id, "retry", str(exc))
        raise
    _settle(provider, claim.id, "sent", None, result.provider_id)
    return Outcome("sent")


def _claim(session: Session, request: Request, mid: str, idempotent: bool) -> _Claim:
    recipient = request.recipient.lower()
    now = utcnow()
    if request.throttle_per_hour is not None:  # the count below must see every earlier claim
        session.execute(_LOCK, {"recipient": recipient})
    row = session.execute(_first_claim(request, recipient, mid, now)).first()
    if row is None:  # seen before: a redelivery
        existing = session.scalars(select(EmailDelivery).where(
            EmailDelivery.event_id == request.event_id, EmailDelivery.recipient == recipient)
            .with_for_update()).one()
        claim = _again(existing, idempotent, now)
    else:
        claim = _Claim(row.id, row.state, row.error, row.attempts)
    session.commit()
    return claim


def _first_claim(request: Request, recipient: str, mid: str, now: datetime) -> object:
    """One INSERT ... SELECT writing the row as ``sending``, ``suppressed`` or ``throttled``
    (nothing if the row exists)."""
    undeliverable = select(UndeliverableAddress.reason).where(
        UndeliverableAddress.address == recipient).scalar_subquery()
    recent = select(func.count()).select_from(EmailDelivery).where(and_(
        EmailDelivery.recipient == recipient, EmailDelivery.state.in_(_COUNTED),
        EmailDelivery.created_at > func.now() - text("interval '1 hour'"))).scalar_subquery()
    limit = request.throttle_per_hour
    throttled = recent >= limit if limit is not None else literal(False)
    state = case((undeliverable.is_not(None), "suppressed"), (throttled, "throttled"), else_="sending")
    error = case((undeliverable.is_not(None), "the address is undeliverable (" + undeliverable + ")"),
                 (throttled, f"more than {limit} emails in an hour: left to the digest"), else_=None)
    sending = state == "sending"
    values = select(
        literal(uuid.uuid4()), literal(request.event_id), literal(recipient), literal(request.user_id),
        literal(request.tenant_id), literal(request.category), literal(request.subject[:300]), state,
        case((sending, 1), else_=0), error, literal(mid), case((sending, now), else_=None),
        case((sending, None), else_=now))
    columns = ["id", "event_id", "recipient", "user_id", "tenant_id", "category", "subject", "state",
               "attempts", "error", "message_id", "attempted_at", "finished_at"]
    return (insert(EmailDelivery).from_select(columns, values)
            .on_conflict_do_nothing(index_elements=["event_id", "recipient"])
            .returning(EmailDelivery.id, EmailDelivery.state, EmailDelivery.error, EmailDelivery.attempts))


def _again(row: EmailDelivery, idempotent: bool, now: datetime) -> _Claim:
    """A delivery seen before: send it again only if that cannot send it twice."""
    if row.state == "retry" or (row.state == "sending" and idempotent):
        row.state, row.attempts, row.attempted_at = "sending", row.attempts + 1, now
        return _Claim(row.id, "sending", None, row.attempts)
    if row.state == "sending":
        row.state, row.error, row.finished_at = "unconfirmed", DIED, now
    return _Claim(row.id, row.state, row.error, row.attempts)


def _settle(provider: DataProvider, delivery_id: uuid.UUID, state: str, error: str | None,
            provider_id: str | None = None) -> None:
    """One autocommitted UPDATE: what became of the attempt."""
    engine = provider.engine(provider.url_of(MANAGEMENT))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(update(EmailDelivery).where(EmailDelivery.id == delivery_id).values(
            state=state, error=error, provider_id=provider_id, finished_at=func.now()))


def mark_undeliverable(session: Session, address: str, reason: str, detail: str | None = None) -> bool:
    """Send no more email to ``address``; False if it was already so marked."""
    inserted = session.execute(insert(UndeliverableAddress)
                               .values(address=address.strip().lower(), reason=reason, detail=detail)
                               .on_conflict_do_nothing(index_elements=["address"])
                               .returning(UndeliverableAddress.address)).first()
    return inserted is not None


def is_undeliverable(session: Session, address: str) -> bool:
    """True once ``address`` bounced for good, complained or was refused."""
    return session.get(UndeliverableAddress, address.strip().lower()) is not None
