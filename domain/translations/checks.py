"""What the CLI check reports: product strings a locale's catalogue does not translate."""
from __future__ import annotations

from collections.abc import Iterable

from domain.translations.catalogues import Catalogues


def missing_keys(catalogues: Catalogues, keys: Iterable[str]) -> dict[str, list[str]]:
    """For each locale, the keys (used in the code) its compiled catalogue lacks, sorted."""
    wanted = set(keys)
    return {locale: sorted(wanted - catalogues.translated(locale)) for locale in catalogues.locales}


def stale_template(catalogues: Catalogues, keys: Iterable[str]) -> list[str]:
    """Keys used in the code that ``messages.pot`` does not list (re-extract the template)."""
    return sorted(set(keys) - set(catalogues.product_keys()))
