"""Use cases of the publications context for authors: drafts and their sections, and
publishing (at once, or scheduled).

Each takes the tenant's session (``db``); the caller commits. A publication can be changed
while it is a draft or scheduled; once it is publishing (or out) every change is a 409.
Publishing records the row ``publishing`` and the ``PublishPublication`` command in the
same transaction (DESIGN §4.1); the ``publications`` worker does the rest.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.assets import queries as asset_queries
from domain.assets.errors import AssetNotFound
from domain.db.base import utcnow
from domain.errors import NotFound
from domain.identity import services as identity
from domain.messaging import outbox
from domain.messaging.contracts.publications import PublishPublicationV1
from domain.publications import audience as audiences
from domain.publications import queries
from domain.publications.audience import Audience
from domain.publications.errors import InvalidInput, NotEditable, PublicationNotFound, SectionNotFound
from domain.publications.models import EDITABLE, Publication, Section
from domain.publications.queries import PublicationView, SectionView
from domain.publications.values import clean_title, rendered_body

MAX_SECTIONS = 50
MAX_ATTACHMENTS = 20
# How far ahead a publication may be scheduled (a date past it is a typo, and PostgreSQL's
# timestamps end with the year 9999).
MAX_SCHEDULE_AHEAD = timedelta(days=10 * 365)


@dataclass(frozen=True)
class Author:
    """Who writes: a member, and whether they see every asset of the tenant (an admin) or
    only their own (what they may attach)."""

    user_id: uuid.UUID
    admin: bool = False


@dataclass(frozen=True)
class SectionFields:
    """A section as written: a heading and a Markdown body."""

    heading: str
    body: str = ""


@dataclass(frozen=True)
class Draft:
    """What an author writes about a publication (its sections apart)."""

    title: str
    body: str = ""
    audience: Audience = field(default_factory=Audience)
    attachments: tuple[uuid.UUID, ...] = ()


def _checked_attachments(db: Session, author: Author, asset_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The asset ids, deduplicated, each a ready asset the author can see (404/422 otherwise)."""
    unique = list(dict.fromkeys(asset_ids))
    if len(unique) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
    viewer = asset_queries.Viewer(author.user_id, admin=author.admin)
    for asset_id in unique:
        try:
            asset = asset_queries.asset_of(db, asset_id, viewer)
        except AssetNotFound:
            raise NotFound(f"no such asset: {asset_id}", field="attachments") from None
        if asset.status != "ready":
            raise InvalidInput(f"asset {asset_id} is {asset.status}, not ready", field="attachments")
    return unique


def _apply(db: Session, row: Publication, author: Author, draft: Draft) -> None:
    title = clean_title(draft.title)
    audience = audiences.checked(db, draft.audience)
    attachments = _checked_attachments(db, author, draft.attachments)
    body, body_html = rendered_body(draft.body)  # the costliest check last
    row.title, row.body, row.body_html = title, body, body_html
    row.audience_kind, row.audience_unit_id = audience.kind, audience.org_unit_id
    row.audience_sub_units, row.audience_people = audience.sub_units, list(audience.employee_ids)
    row.attachments = attachments


def _editable(db: Session, publication_id: uuid.UUID) -> Publication:
    row = db.get(Publication, publication_id, with_for_update=True)
    if row is None:
        raise PublicationNotFound()
    if row.status not in EDITABLE:
        raise NotEditable(row.status)
    return row


def _touch(db: Session, row: Publication) -> None:
    row.updated_at = utcnow()
    db.flush()


def create_publication(db: Session, management: Session, tenant_id: uuid.UUID, author: Author,
                       draft: Draft, *, sections: Sequence[SectionFields] = ()) -> PublicationView:
    """A new draft (with its first sections, in order), written by ``author``."""
    user = identity.users_by_id(management, [author.user_id]).get(author.user_id)
    row = Publication(id=uuid.uuid4(), tenant_id=tenant_id, author_id=author.user_id,
                      author_name=user.name if user else "", status="draft")
    if len(sections) > MAX_SECTIONS:
        raise InvalidInput(f"at most {MAX_SECTIONS} sections", field="sections")
    _apply(db, row, author, draft)
    checked = [_checked_section(s, f"sections.{i}.") for i, s in enumerate(sections)]
    db.add(row)
    db.flush()
    for position, (heading, body, body_html) in enumerate(checked):
        db.add(Section(id=uuid.uuid4(), tenant_id=tenant_id, publication_id=row.id, position=position,
                       heading=heading, body=body, body_html=body_html))
    db.flush()
    return queries.view_of(db, row)


def update_publication(db: Session, publication_id: uuid.UUID, author: Author,
                       draft: Draft) -> PublicationView:
    """Replace a draft's title, body, audience and attachments (its sections stay)."""
    row = _editable(db, publication_id)
    _apply(db, row, author, draft)
    _touch(db, row)
    return queries.view_of(db, row)


def delete_publication(db: Session, publication_id: uuid.UUID) -> None:
    """Delete a draft or a scheduled publication (its sections go with it)."""
    db.delete(_editable(db, publication_id))
    db.flush()


# --- sections ---------------------------------------------------------------------------

def _checked_section(fields: SectionFields, prefix: str = "") -> tuple[str, str, str]:
    """The heading, the body and the body's HTML."""
    return clean_title(fields.heading, f"{prefix}heading"), *rendered_body(fields.body, f"{prefix}body")


def _sections(db: Session, publication_id: uuid.UUID) -> list[Section]:
    return list(db.scalars(select(Section).where(Section.publication_id == publication_id)
                           .order_by(Section.position)))


def _section(db: Session, publication_id: uuid.UUID, section_id: uuid.UUID) -> Section:
    section = db.scalar(select(Section).where(Section.id == section_id,
                                              Section.publication_id == publication_id))
    if section is None:
        raise SectionNotFound()
    return section


def _section_view(section: Section) -> SectionView:
    return SectionView(section.id, section.position, section.heading, section.body, section.body_html)


def add_section(db: Session, publication_id: uuid.UUID, fields: SectionFields) -> SectionView:
    """A new section at the end of a draft."""
    row = _editable(db, publication_id)
    count = db.scalar(select(func.count()).select_from(Section).where(Section.publication_id == row.id)) or 0
    if count >= MAX_SECTIONS:
        raise InvalidInput(f"at most {MAX_SECTIONS} sections", field="sections")
    heading, body, body_html = _checked_section(fields)
    section = Section(id=uuid.uuid4(), tenant_id=row.tenant_id, publication_id=row.id, position=count,
                      heading=heading, body=body, body_html=body_html)
    db.add(section)
    _touch(db, row)
    return _section_view(section)


def update_section(db: Session, publication_id: uuid.UUID, section_id: uuid.UUID,
                   fields: SectionFields) -> SectionView:
    """Replace a section's heading and body."""
    row = _editable(db, publication_id)
    section = _section(db, publication_id, section_id)
    section.heading, section.body, section.body_html = _checked_section(fields)
    _touch(db, row)
    return _section_view(section)


def delete_section(db: Session, publication_id: uuid.UUID, section_id: uuid.UUID) -> None:
    """Remove a section; the ones after it move up."""
    row = _editable(db, publication_id)
    db.delete(_section(db, publication_id, section_id))
    db.flush()
    for position, section in enumerate(_sections(db, publication_id)):
        section.position = position
    _touch(db, row)


def reorder_sections(db: Session, publication_id: uuid.UUID,
                     section_ids: Sequence[uuid.UUID]) -> list[SectionView]:
    """Put the sections in the order of ``section_ids`` (every section of it, once each)."""
    row = _editable(db, publication_id)
    sections = {s.id: s for s in _sections(db, publication_id)}
    if len(section_ids) != len(set(section_ids)):
        raise InvalidInput("names a section twice", field="section_ids")
    unknown = [i for i in section_ids if i not in sections]
    if unknown:
        raise NotFound(f"no such section: {unknown[0]}", field="section_ids")
    if len(section_ids) != len(sections):
        raise InvalidInput(f"must name all {len(sections)} sections", field="section_ids")
    for position, section_id in enumerate(section_ids):
        sections[section_id].position = position
    _touch(db, row)
    return queries.sections_of(db, publication_id)


def move_section(db: Session, publication_id: uuid.UUID, section_id: uuid.UUID,
                 offset: int) -> list[SectionView]:
    """Move a section ``offset`` places up (negative) or down, within the publication."""
    order = [s.id for s in _sections(db, publication_id)]
    if section_id not in order:
        _editable(db, publication_id)  # a publication that is not found or not editable says so first
        raise SectionNotFound()
    index = order.index(section_id)
    order.insert(max(0, min(len(order) - 1, index + offset)), order.pop(index))
    return reorder_sections(db, publication_id, order)


# --- publishing -------------------------------------------------------------------------

def request_publishing(db: Session, tenant_id: uuid.UUID, publication_id: uuid.UUID, *,
                       publish_at: datetime | None, correlation_id: str | None,
                       now: datetime | None = None) -> PublicationView:
    """Publish now (``publishing`` and the command, one transaction) or, with ``publish_at``
    in the future, schedule it for beat."""
    row = _editable(db, publication_id)
    now = now or utcnow()
    if publish_at is not None and publish_at.tzinfo is None:
        raise InvalidInput("must carry a time zone (e.g. 2030-01-31T09:00:00Z)", field="publish_at")
    if publish_at is not None and publish_at > now + MAX_SCHEDULE_AHEAD:
        raise InvalidInput(f"must be within {MAX_SCHEDULE_AHEAD.days // 365} years", field="publish_at")
    audiences.checked(db, queries.audience_of(row))  # the unit or the people may have gone since
    row.error = None
    if publish_at is not None and publish_at > now:
        row.status, row.publish_at = "scheduled", publish_at
    else:
        row.status, row.publish_at = "publishing", now
        outbox.record(db, PublishPublicationV1(publication_id=row.id, tenant_id=tenant_id),
                      tenant_id=tenant_id, correlation_id=correlation_id)
    _touch(db, row)
    return queries.view_of(db, row)


def unschedule_publication(db: Session, publication_id: uuid.UUID) -> PublicationView:
    """Take a scheduled publication back to draft (a draft stays one)."""
    row = _editable(db, publication_id)
    row.status, row.publish_at = "draft", None
    _touch(db, row)
    return queries.view_of(db, row)
