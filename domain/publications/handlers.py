"""Message handlers of the publications context: sending a publication out.

``publish_publication`` runs once per command (the inbox), in one transaction on the
tenant's database: it renders the Markdown again, resolves the audience through
employment's public queries, maps the employees to the tenant's accounts, writes a
delivery row (the read receipt) per recipient and emits ``PublicationPublished`` in parts
of at most ``BATCH`` accounts: each part is one delivery to the notifications pool, which
writes its notices (and sends its emails) in a transaction of its own.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.messaging.contracts.publications import PublicationPublishedV1, PublishPublicationV1
from domain.messaging.handling import HandlerContext
from domain.publications import audience
from domain.publications.models import Delivery, Publication, Section
from domain.publications.queries import audience_of
from domain.publications.rendering import TooComplex, to_html

log = logging.getLogger(__name__)
BATCH = 500  # recipients per PublicationPublished part (one notifications transaction each)
_INSERT_ROWS = 1_000  # delivery rows per INSERT statement


def batches(items: Sequence[uuid.UUID], size: int = BATCH) -> list[list[uuid.UUID]]:
    """``items`` in consecutive parts of at most ``size`` (one empty part for no items)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)] or [[]]


def publish_publication(ctx: HandlerContext, msg: PublishPublicationV1) -> None:
    """Send a publication out: receipts for its audience, notices through the event's parts."""
    db = ctx.session
    row = db.get(Publication, msg.publication_id, with_for_update=True)
    if row is None or row.status != "publishing":  # deleted, or already out: nothing to do
        log.info("publication %s is not waiting to be published", msg.publication_id)
        return
    if (refused := _render(db, row)) is not None:  # saved before the limits; drafts saved since pass them
        row.status, row.error = "failed", refused
        return
    try:
        employees = audience.resolve(db, audience_of(row))
    except audience.AudienceGone as exc:
        row.status, row.error = "failed", str(exc)
        return
    with ctx.provider.management() as management:
        accounts = audience.accounts_of(db, management, msg.tenant_id, employees)
    _record_deliveries(db, msg.tenant_id, row.id, accounts)
    users = list(dict.fromkeys(u for u in accounts.values() if u is not None))
    row.status, row.published_at, row.updated_at = "published", utcnow(), utcnow()
    row.recipients, row.notified = len(accounts), len(users)
    parts = batches(users)
    for number, part in enumerate(parts, 1):
        ctx.emit(PublicationPublishedV1(publication_id=row.id, tenant_id=msg.tenant_id, title=row.title,
                                        author_name=row.author_name, recipient_ids=part,
                                        part=number, parts=len(parts)))


def _render(db: Session, row: Publication) -> str | None:
    """Freeze the HTML of the body and sections as rendered now; or why a body cannot be."""
    try:
        row.body_html = to_html(row.body)
    except TooComplex as exc:
        return f"body: {exc}"
    sections = select(Section).where(Section.publication_id == row.id).order_by(Section.position)
    for section in db.scalars(sections):
        try:
            section.body_html = to_html(section.body)
        except TooComplex as exc:
            return f"sections.{section.position}.body: {exc}"
    return None


def _record_deliveries(db: Session, tenant_id: uuid.UUID, publication_id: uuid.UUID,
                       accounts: dict[uuid.UUID, uuid.UUID | None]) -> None:
    rows = [{"tenant_id": tenant_id, "publication_id": publication_id, "employee_id": employee_id,
             "user_id": user_id} for employee_id, user_id in accounts.items()]
    for start in range(0, len(rows), _INSERT_ROWS):
        db.execute(insert(Delivery).on_conflict_do_nothing(), rows[start:start + _INSERT_ROWS])
