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


def has_notice(session: Session, category: str) -> bool:
    """True if the session's tenant has a notice of ``category``."""
    return session.scalar(select(func.count()).select_from(Notice).where(
        Notice.category == category)) != 0


def notices_for(session: Session, user_id: uuid.UUID, limit: int = 50, offset: int = 0) -> list[NoticeView]:
    """The user's notices, newest first."""
    rows = session.scalars(select(Notice).where(Notice.user_id == user_id)
                           .order_by(Notice.created_at.desc()).limit(limit).offset(offset))
    return [NoticeView(n.id, n.category, n.title, n.body, n.created_at, n.read_at is not None)
            for n in rows]
