"""Looking a product string up in one language, with a tenant's overrides first."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from babel.dates import format_datetime

from domain.translations.catalogues import Catalogues, has_width, placeholders, plain_conversions


def N_(key: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction, translate later"
    """Mark ``key`` as a product string (Babel extracts it) without translating it yet."""
    return key


class Translator:
    """Product strings in ``locale``: the tenant's override, else the locale's catalogue, else
    the default locale's, else the key itself. Placeholders are ``%(name)s``."""

    def __init__(self, locale: str, catalogues: Catalogues,
                 overrides: Mapping[str, str] | None = None) -> None:
        self.locale = locale
        self.catalogues = catalogues
        # Texts saved before their conversions were checked (services._check_text) are left out.
        self.overrides = {key: text for key, text in (overrides or {}).items()
                          if (plain_conversions(text) if placeholders(key) else not has_width(text))}

    def gettext(self, key: str, /, **params: object) -> str:
        """The text of ``key`` with ``params`` filled in."""
        # Only a string with placeholders is filled in: one without is shown as written, "%" and
        # all, whatever its caller passes.
        fill = bool(params) and bool(placeholders(key))
        for text in (self.overrides.get(key), self.catalogues.lookup(self.locale, key),
                     self.catalogues.lookup(self.catalogues.default_locale, key)):
            if text:
                try:
                    return text % params if fill else text
                except (KeyError, ValueError, TypeError):
                    continue  # a broken translation falls back to the next source
        return key % params if fill else key

    __call__ = gettext

    def datetime(self, moment: datetime) -> str:
        """``moment`` as this locale writes a date and time (UTC)."""
        return format_datetime(moment, "medium", tzinfo=UTC, locale=self.locale) + " UTC"
