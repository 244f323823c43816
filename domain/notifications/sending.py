"""The sending stage: queued emails claimed in batches and sent over one kept connection.

Handlers record emails (``deliveries.record``) and wake a sender; a sender (the
``notifications`` pool's ``send_emails`` task, and beat's ``email-sender`` sweep) runs
``drain``: it claims up to ``BATCH`` due rows in one autocommitted statement (``FOR UPDATE
SKIP LOCKED``, so senders share the work; the claim is a lease, ``claimed_until``), then
sends them one after the other through the mailer's kept connection.

At most once per email, at the price of one statement per email: before an email goes,
its row becomes ``sending`` (only from ``queued`` or ``retry``: two senders can never both
start it), committed in the same statement that settles the previous email (``sent``,
``failed``, ``unconfirmed``, or ``retry`` with backoff). A sender killed mid-batch leaves
at most one row ``sending``; its unstarted rows return to the pool when the lease ends.
``sweep`` settles a row left ``sending`` longer than ``STALE_AFTER`` as ``unconfirmed`` (it
may have gone), or queues it again on an idempotent transport (the Maildir).

A transient failure puts the email back as ``retry`` with exponential backoff (at most an
hour) and jitter, and gives up on the first one that comes ``GIVE_UP_AFTER`` after the email
was recorded and is at least its ``GIVE_UP_MIN_ATTEMPTS``-th attempt: a mail outage of
minutes or hours costs a delay, not the email, and an email that waited without trying (a
misconfiguration pause, a backlog) still gets its retries (through greylisting, say). When
only the recipient was deferred (a 4xx to RCPT) the batch goes on; when the transport itself failed
(the server is down, a 4xx to MAIL) the sender holds the rest of its batch for the same
pause, without spending their attempts, and stops. A misconfigured transport (login, TLS,
AWS credentials) spends no attempt at all: the emails wait ``MISCONFIGURED_PAUSE`` at a time
until the configuration is fixed. A refused recipient is marked undeliverable. An error no
transport names is settled as a dead attempt is (it may have gone: ``unconfirmed``, or
``retry`` on an idempotent transport) and the batch goes on. A row is started only once due,
so a sender whose lease ran out cannot send early what another sender put back to ``retry``.
"""
from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

from domain.db.provider import MANAGEMENT, DataProvider
from domain.notifications import deliveries
from domain.notifications.deliveries import Sealer
from domain.notifications.errors import MailerMisconfigured, MailRejected, MailTransient, MailUncertain
from domain.notifications.mail import Mailer

log = logging.getLogger(__name__)

BATCH = 50  # emails claimed at once
LEASE = timedelta(minutes=5)  # a claimed batch returns to the pool after this (its sender died)
STALE_AFTER = timedelta(minutes=10)  # longer than any one send (three SMTP steps, each timed out)
GIVE_UP_AFTER = timedelta(hours=24)  # a transient failure of an email older than this is its last...
# ...once it has spent this many attempts: the time an email waited without trying (paused,
# held, queued behind a backlog) is not failed attempts. 8 attempts span 10 + 20 + ... + 640 s
# of backoff, about 20 minutes: past the usual greylisting delays (5 to 15 minutes).
GIVE_UP_MIN_ATTEMPTS = 8
MISCONFIGURED_PAUSE = timedelta(minutes=1)
DIED = "an earlier attempt died while sending: not sent again (at most once)"

_CLAIM = text("""
UPDATE email_deliveries SET claimed_until = now() + CAST(:lease AS interval)
WHERE id IN (SELECT id FROM email_deliveries
             WHERE state IN ('queued', 'retry') AND due_at <= now()
               AND (claimed_until IS NULL OR claimed_until < now())
             ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id, recipient, payload, attempts, now() - created_at AS age
""")

# Settle the previous email and start the next in one round trip (either may be NULL).
_STEP = text("""
WITH settled AS (
    UPDATE email_deliveries
    SET state = CAST(:state AS varchar), error = :error, provider_id = :provider_id, claimed_until = NULL,
        attempts = attempts - :refund,
        due_at = CASE WHEN :state = 'retry' THEN now() + CAST(:pause AS interval) END,
        finished_at = CASE WHEN :state = 'retry' THEN NULL ELSE now() END,
        payload = CASE WHEN :state = 'retry' THEN payload END
    WHERE id = :settle AND state = 'sending'
    RETURNING id
), started AS (
    UPDATE email_deliveries SET state = 'sending', attempts = attempts + 1, attempted_at = now()
    WHERE id = :start AND state IN ('queued', 'retry') AND due_at <= now()
    RETURNING id
)
SELECT count(*) FROM started
""")

_HOLD = text("UPDATE email_deliveries SET claimed_until = now() + CAST(:pause AS interval) "
             "WHERE id = ANY(CAST(:ids AS uuid[])) AND state IN ('queued', 'retry')")

_STALE = text("""
UPDATE email_deliveries
SET state = CASE WHEN :idempotent THEN 'retry' ELSE 'unconfirmed' END,
    error = CASE WHEN :idempotent THEN error ELSE :died END,
    due_at = CASE WHEN :idempotent THEN now() END,
    finished_at = CASE WHEN :idempotent THEN NULL ELSE now() END,
    payload = CASE WHEN :idempotent THEN payload END,
    claimed_until = NULL
WHERE state = 'sending' AND attempted_at < now() - CAST(:stale AS interval)
""")

_DUE = text("SELECT EXISTS (SELECT 1 FROM email_deliveries WHERE state IN ('queued', 'retry') "
            "AND due_at <= now() AND (claimed_until IS NULL OR claimed_until < now()))")


@dataclass(frozen=True)
class Claimed:
    """One email of a claimed batch."""

    id: uuid.UUID
    recipient: str
    payload: str | None
    attempts: int
    age: timedelta  # since the email was recorded, when it was claimed


@dataclass
class Settle:
    """What became of one email, to be written with the next email's start."""

    id: uuid.UUID
    state: str
    error: str | None = None
    provider_id: str | None = None
    pause: timedelta = timedelta(0)
    refund: bool = False  # nothing was tried (the transport is misconfigured): the attempt does not count


def backoff(attempts: int) -> timedelta:
    """The pause before attempt ``attempts + 1``: 10 s, 20 s, 40 s ... (at most an hour), with jitter."""
    base = min(10 * 2 ** max(attempts - 1, 0), 3600)
    return timedelta(seconds=base * (1 + random.random() / 2))  # noqa: S311 - jitter


def _interval(value: timedelta) -> str:
    return f"{value.total_seconds():.3f} seconds"


def _connection(provider: DataProvider) -> Connection:
    engine = provider.engine(provider.url_of(MANAGEMENT))
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def claim(connection: Connection, limit: int = BATCH) -> list[Claimed]:
    """Lease up to ``limit`` due emails, oldest first (committed)."""
    rows = connection.execute(_CLAIM, {"lease": _interval(LEASE), "limit": limit})
    return [Claimed(row.id, row.recipient, row.payload, row.attempts, row.age) for row in rows]


def _step(connection: Connection, settle: Settle | None, start: uuid.UUID | None) -> bool:
    """Write ``settle`` and start ``start``; True if ``start`` was still ours to send."""
    started = connection.execute(_STEP, {
        "settle": settle.id if settle else None, "state": settle.state if settle else None,
        "error": settle.error[:2000] if settle and settle.error else None,
        "provider_id": settle.provider_id if settle else None,
        "pause": _interval(settle.pause if settle else timedelta(0)),
        "refund": int(settle.refund) if settle else 0, "start": start}).scalar_one()
    return bool(started)


def send_batch(provider: DataProvider, connection: Connection, mailer: Mailer, sealer: Sealer,
               batch: list[Claimed]) -> tuple[Counter[str], bool]:
    """Send ``batch`` one email after the other; what became of them (state -> count), and
    whether the transport stopped it (the rest is held)."""
    outcomes: Counter[str] = Counter()
    pending: Settle | None = None
    for position, row in enumerate(batch):
        if not _step(connection, pending, row.id):
            pending = None  # another sender had it: nothing to settle
            continue
        pending, stop = _send_one(provider, mailer, sealer, row)
        outcomes[pending.state] += 1
        if stop:  # the transport cannot send now: hold the rest without spending their attempts
            _step(connection, pending, None)
            rest = [r.id for r in batch[position + 1:]]
            if rest:
                connection.execute(_HOLD, {"ids": rest, "pause": _interval(pending.pause)})
            return outcomes, True
    _step(connection, pending, None)
    return outcomes, False


def _send_one(provider: DataProvider, mailer: Mailer, sealer: Sealer, row: Claimed) -> tuple[Settle, bool]:
    """Send one started email; how to settle it, and whether the batch must stop."""
    email = deliveries.unseal_email(sealer, row.payload) if row.payload else None
    if email is None:
        return Settle(row.id, "failed", "the email cannot be unsealed (was SECRET_KEY rotated?)"), False
    try:
        result = mailer.send(email)
    except (MailRejected, MailUncertain, MailerMisconfigured, MailTransient) as exc:
        return _failed(provider, row, exc)
    except Exception as exc:  # one email's unknown failure must not strand its batch (or crash the task)
        log.exception("the mail transport failed in a way it does not name")
        return _died(mailer, row, f"{type(exc).__name__}: {exc}"), False
    return Settle(row.id, "sent", None, result.provider_id), False


def _died(mailer: Mailer, row: Claimed, what: str) -> Settle:
    """An attempt that ended in an error no transport names, settled as ``sweep`` settles one
    that died: it may have gone, so it is not sent again, unless sending twice delivers once."""
    if mailer.idempotent and not _gives_up(row):
        return Settle(row.id, "retry", f"the transport failed: {what}", pause=backoff(row.attempts + 1))
    if mailer.idempotent:
        return Settle(row.id, "failed", f"gave up after {row.attempts + 1} attempts: {what}")
    return Settle(row.id, "unconfirmed", f"the transport failed mid-send, it may have gone: {what}")


def _gives_up(row: Claimed) -> bool:
    """True when a failure of this attempt of ``row`` is its last: it is ``GIVE_UP_AFTER`` old and
    this is at least its ``GIVE_UP_MIN_ATTEMPTS``-th attempt."""
    return row.age >= GIVE_UP_AFTER and row.attempts + 1 >= GIVE_UP_MIN_ATTEMPTS


def _failed(provider: DataProvider, row: Claimed, exc: Exception) -> tuple[Settle, bool]:
    """How to settle an email the transport did not take, and whether the batch must stop."""
    attempt = row.attempts + 1
    if isinstance(exc, MailRejected):
        if exc.bad_address:
            with provider.management() as session:
                deliveries.mark_undeliverable(session, row.recipient, "refused", str(exc))
                session.commit()
        return Settle(row.id, "failed", str(exc)), False
    if isinstance(exc, MailUncertain):
        return Settle(row.id, "unconfirmed", str(exc)), False
    if isinstance(exc, MailerMisconfigured):
        log.error("the mail transport is misconfigured; emails wait until it is fixed: %s", exc)
        return Settle(row.id, "retry", str(exc), pause=MISCONFIGURED_PAUSE, refund=True), True
    if _gives_up(row):
        hours = GIVE_UP_AFTER.total_seconds() / 3600
        return Settle(row.id, "failed", f"gave up after {attempt} attempts in {hours:g} h: {exc}"), False
    recipient_only = isinstance(exc, MailTransient) and exc.recipient_only
    return Settle(row.id, "retry", str(exc), pause=backoff(attempt)), not recipient_only


def drain(provider: DataProvider, mailer: Mailer, sealer: Sealer, *, batch: int = BATCH,
          budget_seconds: float = 30.0, more: Callable[[], None] = lambda: None,
          awake: Callable[[], None] = lambda: None, idle: Callable[[], None] = lambda: None) -> Counter[str]:
    """Send due emails until none is left or ``budget_seconds`` passed.

    ``more`` is called when a full batch suggests more are waiting (wake another sender to
    share them) and when the budget runs out; ``awake`` before each batch (the caller says a
    sender is at work); ``idle`` before the last look for work (the caller forgets that a
    sender is awake, so the next ``record`` wakes one).
    """
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    with _connection(provider) as connection:
        while True:
            awake()
            rows = claim(connection, batch)
            if not rows:
                idle()
                rows = claim(connection, batch)
                if not rows:
                    return outcomes
            if len(rows) == batch:
                more()
            sent, stopped = send_batch(provider, connection, mailer, sealer, rows)
            outcomes += sent
            if stopped:  # the transport cannot send now: the held rows come due after the pause
                return outcomes
            if time.monotonic() - started > budget_seconds:
                more()
                return outcomes


def sweep(provider: DataProvider, *, idempotent: bool, stale_after: timedelta = STALE_AFTER) -> int:
    """Settle emails whose attempt started more than ``stale_after`` ago and never ended: it
    died mid-send (``unconfirmed``, or ``retry`` on an idempotent transport); how many.

    ``stale_after`` must exceed the longest a live send can take; an operator who knows the
    sender is dead may pass less.
    """
    with _connection(provider) as connection:
        return connection.execute(_STALE, {"idempotent": idempotent, "died": DIED,
                                           "stale": _interval(stale_after)}).rowcount


def anything_due(provider: DataProvider) -> bool:
    """True when some email waits for a sender."""
    with _connection(provider) as connection:
        return bool(connection.execute(_DUE).scalar())
