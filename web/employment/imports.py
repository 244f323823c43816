"""Bulk import of employees through the web: upload a CSV (API or form), follow its run.

An upload may be up to ``rows.MAX_BYTES``, more than other requests may send: the two
upload views raise the limit for their own request once the caller is known, before they
read the body. The form's CSRF token is checked then too (web/__init__.py skips its own
check, which would read 10 MiB from anyone before the view could say who they are).
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, g, jsonify, redirect, render_template, request, url_for
from pydantic import BaseModel, Field
from werkzeug.datastructures import FileStorage

from domain.employment import imports, queries, rows
from domain.employment.queries import ImportView
from domain.errors import DomainError
from web.api import Number, Query, accepted, parse_query
from web.auth import page_requires, requires
from web.employment import bp
from web.employment.common import WRITE, db
from web.employment.forms import ImportForm
from web.errors import ApiError
from web.forms import place_error
from web.openapi import doc
from web.pages import page_number

_ENVELOPE = 64 * 1024  # multipart headers and the CSRF field around the file


def _allow_import_file() -> None:
    """Let this request's body hold an import file (called once the caller may upload one)."""
    request.max_content_length = rows.MAX_BYTES + _ENVELOPE


class ImportAccepted(BaseModel):
    """The file is kept and its run queued; follow the status URL."""

    id: uuid.UUID
    rows_total: int
    status_url: str


class ProblemOut(BaseModel):
    """Why one line was not (fully) applied."""

    line: int
    field: str
    reason: str


class ImportOut(BaseModel):
    """Where an import stands, with one page of its problems (by line)."""

    id: uuid.UUID
    filename: str
    status: str  # pending | running | completed | failed
    phase: str  # employees | managers | done
    percent: int
    rows_total: int
    rows_done: int
    managers_done: int
    created: int
    updated: int
    unchanged: int
    failed: int
    edges: int
    error: str | None
    problems_total: int
    page: int
    problems: list[ProblemOut]

    @classmethod
    def of(cls, view: ImportView) -> ImportOut:
        """The JSON shape of an import."""
        return cls(id=view.id, filename=view.filename, status=view.status, phase=view.phase,
                   percent=view.percent, rows_total=view.rows_total, rows_done=view.rows_done,
                   managers_done=view.managers_done, created=view.created, updated=view.updated,
                   unchanged=view.unchanged, failed=view.failed, edges=view.edges, error=view.error,
                   problems_total=view.problems.total, page=view.problems.page,
                   problems=[ProblemOut(**p.__dict__) for p in view.problems.items])


class ImportList(BaseModel):
    """The tenant's latest imports, newest first (problems not included)."""

    items: list[ImportOut]


class ProblemsQuery(Query):
    """Which page of an import's problems."""

    page: Number = Field(default=1, ge=1, le=1_000_000)


def _file(upload: FileStorage | None) -> tuple[str, bytes]:
    """The uploaded file's name and bytes (one byte past the limit: the domain refuses it)."""
    if upload is None or not upload.filename:
        raise ApiError(422, "validation_failed", "attach the CSV file as the multipart field 'file'", "file")
    try:
        return upload.filename, upload.read(rows.MAX_BYTES + 1)
    finally:
        upload.close()  # a big upload is spooled to a temporary file


def _record(filename: str, data: bytes) -> ImportView:
    return imports.record_import(db(), g.tenant_id, filename, data, created_by=g.user_id,
                                 correlation_id=g.get("request_id"))


# --- API ----------------------------------------------------------------------------------

@bp.post("/api/v1/employment/imports")
@requires(WRITE)
@doc("Import employees from a CSV file (multipart field 'file'); columns: "
     + ", ".join(rows.COLUMNS) + " (a column left out keeps what existing employees have)", auth=True,
     responses={202: ImportAccepted, 413: "larger than 10 MB", 415: "not multipart/form-data",
                422: "not a CSV file of known columns"})
def upload_import() -> Any:
    """Keep the file and queue its import; answer 202 with the status URL."""
    _allow_import_file()
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "expected multipart/form-data", "Content-Type")
    view = _record(*_file(request.files.get("file")))
    return accepted(url_for("employment.import_status", import_id=view.id), id=str(view.id),
                    rows_total=view.rows_total)


@bp.get("/api/v1/employment/imports")
@requires(WRITE)
@doc("The tenant's latest imports", responses={200: ImportList}, auth=True)
def list_imports() -> Any:
    """The latest imports, newest first."""
    return jsonify(ImportList(items=[ImportOut.of(v) for v in queries.imports(db())]).model_dump(mode="json"))


@bp.get("/api/v1/employment/imports/<uuid:import_id>")
@requires(WRITE)
@doc("Where an import stands, with a page of its problems", query=ProblemsQuery, responses={200: ImportOut},
     auth=True)
def import_status(import_id: uuid.UUID) -> Any:
    """Progress, counts and problems (100 a page, by line)."""
    query = parse_query(ProblemsQuery)
    return jsonify(ImportOut.of(queries.import_job(db(), import_id, page=query.page)).model_dump(mode="json"))


# --- pages --------------------------------------------------------------------------------

def _imports_page(form: ImportForm, status: int = 200) -> tuple[str, int]:
    page = render_template("employment/imports.html", form=form, imports=queries.imports(db()),
                           columns=rows.COLUMNS, max_mb=rows.MAX_BYTES // (1024 * 1024))
    return page, status


@bp.get("/employment/imports")
@page_requires(WRITE)
def imports_page() -> Any:
    """The upload form and the latest imports."""
    return _imports_page(ImportForm(formdata=None))


@bp.post("/employment/imports")
@page_requires(WRITE)
def upload_import_page() -> Any:
    """Keep the uploaded file, queue its import and follow it."""
    _allow_import_file()
    current_app.extensions["csrf"].protect()  # the app's check, once the caller is known
    form = ImportForm()
    if not form.validate_on_submit():
        return _imports_page(form, 422)
    try:
        view = _record(*_file(form.file.data))
    except DomainError as exc:
        place_error(form, exc, form.file)
        return _imports_page(form, exc.status)
    return redirect(url_for("employment.import_page", import_id=view.id), code=303)


# Its CSRF token is checked in the view, after the caller's (web/__init__.py skips its check).
upload_import_page.checks_own_csrf = True  # type: ignore[attr-defined]


@bp.get("/employment/imports/<uuid:import_id>")
@page_requires(WRITE)
def import_page(import_id: uuid.UUID) -> Any:
    """An import's progress (the page reloads itself until it is done) and its problems."""
    job = queries.import_job(db(), import_id, page=page_number())
    return render_template("employment/import.html", job=job)
