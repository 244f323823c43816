"""The language of a page (Flask-Babel's selector, done here): the signed-in user's choice,
else the browser's ``Accept-Language``, else ``DEFAULT_LOCALE``; product strings with the
tenant's overrides. Templates call ``_("...")``, ``current_locale()`` and ``status_label(kind,
code)``; views call ``gettext``; forms label their fields with ``_l`` (translated when rendered)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from babel.numbers import format_decimal
from babel.support import LazyProxy
from flask import Flask, current_app, g, request

from config.settings import Settings
from domain.assets import queries as assets
from domain.bootstrap import build_catalogues
from domain.employment import queries as employment
from domain.notifications import queries as notifications
from domain.publications import queries as publications
from domain.purchases import queries as purchases
from domain.tenancy import queries as tenancy
from domain.translations import services as translations
from domain.translations.catalogues import Catalogues
from domain.translations.translator import Translator
from web.db import provider


def catalogues() -> Catalogues:
    """This process's catalogues."""
    return current_app.extensions["allotment.catalogues"]  # type: ignore[no-any-return]


def page_translator() -> Translator:
    """The request's translator, built on first use (after the view knows its caller)."""
    if "translator" not in g:
        caller = g.get("caller")
        g.translator = translations.page_translator(
            provider(), catalogues(), user_id=caller.user_id if caller else None,
            tenant_id=caller.tenant_id if caller else None,
            accepted=[language for language, _quality in request.accept_languages])
    return g.translator  # type: ignore[no-any-return]


def gettext(key: str, /, **params: Any) -> str:
    """A product string in the page's language."""
    return page_translator().gettext(key, **params)


def lazy_gettext(key: str, /, **params: Any) -> LazyProxy:
    """A product string translated when it is shown, not when it is defined: form labels
    and validator messages, which are built once per process. Babel extracts ``_l``."""
    return LazyProxy(gettext, key, enable_cache=False, **params)


_l = lazy_gettext


def current_locale() -> str:
    """The page's language (for ``<html lang>``)."""
    return page_translator().locale


def number(value: int) -> str:
    """A whole number as the page's language writes it (1,500 in English, 1.500 in German)."""
    return str(format_decimal(value, locale=current_locale()))


# The kinds of status pages name, each with the labels its context keeps beside its codes.
STATUS_LABELS: dict[str, Mapping[str, str]] = {
    "asset": assets.STATUS_LABELS,
    "email": notifications.EMAIL_STATE_LABELS,
    "employee": employment.STATUS_LABELS,
    "import": employment.IMPORT_STATUS_LABELS,
    "import_phase": employment.IMPORT_PHASE_LABELS,
    "publication": publications.STATUS_LABELS,
    "purchase": purchases.STATUS_LABELS,
    "tenant": tenancy.STATUS_LABELS,
}


def status_label(kind: str, code: str) -> str:
    """``code``, a status of ``kind`` (a key of ``STATUS_LABELS``), as the page's language names
    it; a code without a label reads as itself, spaced (``on_hold``: "on hold")."""
    label = STATUS_LABELS[kind].get(code)
    return gettext(label) if label else code.replace("_", " ")


def init_app(app: Flask, settings: Settings) -> None:
    """Load the catalogues once and give every template ``_``, ``current_locale``, ``number`` and
    ``status_label``."""
    app.extensions["allotment.catalogues"] = build_catalogues(settings)
    app.jinja_env.globals.update(_=gettext, gettext=gettext, current_locale=current_locale, number=number,
                                 status_label=status_label)
