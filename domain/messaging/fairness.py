"""Admission control per (tenant, queue): one tenant's bulk work cannot starve the others.

A queue named in ``FAIRNESS_LIMITS`` (``assets=4``) lets each tenant have at most that many
messages *in flight* on it: sent and not yet completed. ``outbox.record`` asks ``admit``
about every delivery to such a queue; a tenant at its limit gets the delivery written
*parked* (``outbox.parked_at`` set): in the outbox, durable, not sent. Slots come back as
messages complete:

- ``handling.handle`` completes a delivery and, in the same transaction, calls
  ``release`` for that tenant: its oldest parked deliveries take the freed slots and are
  published after the commit (the worker's transaction, no extra round trip);
- the relay's sweep calls ``release_everywhere``: every tenant with room gets its parked
  deliveries released, interleaved tenant by tenant (A1, B1, C1, A2, ...), so one sweep
  never lines up one tenant's backlog in front of the others.

So while tenant A has 2,000 uploads waiting, the queue holds at most ``limit`` of A's
messages, and tenant B's one upload is published at once, behind at most ``limit``
messages of each other busy tenant: its wait is bounded by the number of busy tenants,
not by the size of anyone's backlog.

The counts come from the outbox itself, so the database stays the only source of truth:
a flushed broker loses sent copies (the relay re-sends them when their lease runs out,
and they keep their slots meanwhile), never parked work, and there are no counters to
rebuild. Each decision for one (tenant, queue) is taken under a transaction-level
advisory lock of that pair, so two requests of a tenant, or a request and a worker, never
both take the last slot; a tenant's deliveries leave the parking in the order they came.
Only messages written with ``outbox.record`` are admitted; the relay never re-sends a
parked row (it was never sent).
"""
from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from itertools import zip_longest
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.messaging import bus
from domain.messaging.tables import outbox

# Queue -> the most messages one tenant may have in flight on it (from settings, set on
# every provider session as ``session.info["admission"]``).
Limits = Mapping[str, int]
INFO_KEY = "admission"


def limits_of(session: Session) -> Limits:
    """The admission limits of the session's process (none: every queue is open)."""
    return session.info.get(INFO_KEY) or {}  # type: ignore[no-any-return]


def queue_of(handler: str) -> str:
    """The queue a handler's task is routed to: its context (``assets.process_asset``)."""
    return handler.partition(".")[0]


def handlers_of(queue: str) -> list[str]:
    """Every handler the bus routes to ``queue``."""
    return sorted(h for h in bus.TARGETS if queue_of(h) == queue)


def lock_key(queue: str, tenant_id: uuid.UUID) -> int:
    """The advisory lock (bigint) guarding one tenant's slots on one queue."""
    digest = hashlib.sha256(f"allotment.admission:{queue}:{tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock(session: Session, queue: str, tenant_id: uuid.UUID, *, wait: bool) -> bool:
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    row = session.execute(text(f"SELECT {function}(:key)"), {"key": lock_key(queue, tenant_id)}).first()
    return wait or bool(row and row[0])


def _open(queue: str, tenant_id: uuid.UUID) -> Any:
    return and_(outbox.c.tenant_id == tenant_id, outbox.c.handler.in_(handlers_of(queue)),
                outbox.c.completed_at.is_(None), outbox.c.dead_at.is_(None))


def standing(session: Session, queue: str, tenant_id: uuid.UUID) -> tuple[int, int]:
    """(in flight, parked) deliveries of a tenant on a queue, as the outbox has them."""
    row = session.execute(select(
        func.count().filter(outbox.c.parked_at.is_(None)),
        func.count().filter(outbox.c.parked_at.is_not(None)),
    ).where(_open(queue, tenant_id))).one()
    return int(row[0]), int(row[1])


def admit(session: Session, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Park the deliveries (outbox rows about to be inserted) a tenant has no room for.

    Sets ``parked_at`` on those rows and returns their ids; the caller publishes the others
    after its commit. Behind a tenant's earlier parked rows a new one parks too (first
    come, first released).
    """
    limits = limits_of(session)
    groups: dict[tuple[str, uuid.UUID], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        queue = queue_of(row["handler"])
        if queue in limits and row.get("tenant_id") is not None:
            groups[(queue, row["tenant_id"])].append(row)
    for row in rows:
        row.setdefault("parked_at", None)  # one shape for the multi-row INSERT
    parked: set[uuid.UUID] = set()
    now = utcnow()
    for (queue, tenant_id), group in sorted(groups.items(), key=lambda item: str(item[0])):
        _lock(session, queue, tenant_id, wait=True)
        in_flight, waiting = standing(session, queue, tenant_id)
        room = 0 if waiting else max(limits[queue] - in_flight, 0)
        for row in group[room:]:
            row["parked_at"] = now
            parked.add(row["id"])
    return parked


def release(session: Session, queue: str, tenants: Iterable[uuid.UUID] | None = None, *,
            wait: bool = True) -> list[dict[str, Any]]:
    """Un-park what the tenants' free slots allow (every tenant with parked rows if None).

    Returns the released outbox rows, interleaved tenant by tenant, to be published in
    that order after the caller commits (``outbox.release_parked`` does both). With
    ``wait=False`` a tenant whose lock is held by someone else is skipped: that holder
    (a request admitting, a worker completing) decides for it. A queue this process has no
    limit for releases everything parked on it (a limit removed, or set in another process
    only, must not strand work).
    """
    limit = limits_of(session).get(queue)
    if tenants is None:
        tenants = _tenants_with_parked(session, queue)
    batches: list[list[dict[str, Any]]] = []
    for tenant_id in tenants:
        if not _lock(session, queue, tenant_id, wait=wait):
            continue
        in_flight, waiting = standing(session, queue, tenant_id)
        room = waiting if limit is None else min(limit - in_flight, waiting)
        if room > 0:
            batches.append(_take_parked(session, queue, tenant_id, room))
    order = [row for turn in zip_longest(*batches) for row in turn if row is not None]
    return _mark_released(session, order)


def _tenants_with_parked(session: Session, queue: str) -> list[uuid.UUID]:
    """Tenants with parked deliveries on ``queue``, the one waiting longest first."""
    oldest = func.min(outbox.c.created_at)
    rows = session.execute(
        select(outbox.c.tenant_id, oldest)
        .where(outbox.c.parked_at.is_not(None), outbox.c.handler.in_(handlers_of(queue)),
               outbox.c.completed_at.is_(None), outbox.c.dead_at.is_(None))
        .group_by(outbox.c.tenant_id).order_by(oldest, outbox.c.tenant_id)).all()
    return [row[0] for row in rows]


def _take_parked(session: Session, queue: str, tenant_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(outbox).where(_open(queue, tenant_id), outbox.c.parked_at.is_not(None))
        .order_by(outbox.c.created_at, outbox.c.id).limit(count).with_for_update(skip_locked=True)
    ).mappings().all()
    return [dict(row) for row in rows]


def _mark_released(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    now = utcnow()
    due = now + timedelta(seconds=session.info["lease_seconds"])
    session.execute(update(outbox).where(outbox.c.id.in_([row["id"] for row in rows]))
                    .values(parked_at=None, sent_at=now, next_attempt_at=due))
    return [{**row, "parked_at": None, "sent_at": now, "next_attempt_at": due} for row in rows]


def fair_queues(session: Session) -> list[str]:
    """The queues under admission control in this process, and any other queue that has
    parked deliveries in the session's database."""
    parked = session.scalars(select(outbox.c.handler).distinct().where(
        outbox.c.parked_at.is_not(None), outbox.c.completed_at.is_(None), outbox.c.dead_at.is_(None)))
    return sorted(set(limits_of(session)) | {queue_of(handler) for handler in parked})
