"""Read side of the publications context for authors: the tenant's publications with where
each stands and how many of its recipients have read it, and one publication in full."""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.assets import queries as asset_queries
from domain.assets.errors import AssetNotFound
from domain.publications.audience import Audience
from domain.publications.errors import PublicationNotFound
from domain.publications.models import (
    EDITABLE,
    STATUS_LABELS,  # noqa: F401 - public for pages: the models are private
    Delivery,
    Publication,
    Section,
)

T = TypeVar("T")
MAX_PER_PAGE = 100
# Attached assets are shown whoever uploaded them: attaching one shares it with the readers.
ANY_ASSET = asset_queries.Viewer(uuid.UUID(int=0), admin=True)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list."""

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the whole list has (at least one)."""
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True)
class SectionView:
    """A section as written and as rendered."""

    id: uuid.UUID
    position: int
    heading: str
    body: str
    body_html: str


@dataclass(frozen=True)
class AttachmentView:
    """An attached asset: what a reader sees of it (``available`` False: since deleted)."""

    asset_id: uuid.UUID
    filename: str
    kind: str | None
    size: int
    available: bool


@dataclass(frozen=True)
class Summary:
    """A publication in the authors' list."""

    id: uuid.UUID
    title: str
    status: str
    author_name: str
    publish_at: datetime | None
    published_at: datetime | None
    created_at: datetime
    recipients: int
    read: int


@dataclass(frozen=True)
class PublicationView:
    """A publication in full, as its authors see it."""

    id: uuid.UUID
    title: str
    body: str
    body_html: str
    status: str
    audience: Audience
    attachments: list[AttachmentView]
    sections: list[SectionView]
    publish_at: datetime | None
    author_id: uuid.UUID
    author_name: str
    recipients: int
    notified: int
    read: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None

    @property
    def editable(self) -> bool:
        """True while nothing of it went out (a draft, scheduled, or failed)."""
        return self.status in EDITABLE


def audience_of(row: Publication) -> Audience:
    """The audience a publication row asks for."""
    return Audience(row.audience_kind, row.audience_unit_id, row.audience_sub_units,
                    tuple(row.audience_people or ()))


def sections_of(db: Session, publication_id: uuid.UUID) -> list[SectionView]:
    """A publication's sections in order."""
    rows = db.scalars(select(Section).where(Section.publication_id == publication_id)
                      .order_by(Section.position))
    return [SectionView(s.id, s.position, s.heading, s.body, s.body_html) for s in rows]


def attachments_of(db: Session, asset_ids: list[uuid.UUID]) -> list[AttachmentView]:
    """The attached assets in order (the publication makes them visible to its readers)."""
    found = []
    for asset_id in asset_ids:
        try:
            asset = asset_queries.asset_of(db, asset_id, ANY_ASSET)
        except AssetNotFound:
            found.append(AttachmentView(asset_id, "(deleted)", None, 0, False))
            continue
        ready = asset.status == "ready"
        found.append(AttachmentView(asset_id, asset.filename, asset.kind, asset.size, ready))
    return found


def read_count(db: Session, publication_id: uuid.UUID) -> int:
    """How many of its recipients have opened it."""
    return db.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.publication_id == publication_id, Delivery.read_at.is_not(None))) or 0


def view_of(db: Session, row: Publication) -> PublicationView:
    """The full view of a publication row."""
    return PublicationView(
        row.id, row.title, row.body, row.body_html, row.status, audience_of(row),
        attachments_of(db, list(row.attachments or ())), sections_of(db, row.id), row.publish_at,
        row.author_id, row.author_name, row.recipients, row.notified, read_count(db, row.id), row.error,
        row.created_at, row.updated_at, row.published_at)


def publication(db: Session, publication_id: uuid.UUID) -> PublicationView:
    """One publication of the tenant (PublicationNotFound otherwise)."""
    row = db.get(Publication, publication_id)
    if row is None:
        raise PublicationNotFound()
    return view_of(db, row)


def publications(db: Session, *, page: int = 1, per_page: int = 25) -> Page[Summary]:
    """The tenant's publications, newest first, with their read counts."""
    per_page, page = max(1, min(per_page, MAX_PER_PAGE)), max(1, page)
    total = db.scalar(select(func.count()).select_from(Publication)) or 0
    reads = (select(Delivery.publication_id, func.count().label("n")).where(Delivery.read_at.is_not(None))
             .group_by(Delivery.publication_id).subquery())
    rows = db.execute(
        select(Publication, func.coalesce(reads.c.n, 0))
        .outerjoin(reads, reads.c.publication_id == Publication.id)
        .order_by(func.coalesce(Publication.published_at, Publication.created_at).desc(), Publication.id)
        .limit(per_page).offset((page - 1) * per_page))
    items = [Summary(p.id, p.title, p.status, p.author_name, p.publish_at, p.published_at, p.created_at,
                     p.recipients, read) for p, read in rows]
    return Page(items, total, page, per_page)
