"""Read side of the notifications context: a user's notices and unread count."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.notifications import deliveries
from domain.notifications.models import (
    EMAIL_STATE_LABELS,  # noqa: F401 - public for pages: the models are private
    Notice,
)


@dataclass(frozen=True)
class NoticeView:
    """A notice as pages and the API show it."""

    id: uuid.UUID
    category: str
    title: str
    body: str
    created_at: datetime
    read: bool
    email_status: str | None = None
    event_id: uuid.UUID | None = None


@dataclass(frozen=True)
class NoticePage:
    """One page of a user's notices, newest first, with the totals."""

    items: list[NoticeView]
    total: int
    unread: int
    limit: int
    offset: int


def _view(n: Notice) -> NoticeView:
    return NoticeView(n.id, n.category, n.title, n.body, n.created_at, n.read_at is not None, n.email_status,
                      n.event_id)


def first_notice_at(session: Session, category: str) -> datetime | None:
    """When the session's tenant got its first notice of ``category`` (None if never)."""
    return session.scalar(select(func.min(Notice.created_at)).where(Notice.category == category))


def notices_for(session: Session, user_id: uuid.UUID, limit: int = 50, offset: int = 0) -> list[NoticeView]:
    """The user's notices, newest first."""
    rows = session.scalars(select(Notice).where(Notice.user_id == user_id)
                           .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit).offset(offset))
    return [_view(n) for n in rows]


def unread_count(session: Session, user_id: uuid.UUID) -> int:
    """How many of the user's notices are unread."""
    return session.scalar(select(func.count()).select_from(Notice)
                          .where(Notice.user_id == user_id, Notice.read_at.is_(None))) or 0


def notice_page(session: Session, user_id: uuid.UUID, limit: int = 50, offset: int = 0, *,
                management: Session | None = None) -> NoticePage:
    """A page of the user's notices with their total and unread counts (one query for both).

    With ``management``, a notice whose email was ``queued`` when it was written shows what
    became of it since (one more query, only when the page has such notices).
    """
    total, unread = session.execute(select(func.count(), func.count().filter(Notice.read_at.is_(None)))
                                    .where(Notice.user_id == user_id)).one()
    items = notices_for(session, user_id, limit, offset)
    if management is not None:
        items = _email_outcomes(management, user_id, items)
    return NoticePage(items, total, unread, limit, offset)


def _email_outcomes(management: Session, user_id: uuid.UUID, items: list[NoticeView]) -> list[NoticeView]:
    queued = [n.event_id for n in items if n.email_status == "queued"]
    if not queued:
        return items
    states = deliveries.states_for(management, user_id, queued)
    return [replace(n, email_status=states[n.event_id].state) if n.event_id in states else n for n in items]


def unread_between(session: Session, user_id: uuid.UUID, since: datetime, until: datetime,
                   limit: int) -> tuple[list[NoticeView], int]:
    """The user's unread notices created after ``since`` and at the latest ``until`` (newest
    first, at most ``limit``) and how many there are in all."""
    where = (Notice.user_id == user_id, Notice.read_at.is_(None), Notice.created_at > since,
             Notice.created_at <= until)
    count = session.scalar(select(func.count()).select_from(Notice).where(*where)) or 0
    rows = session.scalars(select(Notice).where(*where).order_by(Notice.created_at.desc()).limit(limit))
    return [_view(n) for n in rows], count
