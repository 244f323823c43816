"""HTML pages of the publications context: the reader's list and a publication opened (its
read receipt recorded), and for authors the tenant's publications with their read counts,
the draft form with its sections (added, changed, moved, removed) and publishing.

Every change goes through the same domain services as the JSON API; a refusal is shown
next to the field it names with the domain error's status, and a publication of another
tenant is a 404 page.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import flash, g, redirect, render_template, url_for
from werkzeug.wrappers import Response

from domain.assets import queries as asset_queries
from domain.employment import queries as employment
from domain.errors import DomainError
from domain.publications import audience, queries, reading, services
from domain.publications.queries import PublicationView
from web.auth import page_requires
from web.forms import place_error
from web.i18n import gettext
from web.pages import page_number
from web.publications import bp
from web.publications.common import PUBLISH, READ, author, db, management, settings
from web.publications.forms import DRAFT_FIELDS, MoveForm, PublicationForm, PublishForm, SectionForm
from web.storage import storage

# Errors shown beside one section's controls: {section id: {field: [reason]}}.
SectionErrors = dict[uuid.UUID, dict[str, list[str]]]


def _see_other(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), code=303)


# --- readers ------------------------------------------------------------------------------

@bp.get("/publications")
@page_requires(READ)
def received_page() -> Any:
    """The publications addressed to me, newest first."""
    found = reading.received(db(), management(), g.caller.user_id, page=page_number())
    return render_template("publications/received.html", found=found, may_publish=g.caller.may(PUBLISH))


@bp.get("/publications/<uuid:publication_id>")
@page_requires(READ)
def read_page(publication_id: uuid.UUID) -> Any:
    """A publication addressed to me (opening it records my read receipt)."""
    view = reading.open_received(db(), management(), g.caller.user_id, publication_id)
    return render_template("publications/read.html", publication=view)


@bp.get("/publications/<uuid:publication_id>/attachments/<uuid:asset_id>")
@page_requires(READ)
def attachment_page(publication_id: uuid.UUID, asset_id: uuid.UUID) -> Any:
    """Download an attachment of a publication addressed to me (a signed, expiring link)."""
    link = reading.attachment_link(db(), management(), storage(), g.caller.user_id,
                                   publication_id=publication_id, asset_id=asset_id,
                                   link_seconds=settings().asset_link_seconds)
    return redirect(link.url, code=303)


# --- authors ------------------------------------------------------------------------------

@bp.get("/publications/manage")
@page_requires(PUBLISH)
def manage_page() -> Any:
    """The tenant's publications, newest first, with where each stands and its read count."""
    return render_template("publications/manage.html", found=queries.publications(db(), page=page_number()))


def _draft_form(form: PublicationForm) -> PublicationForm:
    viewer = asset_queries.Viewer(author().user_id, admin=author().admin)
    form.set_choices(employment.org_units(db()), asset_queries.assets_of(db(), viewer, limit=100))
    return form


def _new(form: PublicationForm, status: int = 200) -> tuple[str, int]:
    return render_template("publications/new.html", form=_draft_form(form)), status


@bp.get("/publications/new")
@page_requires(PUBLISH)
def new_page() -> Any:
    """The form for a new draft."""
    return _new(PublicationForm(formdata=None))


@bp.post("/publications")
@page_requires(PUBLISH)
def create_page() -> Any:
    """Write a new draft."""
    form = _draft_form(PublicationForm())
    if not form.validate_on_submit():
        return _new(form, 422)
    try:
        view = services.create_publication(db(), management(), g.tenant_id, author(), form.draft())
    except DomainError as exc:
        place_error(form, exc, form.title, DRAFT_FIELDS)
        return _new(form, exc.status)
    flash(gettext("Draft saved. Add sections, then publish it."))
    return _see_other("publications.edit_page", publication_id=view.id)


def _form_data(view: PublicationView) -> dict[str, Any]:
    a = view.audience
    return {"title": view.title, "body": view.body, "audience_kind": a.kind, "org_unit_id": a.org_unit_id,
            "sub_units": a.sub_units, "people": "\n".join(audience.emails_of(db(), a.employee_ids)),
            "attachments": [x.asset_id for x in view.attachments]}


def _edit(publication_id: uuid.UUID, *, form: PublicationForm | None = None,
          new_section: SectionForm | None = None, section_errors: SectionErrors | None = None,
          typed: tuple[uuid.UUID, SectionForm] | None = None, publish_form: PublishForm | None = None,
          status: int = 200) -> tuple[str, int]:
    view = queries.publication(db(), publication_id)
    form = form or PublicationForm(formdata=None, data=_form_data(view))
    # One form per section, its fields named as the new section's (each is a form of its own);
    # a refused one shows what was typed.
    sections = {s.id: SectionForm(formdata=None, data={"heading": s.heading, "body": s.body})
                for s in view.sections}
    if typed is not None and typed[0] in sections:
        sections[typed[0]] = typed[1]
    page = render_template("publications/edit.html", publication=view, form=_draft_form(form),
                           sections=sections, new_section=new_section or SectionForm(formdata=None),
                           section_errors=section_errors or {},
                           publish_form=publish_form or PublishForm(formdata=None))
    return page, status


@bp.get("/publications/<uuid:publication_id>/edit")
@page_requires(PUBLISH)
def edit_page(publication_id: uuid.UUID) -> Any:
    """A publication as its authors see it: the draft form and its sections, or where it stands."""
    return _edit(publication_id)


@bp.post("/publications/<uuid:publication_id>/edit")
@page_requires(PUBLISH)
def update_page(publication_id: uuid.UUID) -> Any:
    """Save a draft's title, text, audience and attachments."""
    form = _draft_form(PublicationForm())
    if not form.validate_on_submit():
        return _edit(publication_id, form=form, status=422)
    try:
        services.update_publication(db(), publication_id, author(), form.draft())
    except DomainError as exc:
        if exc.field == "publication_id":
            raise
        place_error(form, exc, form.title, DRAFT_FIELDS)
        return _edit(publication_id, form=form, status=exc.status)
    flash(gettext("Draft saved."))
    return _see_other("publications.edit_page", publication_id=publication_id)


@bp.post("/publications/<uuid:publication_id>/sections")
@page_requires(PUBLISH)
def add_section_page(publication_id: uuid.UUID) -> Any:
    """Add a section at the end."""
    form = SectionForm()
    if not form.validate_on_submit():
        return _edit(publication_id, new_section=form, status=422)
    try:
        services.add_section(db(), publication_id, form.fields())
    except DomainError as exc:
        if exc.field == "publication_id":
            raise
        place_error(form, exc, form.heading)
        return _edit(publication_id, new_section=form, status=exc.status)
    flash(gettext("Section added."))
    return _see_other("publications.edit_page", publication_id=publication_id)


def _section_refused(publication_id: uuid.UUID, section_id: uuid.UUID, exc: DomainError,
                     form: SectionForm | None = None) -> tuple[str, int]:
    if exc.status == 404 and exc.field in ("publication_id", "section_id"):
        raise exc
    return _edit(publication_id, section_errors={section_id: {exc.field or "heading": [exc.reason]}},
                 typed=(section_id, form) if form is not None else None, status=exc.status)


@bp.post("/publications/<uuid:publication_id>/sections/<uuid:section_id>")
@page_requires(PUBLISH)
def update_section_page(publication_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Save a section's heading and text."""
    form = SectionForm()
    if not form.validate_on_submit():
        errors = {name: list(reasons) for name, reasons in form.errors.items()}
        return _edit(publication_id, section_errors={section_id: errors}, typed=(section_id, form),
                     status=422)
    try:
        services.update_section(db(), publication_id, section_id, form.fields())
    except DomainError as exc:
        return _section_refused(publication_id, section_id, exc, form)
    flash(gettext("Section saved."))
    return _see_other("publications.edit_page", publication_id=publication_id)


@bp.post("/publications/<uuid:publication_id>/sections/<uuid:section_id>/move")
@page_requires(PUBLISH)
def move_section_page(publication_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Move a section one place up or down."""
    form = MoveForm()
    if not form.validate_on_submit():
        errors = {section_id: {"direction": [gettext("must be up or down")]}}
        return _edit(publication_id, section_errors=errors, status=422)
    try:
        services.move_section(db(), publication_id, section_id, form.offset)
    except DomainError as exc:
        return _section_refused(publication_id, section_id, exc)
    return _see_other("publications.edit_page", publication_id=publication_id)


@bp.post("/publications/<uuid:publication_id>/sections/<uuid:section_id>/delete")
@page_requires(PUBLISH)
def delete_section_page(publication_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Remove a section."""
    try:
        services.delete_section(db(), publication_id, section_id)
    except DomainError as exc:
        return _section_refused(publication_id, section_id, exc)
    flash(gettext("Section removed."))
    return _see_other("publications.edit_page", publication_id=publication_id)


@bp.post("/publications/<uuid:publication_id>/publish")
@page_requires(PUBLISH)
def publish_page(publication_id: uuid.UUID) -> Any:
    """Publish now (queued) or schedule it."""
    form = PublishForm()
    if not form.validate_on_submit():
        return _edit(publication_id, publish_form=form, status=422)
    try:
        view = services.request_publishing(db(), g.tenant_id, publication_id, publish_at=form.when(),
                                           correlation_id=g.get("request_id"))
    except DomainError as exc:
        if exc.field == "publication_id":
            raise
        place_error(form, exc, form.publish_at)
        return _edit(publication_id, publish_form=form, status=exc.status)
    flash(gettext("Scheduled.") if view.status == "scheduled"
          else gettext("Publishing: it goes out in a moment."))
    return _see_other("publications.edit_page", publication_id=publication_id)


@bp.post("/publications/<uuid:publication_id>/unschedule")
@page_requires(PUBLISH)
def unschedule_page(publication_id: uuid.UUID) -> Any:
    """Take a scheduled publication back to draft."""
    services.unschedule_publication(db(), publication_id)
    flash(gettext("Back to draft."))
    return _see_other("publications.edit_page", publication_id=publication_id)


@bp.post("/publications/<uuid:publication_id>/delete")
@page_requires(PUBLISH)
def delete_page(publication_id: uuid.UUID) -> Any:
    """Delete a draft."""
    services.delete_publication(db(), publication_id)
    flash(gettext("Publication deleted."))
    return _see_other("publications.manage_page")
