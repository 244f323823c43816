"""JSON API of the publications context: drafts, sections, publishing, and readers' lists."""
from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from flask import g, jsonify, url_for
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from domain.publications import queries, reading, services
from domain.publications.audience import MAX_PEOPLE, Audience
from domain.publications.services import MAX_ATTACHMENTS, MAX_SECTIONS, Draft, SectionFields
from domain.publications.values import MAX_BODY, MAX_TITLE
from web.api import Number, PageOut, PlainText, Query, accepted, parse_json, parse_query
from web.auth import requires
from web.openapi import doc
from web.publications import bp
from web.publications.common import (
    PUBLISH,
    READ,
    PublicationOut,
    ReaderOut,
    ReceivedOut,
    SectionOut,
    SummaryOut,
    author,
    db,
    management,
    settings,
)
from web.storage import storage

Title = Annotated[PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE)]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY)]  # Markdown; checked again by the domain


class AudienceBody(BaseModel):
    """Whom it is for: everyone, an org unit (``sub_units``: and every unit below it), or people."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["everyone", "org_unit", "people"] = "everyone"
    org_unit_id: uuid.UUID | None = None
    sub_units: bool = False
    employee_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_PEOPLE)

    def audience(self) -> Audience:
        """What the domain takes."""
        return Audience(self.kind, self.org_unit_id, self.sub_units, tuple(self.employee_ids))


class SectionBody(BaseModel):
    """A section: a heading and a Markdown body."""

    model_config = ConfigDict(extra="forbid")

    heading: Title
    body: Body = ""

    def fields(self) -> SectionFields:
        """What the domain takes."""
        return SectionFields(self.heading, self.body)


class PublicationBody(BaseModel):
    """A draft: title, Markdown body, audience and attachments (asset ids of ready assets)."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    body: Body = ""
    audience: AudienceBody = Field(default_factory=AudienceBody)
    attachments: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    def draft(self) -> Draft:
        """What the domain takes."""
        return Draft(self.title, self.body, self.audience.audience(), tuple(self.attachments))


class NewPublicationBody(PublicationBody):
    """A new draft, with its first sections in order."""

    sections: list[SectionBody] = Field(default_factory=list, max_length=MAX_SECTIONS)


class SectionOrderBody(BaseModel):
    """Every section of the publication, in the new order."""

    model_config = ConfigDict(extra="forbid")

    section_ids: list[uuid.UUID] = Field(max_length=MAX_SECTIONS)


class PublishBody(BaseModel):
    """Publish now (no ``publish_at``, or one that has passed) or at ``publish_at`` (with a time zone)."""

    model_config = ConfigDict(extra="forbid")

    publish_at: AwareDatetime | None = None


class ListQuery(Query):
    """Paging of a list."""

    page: Number = Field(default=1, ge=1, le=1_000_000)
    per_page: Number = Field(default=25, ge=1, le=queries.MAX_PER_PAGE)


class PublicationPage(PageOut):
    """One page of the tenant's publications, newest first."""

    items: list[SummaryOut]


class ReceivedPage(PageOut):
    """One page of the publications addressed to the caller, newest first."""

    items: list[ReceivedOut]


class SectionList(BaseModel):
    """A publication's sections in order."""

    items: list[SectionOut]


class LinkOut(BaseModel):
    """A signed, expiring download link."""

    url: str
    expires_at: str
    filename: str


def _publication_json(view: queries.PublicationView, status: int = 200) -> Any:
    response = jsonify(PublicationOut.of(view).model_dump(mode="json"))
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("publications.get_publication", publication_id=view.id)
    return response


# --- authors ------------------------------------------------------------------------------

@bp.get("/api/v1/publications")
@requires(PUBLISH)
@doc("List the tenant's publications with their read counts (paged)", query=ListQuery,
     responses={200: PublicationPage},
     auth=True)
def list_publications() -> Any:
    """One page of the tenant's publications, newest first."""
    query = parse_query(ListQuery)
    found = queries.publications(db(), page=query.page, per_page=query.per_page)
    return jsonify(PublicationPage.of(found, [SummaryOut.of(s) for s in found.items]).model_dump(mode="json"))


@bp.post("/api/v1/publications")
@requires(PUBLISH)
@doc("Write a draft", body=NewPublicationBody, auth=True,
     responses={201: PublicationOut, 404: "unknown org unit, employee or asset"})
def create_publication() -> Any:
    """A new draft publication."""
    body = parse_json(NewPublicationBody)
    view = services.create_publication(db(), management(), g.tenant_id, author(), body.draft(),
                                       sections=[s.fields() for s in body.sections])
    return _publication_json(view, 201)


@bp.get("/api/v1/publications/<uuid:publication_id>")
@requires(PUBLISH)
@doc("Read a publication (its status after publishing)", responses={200: PublicationOut, 404: "not found"},
     auth=True)
def get_publication(publication_id: uuid.UUID) -> Any:
    """One publication in full, with its read count."""
    return _publication_json(queries.publication(db(), publication_id))


@bp.put("/api/v1/publications/<uuid:publication_id>")
@requires(PUBLISH)
@doc("Change a draft (its sections stay)", body=PublicationBody, auth=True,
     responses={200: PublicationOut, 404: "not found", 409: "already published"})
def update_publication(publication_id: uuid.UUID) -> Any:
    """Replace a draft's title, body, audience and attachments."""
    body = parse_json(PublicationBody)
    return _publication_json(services.update_publication(db(), publication_id, author(), body.draft()))


@bp.delete("/api/v1/publications/<uuid:publication_id>")
@requires(PUBLISH)
@doc("Delete a draft", auth=True, responses={204: "deleted", 404: "not found", 409: "already published"})
def delete_publication(publication_id: uuid.UUID) -> Any:
    """Delete a draft or scheduled publication."""
    services.delete_publication(db(), publication_id)
    return "", 204


@bp.post("/api/v1/publications/<uuid:publication_id>/sections")
@requires(PUBLISH)
@doc("Add a section at the end", body=SectionBody, auth=True,
     responses={201: SectionOut, 404: "not found", 409: "already published"})
def add_section(publication_id: uuid.UUID) -> Any:
    """A new last section of a draft."""
    body = parse_json(SectionBody)
    view = services.add_section(db(), publication_id, body.fields())
    return jsonify(SectionOut.of(view).model_dump(mode="json")), 201


@bp.put("/api/v1/publications/<uuid:publication_id>/sections/<uuid:section_id>")
@requires(PUBLISH)
@doc("Change a section", body=SectionBody, auth=True,
     responses={200: SectionOut, 404: "not found", 409: "already published"})
def update_section(publication_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Replace a section's heading and body."""
    body = parse_json(SectionBody)
    view = services.update_section(db(), publication_id, section_id, body.fields())
    return jsonify(SectionOut.of(view).model_dump(mode="json"))


@bp.delete("/api/v1/publications/<uuid:publication_id>/sections/<uuid:section_id>")
@requires(PUBLISH)
@doc("Remove a section", auth=True, responses={204: "removed", 404: "not found", 409: "already published"})
def delete_section(publication_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Remove a section; the ones after it move up."""
    services.delete_section(db(), publication_id, section_id)
    return "", 204


@bp.put("/api/v1/publications/<uuid:publication_id>/sections/order")
@requires(PUBLISH)
@doc("Reorder the sections", body=SectionOrderBody, auth=True,
     responses={200: SectionList, 404: "not found", 409: "already published"})
def reorder_sections(publication_id: uuid.UUID) -> Any:
    """Put every section in the order given."""
    body = parse_json(SectionOrderBody)
    views = services.reorder_sections(db(), publication_id, body.section_ids)
    return jsonify(SectionList(items=[SectionOut.of(s) for s in views]).model_dump(mode="json"))


@bp.post("/api/v1/publications/<uuid:publication_id>/publish")
@requires(PUBLISH)
@doc("Publish now (queued) or schedule it", body=PublishBody, auth=True,
     responses={202: PublicationOut, 404: "not found", 409: "already published"})
def publish_publication(publication_id: uuid.UUID) -> Any:
    """Queue publishing (or schedule it); answer 202 with the publication's status URL."""
    body = parse_json(PublishBody)
    view = services.request_publishing(db(), g.tenant_id, publication_id, publish_at=body.publish_at,
                                       correlation_id=g.get("request_id"))
    return accepted(url_for("publications.get_publication", publication_id=view.id),
                    **PublicationOut.of(view).model_dump(mode="json"))


@bp.post("/api/v1/publications/<uuid:publication_id>/unschedule")
@requires(PUBLISH)
@doc("Take a scheduled publication back to draft", auth=True,
     responses={200: PublicationOut, 404: "not found", 409: "already published"})
def unschedule_publication(publication_id: uuid.UUID) -> Any:
    """Back to draft."""
    return _publication_json(services.unschedule_publication(db(), publication_id))


# --- readers ------------------------------------------------------------------------------

@bp.get("/api/v1/publications/received")
@requires(READ)
@doc("The publications addressed to me, newest first (paged)", query=ListQuery, responses={200: ReceivedPage},
     auth=True)
def list_received() -> Any:
    """One page of the publications addressed to the caller."""
    query = parse_query(ListQuery)
    found = reading.received(db(), management(), g.caller.user_id, page=query.page, per_page=query.per_page)
    return jsonify(ReceivedPage.of(found, [ReceivedOut.of(r) for r in found.items]).model_dump(mode="json"))


@bp.get("/api/v1/publications/received/<uuid:publication_id>")
@requires(READ)
@doc("Open a publication addressed to me (records my read receipt once)",
     responses={200: ReaderOut, 404: "not addressed to me"}, auth=True)
def read_publication(publication_id: uuid.UUID) -> Any:
    """A publication addressed to the caller; opening it counts as read."""
    view = reading.open_received(db(), management(), g.caller.user_id, publication_id)
    return jsonify(ReaderOut.of(view).model_dump(mode="json"))


@bp.get("/api/v1/publications/received/<uuid:publication_id>/attachments/<uuid:asset_id>")
@requires(READ)
@doc("A signed, expiring link to an attachment of a publication addressed to me",
     responses={200: LinkOut, 404: "not addressed to me, or no such attachment"}, auth=True)
def attachment_link(publication_id: uuid.UUID, asset_id: uuid.UUID) -> Any:
    """A download link for one attachment."""
    link = reading.attachment_link(db(), management(), storage(), g.caller.user_id,
                                   publication_id=publication_id, asset_id=asset_id,
                                   link_seconds=settings().asset_link_seconds)
    return jsonify(LinkOut(url=link.url, expires_at=link.expires_at.isoformat(), filename=link.filename)
                   .model_dump(mode="json"))
