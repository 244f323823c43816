"""HTML pages of the assets context: my assets with an upload form (a tenant admin sees
every asset and the usage), an asset's page with its progress and download links.

The upload form's body is parsed as it arrives (web.assets.uploads.StreamedForm): its
CSRF token, the first field, is checked before the file is stored, so this one form is
exempt from the app-wide check that would parse (and spool) the whole body first.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import redirect, render_template, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.wrappers import Response
from wtforms.validators import ValidationError

from domain.assets import queries, services
from domain.assets.services import Upload
from domain.errors import DomainError
from web.assets import bp, flows, uploads
from web.assets.flows import UPLOAD
from web.auth import page_requires
from web.db import tenant_db
from web.i18n import gettext
from web.storage import storage

FILE_FIELD = "file"


def _list_page(*, errors: dict[str, list[str]] | None = None, status: int = 200) -> tuple[str, int]:
    db = tenant_db(flows.tenant_id())
    viewer = flows.viewer()
    usage = policy = None
    if viewer.admin:
        usage, policy = services.tenant_usage(db), flows.policy()
    return render_template("assets/list.html", assets=queries.assets_of(db, viewer, limit=200),
                           admin=viewer.admin, usage=usage, policy=policy, errors=errors or {},
                           max_bytes=flows.settings().asset_max_upload_bytes), status


@bp.get("/assets")
@page_requires(UPLOAD)
def assets_page() -> Any:
    """My assets (every asset for a tenant admin) and the upload form."""
    return _list_page()


@bp.post("/assets")
@page_requires(UPLOAD)
def upload_page() -> Any:
    """Stream the form's file to the storage as a new asset; follow it on its page."""
    uploads.allow_body(flows.settings().asset_max_upload_bytes)
    form = uploads.StreamedForm()
    fields, part = form.fields_then_file(FILE_FIELD)
    try:
        validate_csrf(fields.get("csrf_token"))
    except ValidationError as exc:
        raise CSRFError(str(exc)) from None
    if part is None or not part.filename:
        return _list_page(errors={FILE_FIELD: [gettext("choose a file to upload")]}, status=422)
    try:
        asset = services.receive_upload(tenant_db(flows.tenant_id()), storage(), part,
                                        Upload(part.filename, part.content_type), flows.uploader())
    except DomainError as exc:
        field = exc.field if exc.field in ("filename", "content_type") else FILE_FIELD
        return _list_page(errors={field: [exc.reason]}, status=exc.status)
    return redirect(url_for("assets.asset_page", asset_id=asset.id), code=303)


# The CSRF token is checked above, from the streamed body (web/__init__.py skips its check).
upload_page.checks_own_csrf = True  # type: ignore[attr-defined]


@bp.get("/assets/<uuid:asset_id>")
@page_requires(UPLOAD)
def asset_page(asset_id: uuid.UUID) -> Any:
    """An asset: its progress while it is processed, then what was found and its links."""
    db = tenant_db(flows.tenant_id())
    asset = queries.asset_of(db, asset_id, flows.viewer())
    links: dict[str, str] = {}
    if asset.status == "ready":
        for name in ["original"] + [r.name for r in asset.renditions]:
            links[name] = services.download_link(db, storage(), asset_id, flows.viewer(), rendition=name,
                                                 link_seconds=flows.settings().asset_link_seconds).url
    return render_template("assets/asset.html", asset=asset, links=links)


@bp.post("/assets/<uuid:asset_id>/delete")
@page_requires(UPLOAD)
def delete_page(asset_id: uuid.UUID) -> Response:
    """Delete an asset and go back to the list."""
    flows.delete_asset(asset_id)
    return redirect(url_for("assets.assets_page"), code=303)

