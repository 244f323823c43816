"""Looking a product string up in one language, with a tenant's overrides first."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from babel.dates import format_datetime

from domain.translations.catalogues import Catalogues, plain_conversions


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
        self.overrides = overrides or {}
        # Texts saved before their conversions were checked (services._check_text): left out
        # where they would be filled in.
        self._unfillable = {key for key, text in self.overrides.items() if not plain_conversions(text)}

    def gettext(self, key: str, /, **params: object) -> str:
        """The text of ``key`` with ``params`` filled in."""
        override = None if params and key in self._unfillable else self.overrides.get(key)
        for text in (override, self.catalogues.lookup(self.locale, key),
                     self.catalogues.lookup(self.catalogues.default_locale, key)):
            if text:
                try:
                    return text % params if params else text
                except (KeyError, ValueError, TypeError):
                    continue  # a broken translation falls back to the next source
        return key % params if params else key

    __call__ = gettext

    def datetime(self, moment: datetime) -> str:
        """``moment`` as this locale writes a date and time (UTC)."""
        return format_datetime(moment, "medium", tzinfo=UTC, locale=self.locale) + " UTC"
