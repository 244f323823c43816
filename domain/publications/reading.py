"""The readers' side: the publications addressed to a user, newest first, and opening one,
which records its read receipt once.

A delivery made to an account (the employee's when it went out) is that account's alone. One
made to an employee with no account is read by the account whose email is the employee's
work email (employment's public query), and the first opening makes it that account's: a
work email changed later to someone else's address reads nothing already delivered to an
account or opened.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from domain.assets import services as asset_services
from domain.assets.services import Link
from domain.assets.storage import Storage
from domain.db.base import utcnow
from domain.errors import NotFound
from domain.publications import audience, queries
from domain.publications.errors import PublicationNotFound
from domain.publications.models import Delivery, Publication
from domain.publications.queries import MAX_PER_PAGE, AttachmentView, Page, SectionView


@dataclass(frozen=True)
class Received:
    """A publication in a reader's list."""

    id: uuid.UUID
    title: str
    author_name: str
    published_at: datetime
    read_at: datetime | None


@dataclass(frozen=True)
class ReaderView:
    """A publication as its reader sees it (rendered HTML only)."""

    id: uuid.UUID
    title: str
    body_html: str
    sections: list[SectionView]
    attachments: list[AttachmentView]
    author_name: str
    published_at: datetime
    read_at: datetime


def _mine(db: Session, management: Session, user_id: uuid.UUID) -> ColumnElement[bool]:
    employees = audience.reader_employee_ids(db, management, user_id)
    unclaimed = and_(Delivery.user_id.is_(None), Delivery.employee_id.in_(employees))
    return or_(Delivery.user_id == user_id, unclaimed)


def received(db: Session, management: Session, user_id: uuid.UUID, *, page: int = 1,
             per_page: int = 25) -> Page[Received]:
    """The published publications addressed to ``user_id``, newest first."""
    per_page, page = max(1, min(per_page, MAX_PER_PAGE)), max(1, page)
    mine = (select(Delivery.publication_id, func.min(Delivery.read_at).label("read_at"))
            .where(_mine(db, management, user_id)).group_by(Delivery.publication_id).subquery())
    base = select(Publication.id).join(mine, mine.c.publication_id == Publication.id).where(
        Publication.status == "published")
    total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = db.execute(
        select(Publication.id, Publication.title, Publication.author_name, Publication.published_at,
               mine.c.read_at).join(mine, mine.c.publication_id == Publication.id)
        .where(Publication.status == "published")
        .order_by(Publication.published_at.desc(), Publication.id)
        .limit(per_page).offset((page - 1) * per_page))
    return Page([Received(*row) for row in rows], total, page, per_page)


def open_received(db: Session, management: Session, user_id: uuid.UUID,
                  publication_id: uuid.UUID) -> ReaderView:
    """A publication addressed to ``user_id``; the first opening records its read receipt."""
    mine = _mine(db, management, user_id)
    row = db.scalar(select(Publication).where(
        Publication.id == publication_id, Publication.status == "published",
        Publication.id.in_(select(Delivery.publication_id).where(mine))))
    if row is None:
        raise PublicationNotFound()
    # The first opening records the receipt and claims a delivery that named no account.
    db.execute(update(Delivery).where(Delivery.publication_id == publication_id, mine,
                                      or_(Delivery.read_at.is_(None), Delivery.user_id.is_(None)))
               .values(read_at=func.coalesce(Delivery.read_at, utcnow()), user_id=user_id))
    read_at = db.scalar(select(func.min(Delivery.read_at))
                        .where(Delivery.publication_id == publication_id, mine))
    assert row.published_at is not None and read_at is not None
    return ReaderView(row.id, row.title, row.body_html, queries.sections_of(db, row.id),
                      [a for a in queries.attachments_of(db, list(row.attachments or ())) if a.available],
                      row.author_name, row.published_at, read_at)


def attachment_link(db: Session, management: Session, storage: Storage, user_id: uuid.UUID, *,
                    publication_id: uuid.UUID, asset_id: uuid.UUID, link_seconds: int) -> Link:
    """A signed, expiring link to an attachment of a publication addressed to ``user_id``."""
    view = open_received(db, management, user_id, publication_id)
    if asset_id not in {a.asset_id for a in view.attachments}:
        raise NotFound("no such attachment", field="asset_id")
    return asset_services.download_link(db, storage, asset_id, queries.ANY_ASSET, rendition="original",
                                        link_seconds=link_seconds)
