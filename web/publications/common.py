"""What the publications views share: the caller as an author or reader, the request's
sessions, and the JSON shapes of publications."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import current_app, g
from pydantic import BaseModel

from config.settings import Settings
from domain.db.provider import ProviderSession
from domain.publications.queries import PublicationView
from domain.publications.reading import ReaderView
from domain.publications.services import Author
from web.api import FromView
from web.db import management_db, tenant_db

READ = "publications:read"
PUBLISH = "publications:publish"
ADMIN = "tenant:admin"  # sees (and so may attach) every asset of the tenant


def db() -> ProviderSession:
    """The request's session on the caller's tenant database."""
    return tenant_db(g.tenant_id)


def management() -> ProviderSession:
    """The request's session on the management database (accounts, members)."""
    return management_db()


def settings() -> Settings:
    """This app's settings."""
    return current_app.extensions["allotment.settings"]  # type: ignore[no-any-return]


def author() -> Author:
    """The caller as an author."""
    return Author(g.caller.user_id, admin=g.caller.may(ADMIN))


class AudienceOut(BaseModel):
    """Whom a publication is for."""

    kind: str
    org_unit_id: uuid.UUID | None
    sub_units: bool
    employee_ids: list[uuid.UUID]


class SectionOut(FromView):
    """A section as written (Markdown) and rendered (sanitised HTML)."""

    id: uuid.UUID
    position: int
    heading: str
    body: str
    body_html: str


class AttachmentOut(FromView):
    """An attached asset (``available``: it can still be downloaded)."""

    asset_id: uuid.UUID
    filename: str
    kind: str | None
    size: int
    available: bool


class PublicationOut(BaseModel):
    """A publication in full, as its authors see it, with its read count."""

    id: uuid.UUID
    title: str
    body: str
    body_html: str
    status: str
    audience: AudienceOut
    attachments: list[AttachmentOut]
    sections: list[SectionOut]
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

    @classmethod
    def of(cls, view: PublicationView) -> PublicationOut:
        """The JSON shape of a publication."""
        a = view.audience
        fields: dict[str, Any] = {**view.__dict__}
        fields.update(audience=AudienceOut(kind=a.kind, org_unit_id=a.org_unit_id, sub_units=a.sub_units,
                                           employee_ids=list(a.employee_ids)),
                      attachments=[AttachmentOut.of(x) for x in view.attachments],
                      sections=[SectionOut.of(s) for s in view.sections])
        return cls(**fields)


class SummaryOut(FromView):
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


class ReceivedOut(FromView):
    """A publication in a reader's list (``read_at``: when they first opened it)."""

    id: uuid.UUID
    title: str
    author_name: str
    published_at: datetime
    read_at: datetime | None


class ReaderOut(BaseModel):
    """A publication as its reader sees it."""

    id: uuid.UUID
    title: str
    body_html: str
    sections: list[SectionOut]
    attachments: list[AttachmentOut]
    author_name: str
    published_at: datetime
    read_at: datetime

    @classmethod
    def of(cls, view: ReaderView) -> ReaderOut:
        """The JSON shape of an opened publication."""
        return cls(**{**view.__dict__, "sections": [SectionOut.of(s) for s in view.sections],
                      "attachments": [AttachmentOut.of(x) for x in view.attachments]})
