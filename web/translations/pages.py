"""HTML pages of the translations context: the tenant admin's overrides page, and the form
that sets my language (on the notification preferences page)."""
from __future__ import annotations

import uuid
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from domain.errors import DomainError
from domain.translations import services as translations
from web.auth import page_requires
from web.db import management_db
from web.forms import place_error
from web.i18n import catalogues, gettext
from web.translations import bp
from web.translations.forms import DeleteForm, LocaleForm, OverrideForm

ADMIN = "tenant:admin"


def _admin_page(form: OverrideForm, locale: str, status: int = 200) -> tuple[str, int]:
    rows = translations.strings(management_db(), catalogues(), g.tenant_id, locale)
    form.locale.choices = list(catalogues().locales)
    form.key.choices = [("", gettext("choose a string"))] + [(r.key, r.key) for r in rows]
    return render_template("translations/admin.html", form=form, rows=rows, locale=locale,
                           locales=catalogues().locales, delete_form=DeleteForm()), status


def _page_locale() -> str:
    wanted = request.args.get("locale") or request.form.get("locale") or catalogues().default_locale
    return wanted if wanted in catalogues().locales else catalogues().default_locale


@bp.route("/translations/admin", methods=["GET", "POST"])
@page_requires(ADMIN)
def admin_page() -> Any:
    """The tenant's texts for every product string in one language; set one (POST)."""
    form, locale = OverrideForm(), _page_locale()
    if not form.validate_on_submit():
        return _admin_page(form, locale, 422 if form.is_submitted() else 200)
    try:
        translations.set_override(management_db(), catalogues(), g.tenant_id, locale=form.locale.data,
                                  key=form.key.data, text=form.text.data, by=g.user_id)
    except DomainError as exc:
        place_error(form, exc, form.text)
        return _admin_page(form, locale, exc.status)
    flash(gettext("Saved: your text is used from now on."))
    return redirect(url_for("translations.admin_page", locale=form.locale.data), code=303)


@bp.post("/translations/admin/<uuid:override_id>/delete")
@page_requires(ADMIN)
def delete_override_page(override_id: uuid.UUID) -> Any:
    """Remove one of the tenant's overrides; the catalogue's text applies again."""
    translations.delete_override(management_db(), g.tenant_id, override_id)
    flash(gettext("Removed: the product's text is used again."))
    return redirect(url_for("translations.admin_page", locale=_page_locale()), code=303)


@bp.post("/translations/locale")
@page_requires(None, tenant=False)
def set_locale_page() -> Any:
    """Choose my language (empty: follow the browser); back to the preferences page."""
    form = LocaleForm()
    if form.validate_on_submit():
        translations.set_user_locale(management_db(), catalogues(), g.user_id, form.locale.data or None)
    return redirect(url_for("notifications.preferences_page"), code=303)
