"""The identity, IAM, tenancy and purchases pages (and the error and API-docs pages) in the
page's language: German for a browser asking for it, English for one asking for nothing,
and German for a user who chose it even when the browser asks for English. Field errors
(WTForms' own and the forms' messages) come in the page's language too. Real PostgreSQL and
Redis; every POST carries the CSRF token a real page rendered."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.tenancy.models import Promotion
from tests.integration.purchases.helpers import APPROVE, CHECKOUT, add_product, hidden, offer_of, purchase_of
from tests.support import refs, tenants
from tests.support.pages import (
    SESSIONS,
    SIGN_IN,
    Member,
    api_token,
    field_errors,
    make_member,
    make_tenant,
    page_csrf,
    signed_in_browser,
)

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
REQUIRED_DE, REQUIRED_EN = "Dieses Feld wird benötigt.", "This field is required."
SIGNUP, USERS, ROLES, ADMIN = "/tenancy/signup", "/iam/users", "/iam/roles", "/tenancy/admin"
LOCALE = "/api/v1/translations/locale"


def german(browser: FlaskClient, path: str, status: int = 200) -> str:
    """``path`` for a browser asking for German: the page, checked to be German."""
    return _page(browser.get(path, headers=GERMAN), status, "de")


def english(browser: FlaskClient, path: str, status: int = 200) -> str:
    """``path`` for a browser asking for no language: the page, checked to be English."""
    return _page(browser.get(path), status, "en")


def _page(response: TestResponse, status: int, lang: str) -> str:
    page = response.get_data(as_text=True)
    assert response.status_code == status, page[:500]
    assert f'<html lang="{lang}">' in page
    return page


def post(browser: FlaskClient, path: str, data: dict[str, str], headers: dict[str, str] | None = None,
         token_from: str | None = None) -> TestResponse:
    """POST a form (with a CSRF token from ``token_from``, else ``path``) in a language."""
    token = page_csrf(browser, token_from or path)
    return browser.post(path, data={**data, "csrf_token": token}, headers=headers or {})


@pytest.fixture
def admin(provider: DataProvider) -> Member:
    """An admin of a fresh tenant."""
    return make_member(provider, "admin", tenant=make_tenant(provider, name="Sprach Org"), name="Ada Admin")


def test_the_public_pages_follow_the_browser(app: Flask, client: FlaskClient, provider: DataProvider) -> None:
    page = german(client, SIGN_IN)
    assert "<h1>Anmelden</h1>" in page and ">E-Mail</label>" in page and ">Passwort</label>" in page
    assert "Noch kein Konto?" in page and ">Testphase starten</a>" in page
    page = english(client, SIGN_IN)
    assert "<h1>Sign in</h1>" in page and ">Email</label>" in page and "No account yet?" in page

    refused = post(client, SIGN_IN, {"email": "", "password": ""}, GERMAN)
    assert refused.status_code == 422 and '<html lang="de">' in refused.get_data(as_text=True)
    assert field_errors(refused, "email") == field_errors(refused, "password") == [REQUIRED_DE]
    refused = post(client, SIGN_IN, {"email": "", "password": "x", "tenant": "Not A Slug"}, GERMAN)
    assert field_errors(refused, "tenant") == ["3-63 Kleinbuchstaben, Ziffern und Bindestriche"]
    assert field_errors(post(client, SIGN_IN, {"email": "", "password": ""}), "email") == [REQUIRED_EN]

    page = german(client, SIGNUP)
    assert "<h1>Testphase starten</h1>" in page and ">Adresse (Kurzname)</label>" in page
    assert '<button type="submit">Registrieren</button>' in page
    assert "<h1>Start a trial</h1>" in english(client, SIGNUP)
    refused = post(client, SIGNUP, refs.signup_body(slug="Not A Slug", password="short"), GERMAN)
    assert refused.status_code == 422
    assert field_errors(refused, "slug") == ["3-63 Kleinbuchstaben, Ziffern und Bindestriche"]
    assert field_errors(refused, "password") == ["Feld muss zwischen 10 und 128 Zeichen beinhalten."]
    body = refs.signup_body()
    started = post(client, SIGNUP, body, GERMAN)
    assert started.status_code == 303, started.get_data(as_text=True)[:500]
    page = german(client, started.location)
    assert f"<h1>{body['slug']} wird eingerichtet</h1>" in page
    assert 'data-ready="Ihre Organisation ist bereit."' in page
    assert 'data-failed="Fehlgeschlagen: %(reason)s"' in page
    assert f"<h1>Setting up {body['slug']}</h1>" in english(client, started.location)

    unknown = "/identity/invitations/" + "x" * 43
    page = german(client, unknown, 404)
    assert "<title>Fehler 404</title>" in page and "<h1>Fehler 404</h1>" in page
    assert "unknown, already used or expired" in page  # the reason stays as the code says it
    assert "<h1>Error 404</h1>" in english(client, unknown, 404)

    assert "<title>Allotment-API</title>" in german(client, "/docs")
    assert "<title>Allotment API</title>" in english(client, "/docs")


def test_an_invitation_follows_the_browser(client: FlaskClient, provider: DataProvider,
                                           admin: Member) -> None:
    with provider.management() as session:
        _, token = iam.invite(session, admin.tenant_id, email=refs.email("invitee"), role_name="employee",
                              invited_by=admin.user_id, lifetime=timedelta(days=1))
        session.commit()
    path = f"/identity/invitations/{token}"
    page = german(client, path)
    assert "<h1>Sprach Org beitreten</h1>" in page and "<dt>Gültig bis</dt>" in page
    assert "Wählen Sie Ihren Namen und ein Passwort für Ihr neues Konto." in page
    assert '<button type="submit">Einladung annehmen</button>' in page
    page = english(client, path)
    assert "<h1>Join Sprach Org</h1>" in page and '<button type="submit">Accept invitation</button>' in page

    refused = post(client, path, {"name": "Ivy", "password": ""}, GERMAN)
    assert refused.status_code == 422 and field_errors(refused, "password") == [REQUIRED_DE]
    assert german(client, path)  # still live


def test_the_signed_in_pages_follow_the_browser(app: Flask, provider: DataProvider, admin: Member) -> None:
    product = add_product(provider)
    with provider.management() as session:  # a finished promotion, recorded without a message
        session.add(Promotion(tenant_id=admin.tenant_id, status="failed", step="requested", percent=0,
                              reason="operator", tables={}, rows_total=0, rows_copied=0, attempts=1,
                              error="disk full"))
        session.commit()
    browser = signed_in_browser(app, admin)

    page = german(browser, SESSIONS)
    assert "<h1>Meine Sitzungen</h1>" in page and "Angemeldet als Ada Admin" in page
    assert "<th>Zuletzt verwendet</th>" in page and ">Überall abmelden</button>" in page
    assert "<h2>Passwort ändern</h2>" in page and ">Aktuelles Passwort</label>" in page
    assert ">Benutzer</a>" in page and ">Abmelden</button>" in page  # the header too
    assert "<h1>My sessions</h1>" in english(browser, SESSIONS)
    refused = post(browser, "/identity/password", {"current_password": "", "new_password": ""}, GERMAN,
                   token_from=SESSIONS)
    assert refused.status_code == 422 and field_errors(refused, "current_password") == [REQUIRED_DE]

    page = german(browser, USERS)
    assert "<h1>Benutzer</h1>" in page and "Ada Admin (Sie)" in page and ">Rollen speichern</button>" in page
    assert '<span class="standing">aktiv</span>' in page and "<h2>Jemanden einladen</h2>" in page
    assert '="">Rolle auswählen</option>' in page
    page = english(browser, USERS)
    assert "<h1>Users</h1>" in page and "Ada Admin (you)" in page and "<h2>Invite someone</h2>" in page
    refused = post(browser, "/iam/users/invite", {"email": "nope", "role": "employee"}, GERMAN,
                   token_from=USERS)
    assert refused.status_code == 422 and field_errors(refused, "email") == ["Ungültige E-Mail-Adresse."]

    page = german(browser, ROLES)
    assert "<h1>Rollen</h1>" in page and "<th>Vergeben an</th>" in page and "(vordefiniert)" in page
    assert "<h2>Eigene Rolle anlegen</h2>" in page and ">Rolle anlegen</button>" in page
    assert "<h2>Create a custom role</h2>" in english(browser, ROLES)
    refused = post(browser, ROLES, {"name": ""}, GERMAN)
    assert refused.status_code == 422 and field_errors(refused, "name") == [REQUIRED_DE]

    page = german(browser, ADMIN)
    assert "<dt>Tarif</dt>" in page and '<dd id="database">gemeinsame Testdatenbank</dd>' in page
    assert '<dd id="status">Testphase</dd>' in page
    assert "<h2>Umzug in eine eigene Datenbank</h2>" in page
    assert "Fehlgeschlagen: disk full. Ihre Daten bleiben in der gemeinsamen Testdatenbank." in page
    page = english(browser, ADMIN)
    assert '<dd id="database">shared trial database</dd>' in page and '<dd id="status">trial</dd>' in page
    assert "Failed: disk full. Your data stays in the shared trial database." in page

    page = german(browser, CHECKOUT)
    assert "<h1>Einen Tarif oder eine Erweiterung kaufen</h1>" in page and ">Bezahlen</button>" in page
    assert "<legend>Produkt</legend>" in page and ">Kartennummer</label>" in page
    assert "<h1>Buy a plan or an add-on</h1>" in english(browser, CHECKOUT)
    refused = browser.post(CHECKOUT, headers=GERMAN, data={
        "csrf_token": hidden(page, "csrf_token"), "idempotency_key": hidden(page, "idempotency_key"),
        "offer": "", "card_number": ""})
    assert refused.status_code == 422
    assert field_errors(refused, "offer") == ["wählen Sie eines der Produkte"]
    assert field_errors(refused, "card_number") == [REQUIRED_DE]
    bought = browser.post(CHECKOUT, headers=GERMAN, data={
        "csrf_token": hidden(page, "csrf_token"), "idempotency_key": hidden(page, "idempotency_key"),
        "offer": offer_of(page, product.code), "card_number": APPROVE})
    status_page = f"/purchases/{purchase_of(bought)}"
    page = german(browser, status_page)
    assert f"<title>Kauf von {product.name}</title>" in page and "<dt>Betrag</dt>" in page
    assert "endet auf 4242" in page and ">Zurück zur Kasse</a>" in page
    # Whether a purchases worker took it up yet depends on the suite's other modules; each is German.
    assert re.search(r'<dd id="status">(wartend|abgeschlossen)</dd>', page), page
    page = english(browser, status_page)
    assert f"<title>Purchase of {product.name}</title>" in page and "ending in 4242" in page

    signed_out = post(browser, "/identity/sign-out", {}, GERMAN, token_from=SESSIONS)
    assert signed_out.status_code == 303
    assert "Sie sind abgemeldet." in german(browser, SIGN_IN)


def test_a_users_choice_wins_over_the_browser(app: Flask, client: FlaskClient, admin: Member) -> None:
    browser = signed_in_browser(app, admin)
    assert "<h1>My sessions</h1>" in _page(browser.get(SESSIONS, headers=ENGLISH), 200, "en")
    token = tenants.bearer(api_token(app, admin))
    assert client.put(LOCALE, headers=token, json={"locale": "de"}).json["effective"] == "de"
    page = _page(browser.get(SESSIONS, headers=ENGLISH), 200, "de")
    assert "<h1>Meine Sitzungen</h1>" in page
    page = _page(browser.get(USERS, headers=ENGLISH), 200, "de")
    assert "<h1>Benutzer</h1>" in page and re.search(r">Sitzungen beenden</button>", page)
