"""The relay: re-send deliveries not completed within their lease, with backoff; bury the rest.

Run against every database (management, trial, each dedicated) by a beat job. Rows are
claimed with ``FOR UPDATE SKIP LOCKED`` and their next attempt pushed back before they are
sent, so two relays running at once never send the same row in the same round.
"""
from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import RowMapping, and_, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.provider import MANAGEMENT, DataProvider
from domain.errors import Conflict, NotFound
from domain.messaging import bus, fairness
from domain.messaging.outbox import Envelope, release_parked, take_pending
from domain.messaging.tables import inbox, outbox

MAX_BACKOFF = timedelta(hours=1)
MAX_QUEUED_LEASES = 20
log = logging.getLogger(__name__)
# What a database that cannot be swept raises: it is down, or it lives on a placement server
# the settings no longer name (retired, renamed); the relay goes on with the others.
UNREACHABLE = (SQLAlchemyError, LookupError)


# (handler, sent_at epoch seconds) -> True if that copy is still waiting in its queue.
StillQueued = Callable[[str, float], bool]
# Due rows -> ids of those already handled (found in the inbox of the database they write).
Handled = Callable[[Sequence[RowMapping]], set[uuid.UUID]]


@dataclass(frozen=True)
class SweepResult:
    """What one sweep of one database did."""

    resent: list[Envelope]
    buried: int
    deferred: int = 0
    confirmed: int = 0


@dataclass(frozen=True)
class MessageRow:
    """An outbox row as operators see it."""

    id: uuid.UUID
    database: str
    type: str
    handler: str
    tenant_id: uuid.UUID | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    dead_at: datetime | None
    last_error: str | None


def backoff(lease_seconds: float, attempts: int) -> timedelta:
    """Delay before the next attempt: the lease, doubled for each attempt so far, capped."""
    return min(timedelta(seconds=lease_seconds * (2 ** max(attempts - 1, 0))), MAX_BACKOFF)


def _due(now: datetime):  # type: ignore[no-untyped-def]
    # A parked delivery was never sent: admission control releases it (fairness), not the relay.
    return and_(outbox.c.completed_at.is_(None), outbox.c.dead_at.is_(None),
                outbox.c.parked_at.is_(None), outbox.c.next_attempt_at <= now)


def sweep(session: Session, *, lease_seconds: float, max_attempts: int, batch: int,
          still_queued: StillQueued | None = None, handled: Handled | None = None) -> SweepResult:
    """Claim due deliveries: bury those out of attempts, schedule and return the rest.

    A due delivery whose last copy is still waiting in its queue (a backlog, not a loss) is
    not sent again: its lease is renewed and no attempt is counted. Without that, a backlog
    longer than the lease fills the queue with copies and spends a message's attempts while
    it is only waiting.
    """
    now = utcnow()
    rows = session.execute(
        select(outbox).where(_due(now)).order_by(outbox.c.next_attempt_at)
        .limit(batch).with_for_update(skip_locked=True)
    ).mappings().all()
    done = handled(rows) if handled is not None and rows else set()
    origin = session.info["db_key"]
    confirmed: list[uuid.UUID] = []
    deferred: list[uuid.UUID] = []
    buried: list[uuid.UUID] = []
    resent_ids: dict[int, list[uuid.UUID]] = defaultdict(list)  # by the attempt now made
    resent: list[Envelope] = []
    for row in rows:
        if row["id"] in done:  # handled on another database: its inbox says so
            confirmed.append(row["id"])
            continue
        # Past MAX_QUEUED_LEASES leases a copy is re-sent whatever the queue looks like: a
        # message put back at the consuming end (a restore) must not hold later ones forever.
        young = now - row["sent_at"] < timedelta(seconds=lease_seconds * MAX_QUEUED_LEASES)
        if young and still_queued is not None and still_queued(row["handler"], row["sent_at"].timestamp()):
            deferred.append(row["id"])
        elif row["attempts"] >= max_attempts:
            buried.append(row["id"])
        else:
            attempts = row["attempts"] + 1
            resent_ids[attempts].append(row["id"])
            resent.append(_envelope(row, origin, attempts, now))
    # One UPDATE per outcome (and per attempt number), not one per row: a sweep behind a
    # backlog claims up to ``batch`` rows.
    _set(session, confirmed, completed_at=now)
    _set(session, deferred, next_attempt_at=now + timedelta(seconds=lease_seconds))
    _set(session, buried, dead_at=now)
    for attempts, ids in resent_ids.items():
        _set(session, ids, attempts=attempts, next_attempt_at=now + backoff(lease_seconds, attempts),
             sent_at=now)
    return SweepResult(resent=resent, buried=len(buried), deferred=len(deferred),
                       confirmed=len(confirmed))


def release_parked_all(provider: DataProvider, db_key: str) -> list[Envelope]:
    """Release the parked deliveries of every tenant of ``db_key`` with free slots, on every
    queue under admission control, round-robin across tenants; return them to publish.

    Tenants whose slots a request or a worker is deciding right now are skipped (they
    decide); what a lost wake-up left parked is released here, a sweep later at most.
    """
    try:
        with provider.unscoped(db_key) as session:
            for queue in fairness.fair_queues(session):
                release_parked(session, queue, wait=False)
            released = take_pending(session)
            session.commit()
    except UNREACHABLE:
        log.exception("relay could not release parked messages of %s", db_key)
        return []
    return released


def _set(session: Session, ids: list[uuid.UUID], **values: object) -> None:
    if ids:
        session.execute(update(outbox).where(outbox.c.id.in_(ids)).values(**values))


def _envelope(row, origin: str, attempt: int, sent_at: datetime) -> Envelope:  # type: ignore[no-untyped-def]
    return Envelope(
        id=str(row["id"]), event_id=str(row["event_id"]), type=row["type"],
        version=row["version"], handler=row["handler"], payload=row["payload"],
        origin=origin, tenant_id=str(row["tenant_id"]) if row["tenant_id"] else None,
        correlation_id=row["correlation_id"], attempt=attempt, sent_at=sent_at.timestamp(),
    )


def list_messages(session: Session, state: str, limit: int = 100) -> list[MessageRow]:
    """Dead deliveries, or overdue ones (not completed, past their next attempt)."""
    query = select(outbox)
    if state == "dead":
        query = query.where(outbox.c.dead_at.is_not(None)).order_by(outbox.c.dead_at.desc())
    else:
        query = query.where(_due(utcnow())).order_by(outbox.c.next_attempt_at)
    rows = session.execute(query.limit(limit)).mappings().all()
    return [MessageRow(
        id=r["id"], database=session.info["db_key"], type=r["type"], handler=r["handler"],
        tenant_id=r["tenant_id"], attempts=r["attempts"], created_at=r["created_at"],
        next_attempt_at=r["next_attempt_at"], dead_at=r["dead_at"], last_error=r["last_error"],
    ) for r in rows]


def revive(session: Session, delivery_id: uuid.UUID, *, lease_seconds: float) -> Envelope:
    """Bring a dead delivery back: attempts reset, due now; return it to publish."""
    row = session.execute(
        select(outbox).where(outbox.c.id == delivery_id).with_for_update()
    ).mappings().first()
    if row is None:
        raise NotFound("no such message", field="message_id")
    if row["dead_at"] is None:
        raise Conflict("message is not dead", field="message_id")
    now = utcnow()
    session.execute(update(outbox).where(outbox.c.id == delivery_id).values(
        dead_at=None, attempts=1, next_attempt_at=now + backoff(lease_seconds, 1), last_error=None,
        sent_at=now))
    return _envelope(row, session.info["db_key"], 1, now)


def sweep_all(provider: DataProvider, *, lease_seconds: float, max_attempts: int, batch: int,
              publish: Callable[[list[Envelope]], int],
              still_queued: StillQueued | None = None) -> dict[str, int]:
    """Sweep every database; one unreachable database does not stop the others."""
    report = {"databases": 0, "resent": 0, "buried": 0, "deferred": 0, "confirmed": 0, "failed": 0,
              "released": 0}
    for db_key in provider.all_databases():
        try:
            with provider.unscoped(db_key) as session:
                result = sweep(session, lease_seconds=lease_seconds, max_attempts=max_attempts,
                               batch=batch, still_queued=still_queued,
                               handled=inbox_lookup(provider, db_key))
                session.commit()
        except UNREACHABLE:
            log.exception("relay could not sweep %s", db_key)
            report["failed"] += 1
            continue
        report["databases"] += 1
        report["resent"] += publish(result.resent)
        report["released"] += publish(release_parked_all(provider, db_key))
        report["buried"] += result.buried
        report["deferred"] += result.deferred
        report["confirmed"] += result.confirmed
    return report


@dataclass(frozen=True)
class MessageListing:
    """Dead or overdue deliveries across databases, and the databases that did not answer."""

    rows: list[MessageRow]
    unreachable: list[str]


def inbox_lookup(provider: DataProvider, origin: str) -> Handled:
    """Find which due rows of ``origin`` were handled on another database, by its inbox."""

    def handled(rows: Sequence[RowMapping]) -> set[uuid.UUID]:
        wanted: dict[str, list[uuid.UUID]] = defaultdict(list)
        for row in rows:
            consumer = _consumer_database(provider, row["handler"], row["tenant_id"])
            if consumer is not None and consumer != origin:
                wanted[consumer].append(row["id"])
        found: set[uuid.UUID] = set()
        for db_key, ids in wanted.items():
            try:
                with provider.unscoped(db_key) as session:
                    found.update(session.scalars(
                        select(inbox.c.message_id).where(inbox.c.message_id.in_(ids))))
            except UNREACHABLE:
                log.warning("relay could not read the inbox of %s", db_key, exc_info=True)
        return found

    return handled


def _consumer_database(provider: DataProvider, handler: str, tenant_id: uuid.UUID | None) -> str | None:
    target = bus.TARGETS.get(handler)
    if target == "management":
        return MANAGEMENT
    if target == "tenant" and tenant_id is not None:
        try:
            return provider.route(tenant_id).db_key
        except (NotFound, LookupError):  # gone, or on a server no longer configured
            return None
    return None


def list_all(provider: DataProvider, state: str, limit: int = 100) -> MessageListing:
    """Dead or overdue deliveries across every database, most urgent first.

    A database that does not answer is named, not fatal: operators need the list most
    when something is broken.
    """
    rows: list[MessageRow] = []
    unreachable: list[str] = []
    for db_key in provider.all_databases():
        try:
            with provider.unscoped(db_key) as session:
                rows += list_messages(session, state, limit)
        except UNREACHABLE:
            log.warning("could not list messages of %s", db_key, exc_info=True)
            unreachable.append(db_key)
    if state == "dead":
        rows.sort(key=lambda r: r.dead_at or r.created_at, reverse=True)
    else:
        rows.sort(key=lambda r: r.next_attempt_at)
    return MessageListing(rows[:limit], unreachable)


def revive_in(provider: DataProvider, db_key: str, delivery_id: uuid.UUID,
              lease_seconds: float) -> Envelope:
    """Revive a dead delivery of ``db_key`` and return it for publishing."""
    if db_key not in provider.all_databases():
        raise NotFound("no such database", field="database")
    with provider.unscoped(db_key) as session:
        envelope = revive(session, delivery_id, lease_seconds=lease_seconds)
        session.commit()
    return envelope


def prune(session: Session, *, older_than: datetime, batch: int = 5000) -> int:
    """Delete completed outbox rows and inbox rows older than ``older_than``, in batches.

    The inbox must outlive any copy that can still arrive (Redis re-delivers unacknowledged
    messages after its visibility timeout, an hour at most), so retention is days. Dead
    and open outbox rows are kept: they are not done.
    """
    deleted = 0
    for table, column, extra in ((outbox, outbox.c.completed_at, outbox.c.completed_at.is_not(None)),
                                 (inbox, inbox.c.processed_at, inbox.c.processed_at.is_not(None))):
        key = table.primary_key.columns.values()[0]
        while True:
            doomed = select(key).where(extra, column < older_than).limit(batch).scalar_subquery()
            count = session.execute(delete(table).where(key.in_(doomed))).rowcount or 0
            session.commit()
            deleted += count
            if count < batch:
                break
    return deleted


def confirm_dead_handled(provider: DataProvider, db_key: str, *, since: datetime, batch: int = 500) -> int:
    """Complete the dead deliveries of ``db_key`` that were handled on another database after
    all (a late copy, once the relay had buried them): the sweep never looks at dead rows, so
    they stayed on the dead list, and one revived after its inbox row was pruned would run
    a second time. Their consumers' inboxes say so, for the ones buried ``since`` the inbox
    retention began (older inbox rows are gone); how many were completed."""
    handled, confirmed, after = inbox_lookup(provider, db_key), 0, None
    with provider.unscoped(db_key) as session:
        while True:
            query = select(outbox).where(outbox.c.dead_at >= since, outbox.c.completed_at.is_(None))
            if after is not None:
                query = query.where(outbox.c.id > after)
            rows = session.execute(query.order_by(outbox.c.id).limit(batch)).mappings().all()
            if not rows:
                break
            done = handled(rows)
            _set(session, list(done), completed_at=utcnow(), dead_at=None)
            confirmed += len(done)
            after = rows[-1]["id"]
        session.commit()
    return confirmed


def prune_all(provider: DataProvider, *, retention: timedelta) -> dict[str, int]:
    """Prune every database; one unreachable database does not stop the others. Dead
    deliveries handled elsewhere are confirmed first, in every database, while the inboxes
    that say so still hold them."""
    report = {"databases": 0, "deleted": 0, "failed": 0, "confirmed": 0}
    cutoff = utcnow() - retention
    databases = provider.all_databases()
    for db_key in databases:
        try:
            report["confirmed"] += confirm_dead_handled(provider, db_key, since=cutoff)
        except UNREACHABLE:
            log.exception("could not confirm the dead deliveries of %s", db_key)
    for db_key in databases:
        try:
            with provider.unscoped(db_key) as session:
                report["deleted"] += prune(session, older_than=cutoff)
        except UNREACHABLE:
            log.exception("could not prune %s", db_key)
            report["failed"] += 1
            continue
        report["databases"] += 1
    return report


@dataclass(frozen=True)
class OutboxCounts:
    """Undelivered messages of one database, for metrics."""

    database: str
    open: int
    dead: int
    oldest_open_at: datetime | None


def outbox_counts(provider: DataProvider) -> list[OutboxCounts]:
    """Open and dead deliveries of every database that answers."""
    counts: list[OutboxCounts] = []
    for db_key in provider.all_databases():
        try:
            with provider.unscoped(db_key) as session:
                row = session.execute(select(
                    func.count().filter(outbox.c.completed_at.is_(None), outbox.c.dead_at.is_(None)),
                    func.count().filter(outbox.c.dead_at.is_not(None)),
                    func.min(outbox.c.created_at).filter(outbox.c.completed_at.is_(None),
                                                         outbox.c.dead_at.is_(None)),
                )).one()
        except UNREACHABLE:
            log.warning("could not count messages of %s", db_key, exc_info=True)
            continue
        counts.append(OutboxCounts(db_key, row[0], row[1], row[2]))
    return counts
