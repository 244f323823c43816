"""Read side of the notifications context."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.notifications.models import Notice


@dataclass(frozen=True)
class NoticeView:
    """A notice as pages and the API show it."""

    id: uuid.UUID
    category: str
    title: str
    body: str
    created_at: datetime
    read: bool


def first_notice_at(session: Session, category: str) -> datetime | None:
    """When the session's tenant got its first notice of ``category`` (None if never)."""
    return session.scalar(select(func.min(Notice.created_at)).where(Notice.category == category))


def notices_for(session: Session, user_id: uuid.UUID, limit: int = 50, offset: int = 0) -> list[NoticeView]:
    """The user's notices, newest first."""
    rows = session.scalars(select(Notice).where(Notice.user_id == user_id)
                           .order_by(Notice.created_at.desc()).limit(limit).offset(offset))
    return [NoticeView(n.id, n.category, n.title, n.body, n.created_at, n.read_at is not None)
            for n in rows]
