"""The compiled gettext catalogues of the product, one per locale, loaded once per process."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

TEMPLATE = "messages.pot"
# A Python-format placeholder: %(name)s, %(count)d ...
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifr]")


# What a tenant's text may hold besides words: "%%" and a placeholder as bare as "%(name)s".
# A width or precision is memory spent on every rendering: "%(name)2000000000s" is 2 GB.
_PLAIN_CONVERSION = re.compile(r"%%|%\(\w+\)[sdifr]")
# A "%" that a later "%" formatting would read as a width or precision ("%20s", "%(x).9f",
# "%*d"), where the text is shown as written but may still be formatted by a caller (a form
# library's message); "10 % Rabatt" is words.
_WIDTH = re.compile(r"%(?:\(\w*\))?[-#0 +]*(?:\d|\*|\.)")


@functools.lru_cache(maxsize=4096)
def placeholders(text: str) -> frozenset[str]:
    """The names of the ``%(name)s`` placeholders in ``text``."""
    return frozenset(PLACEHOLDER.findall(text))


def plain_conversions(text: str) -> bool:
    """True when every ``%`` of ``text`` is ``%%`` or a placeholder with no flags, width or
    precision (``%(name)s``, ``%(count)d``)."""
    return "%" not in _PLAIN_CONVERSION.sub("", text)


def has_width(text: str) -> bool:
    """True when a ``%`` of ``text`` (not ``%%``) would be read as a width or precision."""
    return _WIDTH.search(text.replace("%%", "")) is not None


class Catalogues:
    """Every locale's compiled catalogue (``<root>/<locale>/LC_MESSAGES/messages.mo``) and the
    template of keys (``<root>/messages.pot``)."""

    def __init__(self, root: Path, default_locale: str) -> None:
        self.root = root
        self.default_locale = default_locale
        self._strings: dict[str, dict[str, str]] = {}
        for mo in sorted(root.glob("*/LC_MESSAGES/messages.mo")):
            with mo.open("rb") as handle:
                catalog = read_mo(handle)
            self._strings[mo.parents[1].name] = {
                str(m.id): str(m.string) for m in catalog if m.id and isinstance(m.id, str) and m.string}
        if default_locale not in self._strings:
            raise LookupError(f"no catalogue for the default locale {default_locale!r} under {root}")
        self._keys: tuple[str, ...] | None = None

    @property
    def locales(self) -> tuple[str, ...]:
        """The locales with a catalogue, default first."""
        others = sorted(k for k in self._strings if k != self.default_locale)
        return (self.default_locale, *others)

    def lookup(self, locale: str, key: str) -> str | None:
        """The catalogue's text for ``key`` in ``locale`` (None when it has none)."""
        return self._strings.get(locale, {}).get(key)

    def translated(self, locale: str) -> frozenset[str]:
        """The keys ``locale``'s compiled catalogue translates."""
        return frozenset(self._strings.get(locale, {}))

    def product_keys(self) -> tuple[str, ...]:
        """Every product string (the template's keys), sorted."""
        if self._keys is None:
            with (self.root / TEMPLATE).open("rb") as handle:
                template = read_po(handle)
            self._keys = tuple(sorted(str(m.id) for m in template if m.id and isinstance(m.id, str)))
        return self._keys

    def knows(self, key: str) -> bool:
        """True when ``key`` is a product string."""
        return key in self.product_keys() or any(key in strings for strings in self._strings.values())

    def best_locale(self, wanted: str | None) -> str | None:
        """``wanted`` if there is a catalogue for it, or for its language (``de_AT`` -> ``de``)."""
        if not wanted:
            return None
        if wanted in self._strings:
            return wanted
        language = wanted.replace("-", "_").split("_", 1)[0].lower()
        return language if language in self._strings else None
