"""Status codes as pages name them: each context's list of codes has exactly one label per code
(a code added without a label fails here instead of showing raw), the lists are the ones the
tables allow, every label has a German translation, and pages name every kind through them."""
from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from sqlalchemy import CheckConstraint, Table

from config.settings import TRANSLATIONS_DIR
from domain.assets import models as assets
from domain.employment import models as employment
from domain.notifications import models as notifications
from domain.publications import models as publications
from domain.purchases import models as purchases
from domain.tenancy import models as tenancy
from web import i18n

LISTS: dict[str, tuple[tuple[str, ...], Mapping[str, str]]] = {
    "asset": (assets.STATUSES, assets.STATUS_LABELS),
    "email": (notifications.EMAIL_STATES, notifications.EMAIL_STATE_LABELS),
    "employee": (employment.STATUSES, employment.STATUS_LABELS),
    "import": (employment.IMPORT_STATUSES, employment.IMPORT_STATUS_LABELS),
    "import_phase": (employment.IMPORT_PHASES, employment.IMPORT_PHASE_LABELS),
    "publication": (publications.STATUSES, publications.STATUS_LABELS),
    "purchase": (purchases.STATUSES, purchases.STATUS_LABELS),
    "tenant": (tenancy.STATUSES, tenancy.STATUS_LABELS),
}
# The lists whose column the database checks: (table, column).
CHECKED: dict[str, tuple[Table, str]] = {
    "asset": (assets.Asset.__table__, "status"),
    "employee": (employment.Employee.__table__, "status"),
    "import": (employment.ImportJob.__table__, "status"),
    "import_phase": (employment.ImportJob.__table__, "phase"),
    "publication": (publications.Publication.__table__, "status"),
}


@pytest.fixture(scope="module")
def german() -> Catalog:
    """The German catalogue as translators edit it."""
    with (TRANSLATIONS_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale="de")


@pytest.mark.parametrize("kind", LISTS)
def test_each_code_has_exactly_one_label(kind: str) -> None:
    codes, labels = LISTS[kind]
    assert len(set(codes)) == len(codes)
    assert set(labels) == set(codes)


@pytest.mark.parametrize("kind", CHECKED)
def test_the_codes_are_the_ones_the_table_allows(kind: str) -> None:
    table, column = CHECKED[kind]
    checks = [str(c.sqltext) for c in table.constraints if isinstance(c, CheckConstraint)]
    listed = [check for check in checks if check.startswith(f"{column} IN (")]
    assert len(listed) == 1, checks
    assert set(re.findall(r"'(\w+)'", listed[0])) == set(LISTS[kind][0])


@pytest.mark.parametrize("kind", LISTS)
def test_every_label_is_translated_into_german(kind: str, german: Catalog) -> None:
    for label in LISTS[kind][1].values():
        message = german.get(label)
        assert message is not None, f"{label!r} is not in the German catalogue"
        assert message.string, f"{label!r} has no German translation"
        assert not message.fuzzy, f"{label!r} is fuzzy in the German catalogue"


def test_pages_name_every_kind_with_its_contexts_labels() -> None:
    assert {kind: dict(labels) for kind, labels in i18n.STATUS_LABELS.items()} == {
        kind: dict(labels) for kind, (_codes, labels) in LISTS.items()}


def test_a_code_without_a_label_reads_as_itself_spaced() -> None:
    assert i18n.status_label("purchase", "chargeback_opened") == "chargeback opened"
