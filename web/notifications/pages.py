"""HTML pages of the notifications context: my notices (newest first, paginated, mark one or
all read), the unread count the header's badge polls, and my preferences."""
from __future__ import annotations

import uuid
from typing import Any

from flask import flash, g, jsonify, redirect, render_template, request, url_for

from domain.errors import DomainError
from domain.notifications import preferences, queries, services
from domain.notifications.categories import CATEGORIES, MANDATORY
from domain.translations import services as translations
from web.auth import page_requires
from web.db import management_db, tenant_db
from web.i18n import catalogues, gettext
from web.notifications import bp
from web.notifications.forms import ActionForm, PreferencesForm
from web.pages import page_number
from web.translations.forms import LocaleForm

READ = "notifications:read"
PER_PAGE = 20


@bp.get("/notifications")
@page_requires(READ)
def notices_page() -> Any:
    """My notices, newest first, twenty a page, each with what became of its email."""
    number = page_number(maximum=100_000)
    page = queries.notice_page(tenant_db(g.tenant_id), g.user_id, PER_PAGE, (number - 1) * PER_PAGE,
                               management=management_db())
    return render_template("notifications/notices.html", page=page, number=number,
                           last=max(1, -(-page.total // PER_PAGE)), form=ActionForm())


@bp.get("/notifications/unread-count")
@page_requires(READ)
def unread_count_page() -> Any:
    """My unread count as JSON (the header's badge polls it with the page's cookie)."""
    return jsonify({"unread": queries.unread_count(tenant_db(g.tenant_id), g.user_id)})


@bp.post("/notifications/<uuid:notice_id>/read")
@page_requires(READ)
def mark_read_page(notice_id: uuid.UUID) -> Any:
    """Mark one of my notices read; back to the list."""
    services.mark_read(tenant_db(g.tenant_id), g.user_id, notice_id)
    return redirect(url_for("notifications.notices_page", page=page_number(maximum=100_000)), code=303)


@bp.post("/notifications/read-all")
@page_requires(READ)
def mark_all_read_page() -> Any:
    """Mark all my notices read; back to the list."""
    marked = services.mark_all_read(tenant_db(g.tenant_id), g.user_id)
    flash(gettext("%(count)s notices marked read.", count=marked))
    return redirect(url_for("notifications.notices_page"), code=303)


def _preferences_page(form: PreferencesForm, status: int = 200, error: DomainError | None = None) -> Any:
    found = preferences.preferences_of(management_db(), g.user_id)
    if not form.is_submitted():
        form.digest.data = found.digest
    locale_form = LocaleForm()
    locale_form.locale.choices = [("", gettext("as my browser asks"))] + [
        (code, code) for code in catalogues().locales]
    locale_form.locale.data = translations.user_locale(management_db(), g.user_id) or ""
    return render_template("notifications/preferences.html", form=form, found=found, labels=CATEGORIES,
                           locale_form=locale_form, error=error), status


@bp.route("/notifications/preferences", methods=["GET", "POST"])
@page_requires(READ)
def preferences_page() -> Any:
    """My channels per category, and the daily digest (POST saves them)."""
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _preferences_page(form, 422 if form.is_submitted() else 200)
    changes = {category: {"email": f"email-{category}" in request.form,
                          "in_app": f"in_app-{category}" in request.form}
               for category in CATEGORIES if category not in MANDATORY}
    try:
        preferences.set_preferences(management_db(), g.user_id, changes, bool(form.digest.data))
    except DomainError as exc:
        return _preferences_page(form, exc.status, exc)
    flash(gettext("Your preferences are saved."))
    return redirect(url_for("notifications.preferences_page"), code=303)
