"""The HTML pages driven through Flask's test client, as a browser would: every POST carries
the CSRF token a real page rendered, and the browser keeps its cookies.

Also here: members of a tenant to sign in with (made in the database by
``tests.support.tenants``), and the API calls the page tests check effects with.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from html import unescape
from urllib.parse import quote, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from domain.db.provider import DataProvider
from domain.identity import sessions
from tests.support import tenants
from tests.support.tenants import page_csrf

PASSWORD = tenants.PASSWORD
SIGN_IN = "/identity/sign-in"
SESSIONS = "/identity/sessions"


# --- forms -------------------------------------------------------------------------------

def post(browser: FlaskClient, path: str, data: dict[str, object] | None = None, *,
         token_from: str = SESSIONS) -> TestResponse:
    """POST a form with a CSRF token taken from ``token_from``."""
    return browser.post(path, data={**(data or {}), "csrf_token": page_csrf(browser, token_from)})


# --- members and signing in --------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """An account (with PASSWORD) that belongs to one tenant."""

    email: str
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    slug: str


def make_tenant(provider: DataProvider, name: str = "Pages Org") -> tuple[uuid.UUID, str]:
    """A committed trial tenant with the built-in roles; its id and slug."""
    tenant = tenants.create_tenant(provider, (), prefix="pages", name=name)
    return tenant.id, tenant.slug


def make_member(provider: DataProvider, role: str = "employee", *,
                tenant: tuple[uuid.UUID, str] | None = None, name: str = "Pat Member") -> Member:
    """A committed account with PASSWORD holding ``role`` in ``tenant`` (a new one if None)."""
    tenant_id, slug = tenant or make_tenant(provider)
    account = tenants.add_member(provider, tenant_id, role,
                                 account=tenants.create_account(provider, prefix=role, name=name))
    return Member(account.email, account.user_id, tenant_id, slug)


def sign_in(browser: FlaskClient, email: str, password: str = PASSWORD, tenant: str = "",
            next_: str | None = None) -> TestResponse:
    """Fill in and post the sign-in form."""
    path = SIGN_IN + (f"?next={quote(next_, safe='')}" if next_ is not None else "")
    return browser.post(path, data={"email": email, "password": password, "tenant": tenant,
                                    "csrf_token": page_csrf(browser, SIGN_IN)})


def signed_in_browser(app: Flask, member: Member, tenant: str | None = None) -> FlaskClient:
    """A browser that signed in as ``member`` (to the tenant with slug ``tenant``, for a
    member of more than one)."""
    browser = app.test_client()
    assert sign_in(browser, member.email, tenant=tenant or "").status_code == 303
    return browser


def goes_to_sign_in(response: TestResponse) -> bool:
    """True if the response sends the browser to the sign-in page."""
    return response.status_code in (302, 303) and urlsplit(response.location).path == SIGN_IN


def field_errors(response: TestResponse, field: str) -> list[str]:
    """Every error shown for ``field``."""
    return errors_by_field(response).get(field, [])


_FIELD_ERROR = re.compile(r'<p class="field-error" data-field="([^"]+)">([^<]*)</p>')


def errors_by_field(response: TestResponse) -> dict[str, list[str]]:
    """Every error a page shows beside its fields, by field."""
    found: dict[str, list[str]] = {}
    for field, text in _FIELD_ERROR.findall(response.get_data(as_text=True)):
        found.setdefault(field, []).append(unescape(text))
    return found


# --- effects, through the API and the database -------------------------------------------

def api_get(app: Flask, path: str, access_token: str) -> TestResponse:
    """An API request with a bearer token (no cookies)."""
    return app.test_client().get(path, headers=tenants.bearer(access_token))


def api_token(app: Flask, member: Member, password: str = PASSWORD) -> str:
    """An API access token of ``member`` for their tenant."""
    account = tenants.Account(member.user_id, member.email, password)
    return tenants.access_token(app.test_client(), account, member.slug)


def live_sessions(provider: DataProvider, user_id: uuid.UUID) -> list[sessions.SessionRow]:
    """The user's live sessions, from the database."""
    with provider.management() as session:
        return sessions.live_sessions(session, user_id)
