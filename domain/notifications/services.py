"""Use cases of the notifications context called by the web tier: reading notices."""
from __future__ import annotations

import uuid

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.notifications.models import Notice


def mark_read(session: Session, user_id: uuid.UUID, notice_id: uuid.UUID) -> None:
    """Mark one of the user's notices read (already read: nothing changes); NotFound for any
    other notice, of another user or another tenant (the session is the tenant's)."""
    found = session.execute(update(Notice).where(Notice.id == notice_id, Notice.user_id == user_id)
                            .values(read_at=func.coalesce(Notice.read_at, func.now()))
                            .returning(Notice.id)).first()
    if found is None:
        raise NotFound("no such notice", field="notice_id")


def mark_all_read(session: Session, user_id: uuid.UUID) -> int:
    """Mark every unread notice of the user read; how many were."""
    result = session.execute(update(Notice).where(Notice.user_id == user_id, Notice.read_at.is_(None))
                             .values(read_at=func.now()).returning(Notice.id))
    return len(result.all())
