"""Translations: a tenant overrides a product string; its emails and its pages show it, another
tenant's do not. The overrides API refuses bad input naming the field, and a tenant never
reaches another's overrides. The user's language (their choice, else Accept-Language) is
used by pages; ``flask translations check`` reports the strings a catalogue lacks."""
from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient
from sqlalchemy import select

from config.settings import TRANSLATIONS_DIR
from domain.translations.catalogues import Catalogues
from domain.translations.models import TranslationOverride
from domain.translations.services import set_override
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready
from tests.integration.notifications.smtp_server import SmtpServer
from tests.integration.web.helpers import assert_refused
from tests.support import pages, processes, tenants
from tests.support.waiting import wait_for

OVERRIDES = "/api/v1/translations/overrides"
READY = "%(filename)s is ready"
LOCALE = "/api/v1/translations/locale"


@pytest.fixture(scope="module")
def client(plane: Plane) -> FlaskClient:
    """A test client of the plane's app."""
    return plane.app.test_client()


def _override(client: FlaskClient, headers: dict[str, str], key: str, text: str, locale: str = "en") -> dict:
    response = client.put(OVERRIDES, headers=headers, json={"locale": locale, "key": key, "text": text})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


def test_one_tenants_override_shows_in_its_emails_and_pages_and_not_in_anothers(
        plane: Plane, client: FlaskClient, smtp: SmtpServer,
        workers: Callable[..., processes.Process]) -> None:
    a, b = plane.tenant(("owner", "employee")), plane.tenant(("owner", "employee"))
    admin_a = tenants.sign_in(client, a.member("owner"), a.slug).bearer
    _override(client, admin_a, READY, "%(filename)s can be fetched now")
    _override(client, admin_a, "Notifications", "Bulletins")
    workers("overrides", **smtp.env())
    for org in (a, b):
        plane.wait_handled(plane.announce(asset_ready(org.id, org.member("employee").user_id, "plan.odt")))
    wait_for(lambda: len(smtp.handler.received) == 2, timeout=30, message="both emails")
    (in_a,) = smtp.handler.to(a.member("employee").email)
    (in_b,) = smtp.handler.to(b.member("employee").email)
    assert in_a.message["Subject"] == "plan.odt can be fetched now"
    assert in_b.message["Subject"] == "plan.odt is ready"

    for org, heading, title in ((a, "Bulletins", "plan.odt can be fetched now"),
                                (b, "Notifications", "plan.odt is ready")):
        member = pages.Member(org.member("employee").email, org.member("employee").user_id, org.id, org.slug)
        page = pages.signed_in_browser(plane.app, member).get("/notifications").get_data(as_text=True)
        assert f"<h1>{heading}</h1>" in page and title in page
        assert ("can be fetched now" in page) is (org is a) and ("Bulletins" in page) is (org is a)


def test_overrides_are_checked_and_a_tenant_never_reaches_anothers(plane: Plane, client: FlaskClient) -> None:
    a, b = plane.tenant(("owner", "employee")), plane.tenant(("owner",))
    admin_a = tenants.sign_in(client, a.member("owner"), a.slug).bearer
    admin_b = tenants.sign_in(client, b.member("owner"), b.slug).bearer
    made = _override(client, admin_a, READY, "%(filename)s ist fertig", locale="de")
    assert (made["locale"], made["key"], made["text"]) == ("de", READY, "%(filename)s ist fertig")
    again = _override(client, admin_a, READY, "%(filename)s liegt bereit", locale="de")
    assert again["id"] == made["id"]  # the same override, replaced

    bad = [({"locale": "xx", "key": READY, "text": "x"}, "locale"),
           ({"locale": "en", "key": "no such string", "text": "x"}, "key"),
           ({"locale": "en", "key": READY, "text": "%(name)s is ready"}, "text"),
           ({"locale": "en", "key": READY, "text": "100% %(filename)s"}, "text"),
           ({"locale": "en", "key": READY, "text": "%(filename)200s is ready"}, "text"),
           ({"locale": "en", "key": READY, "text": "%(filename)-9.3s is ready"}, "text"),
           ({"locale": "en", "key": "Notifications", "text": "%200s inbox"}, "text"),
           ({"locale": "en", "key": "Notifications", "text": "%(x).9f inbox"}, "text"),
           ({"locale": "en", "key": READY, "text": "   "}, "text"),
           ({"locale": "en", "key": READY, "text": "bad\x00text"}, "text"),
           ({"locale": "en", "key": READY}, "text")]
    for body, field in bad:
        assert_refused(client.put(OVERRIDES, headers=admin_a, json=body), 422, field)
    employee = tenants.sign_in(client, a.member("employee"), a.slug).bearer
    assert_refused(client.put(OVERRIDES, headers=employee, json=bad[0][0]), 403, None)

    assert [o["id"] for o in client.get(OVERRIDES, headers=admin_a).json["items"]] == [made["id"]]
    assert client.get(OVERRIDES, headers=admin_b).json["items"] == []
    strings = client.get("/api/v1/translations/strings?locale=de", headers=admin_b).json["items"]
    assert next(s for s in strings if s["key"] == READY) == {
        "key": READY, "default_text": READY, "text": "%(filename)s ist bereit", "override": None}
    assert_refused(client.delete(f"{OVERRIDES}/{made['id']}", headers=admin_b), 404, "override_id")
    assert len(client.get(OVERRIDES, headers=admin_a).json["items"]) == 1
    ours = client.get("/api/v1/translations/strings?locale=de", headers=admin_a).json["items"]
    assert next(s for s in ours if s["key"] == READY)["text"] == "%(filename)s liegt bereit"
    assert client.delete(f"{OVERRIDES}/{made['id']}", headers=admin_a).status_code == 204
    assert client.get(OVERRIDES, headers=admin_a).json["items"] == []
    # A text with nothing to fill in is shown as written: a % in it is the text's.
    plain = _override(client, admin_a, "Notifications", "100% Hinweise", locale="de")
    assert plain["text"] == "100% Hinweise"
    assert client.delete(f"{OVERRIDES}/{plain['id']}", headers=admin_a).status_code == 204
    assert_refused(client.get("/api/v1/translations/strings?locale=../x", headers=admin_a), 422, "locale")


def test_pages_follow_the_users_choice_else_the_browser(plane: Plane, client: FlaskClient) -> None:
    org = plane.tenant(("employee",))
    account = org.member("employee")
    member = pages.Member(account.email, account.user_id, org.id, org.slug)
    browser = pages.signed_in_browser(plane.app, member)
    assert "<h1>Notifications</h1>" in browser.get("/notifications").get_data(as_text=True)
    german_browser = browser.get("/notifications", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert "<h1>Benachrichtigungen</h1>" in german_browser.get_data(as_text=True)
    assert '<html lang="de">' in german_browser.get_data(as_text=True)

    token = tenants.sign_in(client, account, org.slug).bearer
    assert client.get(LOCALE, headers=token).json == {
        "locale": None, "effective": "en", "available": ["en", "de"]}
    chosen = client.put(LOCALE, headers=token, json={"locale": "de"})
    assert chosen.json["effective"] == "de"
    assert "<h1>Benachrichtigungen</h1>" in browser.get("/notifications").get_data(as_text=True)
    assert_refused(client.put(LOCALE, headers=token, json={"locale": "xx"}), 422, "locale")
    assert_refused(client.put(LOCALE, headers=token, json={"locale": "x y"}), 422, "locale")
    pages.post(browser, "/translations/locale", {"locale": ""}, token_from="/notifications/preferences")
    assert "<h1>Notifications</h1>" in browser.get("/notifications").get_data(as_text=True)
    # Public pages follow the browser.
    signed_out = plane.app.test_client().get("/identity/sign-in", headers={"Accept-Language": "de"})
    assert ">Registrieren</a>" in signed_out.get_data(as_text=True)


def _catalogue_without(root: Path, key: str) -> Catalogues:
    """A copy of the product's catalogues whose German catalogue lacks ``key``."""
    shutil.copytree(TRANSLATIONS_DIR, root, dirs_exist_ok=True)
    po = root / "de" / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as handle:
        catalog = read_po(handle, locale="de")
    del catalog[key]
    with (po.with_suffix(".mo")).open("wb") as handle:
        write_mo(handle, catalog)
    return Catalogues(root, "en")


def test_the_cli_check_reports_missing_strings_per_locale(plane: Plane, tmp_path: Path) -> None:
    runner = plane.app.test_cli_runner()
    complete = runner.invoke(args=["translations", "check"])
    assert complete.exit_code == 0, complete.output
    assert "en: 0 missing" in complete.output and "de: 0 missing" in complete.output
    shipped = plane.app.extensions["allotment.catalogues"]
    plane.app.extensions["allotment.catalogues"] = _catalogue_without(tmp_path / "translations", READY)
    try:
        lacking = runner.invoke(args=["translations", "check"])
    finally:
        plane.app.extensions["allotment.catalogues"] = shipped
    assert lacking.exit_code == 1
    assert "de: 1 missing" in lacking.output and repr(READY) in lacking.output
    assert "en: 0 missing" in lacking.output


# --- tenant isolation of the texts page (/translations/admin) ------------------------------
# Overrides live in the management database, one table for every tenant: only the tenant of
# the signed-in admin scopes them. The strong case is an account that is an owner of both A
# and B, signed in to A.

ADMIN_PAGE = "/translations/admin"
B_TEXTS = {("en", "Notifications"): "B-only inbox wording", ("en", "Texts"): "B-only texts wording",
           ("de", READY): "%(filename)s B-geheim bereit"}
_OVERRIDDEN = re.compile(r'<tr data-key="([^"]*)" class="overridden" data-override="([0-9a-f-]{36})">')


@dataclass(frozen=True)
class Pair:
    """Tenant A, tenant B with overrides of its own (ids by (locale, key)), and an owner of
    both, as a member of A."""

    a: tenants.TenantWithMembers
    b: tenants.TenantWithMembers
    b_overrides: dict[tuple[str, str], uuid.UUID]
    both: pages.Member


def _pair(plane: Plane) -> Pair:
    a, b = plane.tenant(("owner",)), plane.tenant(("owner",))
    tenants.add_member(plane.provider, b.id, "owner", account=a.member("owner"))
    made: dict[tuple[str, str], uuid.UUID] = {}
    with plane.provider.management() as session:
        for (locale, key), text in B_TEXTS.items():
            made[(locale, key)] = set_override(session, plane.catalogues(), b.id, locale=locale, key=key,
                                               text=text, by=b.member("owner").user_id).id
        session.commit()
    owner = a.member("owner")
    return Pair(a, b, made, pages.Member(owner.email, owner.user_id, a.id, a.slug))


def _rows(plane: Plane, tenant_id: uuid.UUID) -> dict[uuid.UUID, tuple[object, ...]]:
    """The tenant's override rows in the database, whole, by id."""
    with plane.provider.management() as session:
        found = session.scalars(select(TranslationOverride).where(TranslationOverride.tenant_id == tenant_id))
        return {r.id: (r.tenant_id, r.locale, r.key, r.text, r.updated_by, r.created_at, r.updated_at)
                for r in found}


def _overridden(page: str) -> dict[str, str]:
    """The overridden rows of the texts page: override id by key."""
    return {unescape(key): override for key, override in _OVERRIDDEN.findall(page)}


def test_the_texts_page_shows_only_the_callers_tenants_overrides(plane: Plane) -> None:
    pair = _pair(plane)
    browser = pages.signed_in_browser(plane.app, pair.both, pair.a.slug)
    assert pages.post(browser, f"{ADMIN_PAGE}?locale=en", {"locale": "en", "key": "Notifications",
                                                           "text": "A's own inbox"},
                      token_from=ADMIN_PAGE).status_code == 303
    (mine,) = _rows(plane, pair.a.id)

    for locale, expected in (("en", {"Notifications": str(mine)}), ("de", {})):
        response = browser.get(f"{ADMIN_PAGE}?locale={locale}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert _overridden(page) == expected, locale
        text = unescape(page)
        leaked = [s for s in (*B_TEXTS.values(), "B-only", "B-geheim", *map(str, pair.b_overrides.values()))
                  if s in text]
        assert not leaked, (locale, leaked)
    # B's admin (the same account, signed in to B) sees B's, and not A's.
    b_browser = pages.signed_in_browser(plane.app, pair.both, pair.b.slug)
    in_b = b_browser.get(f"{ADMIN_PAGE}?locale=en").get_data(as_text=True)
    assert _overridden(in_b) == {key: str(pair.b_overrides[("en", key)])
                                 for key in ("Notifications", "Texts")}
    assert "A's own inbox" not in unescape(in_b)


def test_saving_a_text_sets_it_in_the_callers_tenant_only(plane: Plane) -> None:
    pair = _pair(plane)
    b_before, b_print = _rows(plane, pair.b.id), tenants.tenant_fingerprint(plane.provider, pair.b.id)
    browser = pages.signed_in_browser(plane.app, pair.both, pair.a.slug)

    ids: set[uuid.UUID] = set()
    for text in ("A's first wording", "A's second wording"):  # created, then changed (B has the same key)
        saved = pages.post(browser, f"{ADMIN_PAGE}?locale=en", {"locale": "en", "key": "Notifications",
                                                                "text": text}, token_from=ADMIN_PAGE)
        assert saved.status_code == 303, saved.get_data(as_text=True)[:300]
        rows = _rows(plane, pair.a.id)
        assert [row[:5] for row in rows.values()] == [
            (pair.a.id, "en", "Notifications", text, pair.both.user_id)]
        ids |= rows.keys()
        assert _rows(plane, pair.b.id) == b_before
        assert tenants.changed(b_print, tenants.tenant_fingerprint(plane.provider, pair.b.id)) == []
    assert len(ids) == 1  # one override, replaced
    assert "<h1>A&#39;s second wording</h1>" in browser.get("/notifications").get_data(as_text=True)
    b_browser = pages.signed_in_browser(plane.app, pair.both, pair.b.slug)
    in_b = b_browser.get("/notifications").get_data(as_text=True)
    assert "<h1>B-only inbox wording</h1>" in in_b


@pytest.mark.parametrize("who", ["a-owner", "owner-of-both"])
def test_deleting_another_tenants_override_is_a_404_and_it_stays(plane: Plane, who: str) -> None:
    pair = _pair(plane)
    member = pair.both
    if who == "a-owner":  # an owner of A alone
        other = tenants.add_member(plane.provider, pair.a.id, "owner")
        member = pages.Member(other.email, other.user_id, pair.a.id, pair.a.slug)
    browser = pages.signed_in_browser(plane.app, member, pair.a.slug)
    assert pages.post(browser, f"{ADMIN_PAGE}?locale=en", {"locale": "en", "key": "Notifications",
                                                           "text": "A's own inbox"},
                      token_from=ADMIN_PAGE).status_code == 303
    a_before, b_before = _rows(plane, pair.a.id), _rows(plane, pair.b.id)
    b_print = tenants.tenant_fingerprint(plane.provider, pair.b.id)

    for theirs in pair.b_overrides.values():
        response = pages.post(browser, f"{ADMIN_PAGE}/{theirs}/delete?locale=en", token_from=ADMIN_PAGE)
        assert response.status_code == 404, response.get_data(as_text=True)[:300]
        assert "B-only" not in unescape(response.get_data(as_text=True))
    assert _rows(plane, pair.b.id) == b_before and len(b_before) == len(B_TEXTS)
    assert tenants.changed(b_print, tenants.tenant_fingerprint(plane.provider, pair.b.id)) == []
    assert _rows(plane, pair.a.id) == a_before  # and nothing of A's removed instead
