"""Catalogues and the translator: a tenant override, else the locale's catalogue, else the
default locale's, else the key; placeholders filled; the user's language chosen from their
preference and the browser's; the shipped catalogues complete and compiled from their .po."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from config.settings import TRANSLATIONS_DIR
from domain.translations.catalogues import Catalogues, placeholders
from domain.translations.checks import missing_keys, stale_template
from domain.translations.services import locale_of
from domain.translations.translator import Translator
from web.translations.cli import extract_keys

READY = "%(filename)s is ready"


@pytest.fixture(scope="module")
def catalogues() -> Catalogues:
    """The shipped catalogues."""
    return Catalogues(TRANSLATIONS_DIR, "en")


def test_lookup_goes_override_then_locale_then_default_then_key(catalogues: Catalogues) -> None:
    assert Translator("de", catalogues)(READY, filename="a.pdf") == "a.pdf ist bereit"
    assert Translator("en", catalogues)(READY, filename="a.pdf") == "a.pdf is ready"
    overridden = Translator("de", catalogues, {READY: "%(filename)s liegt bereit"})
    assert overridden(READY, filename="a.pdf") == "a.pdf liegt bereit"
    assert Translator("fr", catalogues)(READY, filename="a.pdf") == "a.pdf is ready"  # no French: default
    assert Translator("de", catalogues)("not a product string") == "not a product string"


def test_a_broken_text_falls_back_instead_of_failing(catalogues: Catalogues) -> None:
    broken = Translator("de", catalogues, {READY: "%(missing)s"})
    assert broken(READY, filename="a.pdf") == "a.pdf ist bereit"


def test_an_override_with_a_width_or_flags_is_left_out(catalogues: Catalogues) -> None:
    # Saved before overrides were checked for them: a width is memory spent on each rendering.
    for text in ("%(filename)200s", "%(filename)-5s!", "%(filename).3s", "%(filename) d"):
        assert Translator("de", catalogues, {READY: text})(READY, filename="a.pdf") == "a.pdf ist bereit"
    kept = Translator("de", catalogues, {READY: "100 %% fertig: %(filename)s"})
    assert kept(READY, filename="a.pdf") == "100 % fertig: a.pdf"
    # A text with nothing to fill in is shown as written, its % included, whoever calls it
    # with what (the notifications pipeline passes its parameters to every text of an email).
    plain = Translator("de", catalogues, {"Notifications": "100% Hinweise"})
    assert plain("Notifications") == plain("Notifications", tenant="Acme") == "100% Hinweise"
    # ... but never with a width a later formatter would honour (a form library's message).
    for text in ("%2000000000s", "%(x).9f", "%*d", "100% 5 Sterne"):
        assert Translator("de", catalogues, {"Notifications": text})("Notifications") == "Benachrichtigungen"


def test_dates_are_written_the_locales_way(catalogues: Catalogues) -> None:
    moment = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    assert Translator("en", catalogues).datetime(moment) == "Mar 4, 2026, 3:30:00\u202fPM UTC"
    assert Translator("de", catalogues).datetime(moment) == "04.03.2026, 15:30:00 UTC"


@pytest.mark.parametrize(("chosen", "accepted", "expected"), [
    ("de", ["en"], "de"), (None, ["de-AT", "en"], "de"), (None, ["fr", "de"], "de"),
    (None, ["fr"], "en"), ("xx", [], "en"), (None, [], "en"),
], ids=["choice-wins", "browser-region", "browser-second", "browser-unknown", "choice-unknown", "nothing"])
def test_the_language_is_the_choice_else_the_browsers_else_the_default(
        catalogues: Catalogues, chosen: str | None, accepted: list[str], expected: str) -> None:
    assert locale_of(catalogues, chosen, accepted) == expected


def test_placeholders_are_found() -> None:
    assert placeholders("%(a)s and %(b)d") == {"a", "b"}
    assert placeholders("none here") == set()


def test_the_shipped_catalogues_cover_every_string_the_code_uses(catalogues: Catalogues) -> None:
    keys = extract_keys()
    assert len(keys) > 50
    assert stale_template(catalogues, keys) == []
    assert missing_keys(catalogues, keys) == {"en": [], "de": []}
    assert catalogues.locales == ("en", "de")


@pytest.mark.parametrize("locale", ["en", "de"])
def test_each_compiled_catalogue_matches_its_po(locale: str) -> None:
    folder = TRANSLATIONS_DIR / locale / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as handle:
        po = {m.id: m.string for m in read_po(handle, locale=locale) if m.id}
    mo = {m.id: m.string for m in read_mo(io.BytesIO((folder / "messages.mo").read_bytes())) if m.id}
    assert po == mo, "run: .venv/bin/pybabel compile -d translations"
