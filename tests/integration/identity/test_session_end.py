"""A session ends when it ends, even with a tab open: no access token outlives its session.

Every access token carries its session's end (``sexp``, the ``auth_sessions.expires_at`` set
when the session started) and expires then at the latest; a page's access cookie renewed
near its expiry is renewed only up to that end, and not at all once there is nothing left
to give. So the unread badge, polling every few seconds, cannot keep a session alive past
the lifetime it was opened with. A token minted before tokens carried ``sexp`` is renewed
only with its session's end looked up in the database, and dropped if the session is over.

Real PostgreSQL and Redis; pages through Flask's test client as a browser, with its cookies.
Sessions are given short lifetimes through ``JWT_REFRESH_TOKEN_EXPIRES`` (what
``JWT_REFRESH_DAYS`` sets), access cookies short ones through ``JWT_ACCESS_TOKEN_EXPIRES``
to put them in the renewal window (less than five minutes left) at once.
"""
from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from config.settings import Settings
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.identity.models import AuthSession
from tests.integration.identity.conftest import ME, REFRESH, TOKENS, refresh
from tests.integration.web.helpers import assert_refused
from tests.support import tenants
from tests.support.apps import web_app
from tests.support.pages import SESSIONS, Member, goes_to_sign_in, make_member, signed_in_browser
from tests.support.tenants import tokens_of, unverified

ACCESS = "access_token_cookie"
FULL_ACCESS = timedelta(minutes=15)  # the default access lifetime
SHORT_ACCESS = timedelta(minutes=2)  # inside the five-minute renewal window from the start


@pytest.fixture(scope="module")
def ten_minute_app(settings: Settings) -> Iterator[Flask]:
    """An app whose sessions last ten minutes: shorter than one access lifetime plus the
    renewal window, so a renewal reaches the session's end."""
    with web_app(settings, JWT_REFRESH_TOKEN_EXPIRES=timedelta(minutes=10)) as app:
        yield app


@pytest.fixture(scope="module")
def three_second_app(settings: Settings) -> Iterator[Flask]:
    """An app whose sessions last three seconds: they end while a test watches."""
    with web_app(settings, JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=3)) as app:
        yield app


@pytest.fixture
def member(provider: DataProvider) -> Member:
    """An employee of a fresh tenant."""
    return make_member(provider)


@contextlib.contextmanager
def access_lifetime(app: Flask, lifetime: timedelta) -> Iterator[None]:
    """Mint access tokens with ``lifetime`` meanwhile."""
    before = app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = lifetime
    try:
        yield
    finally:
        app.config["JWT_ACCESS_TOKEN_EXPIRES"] = before


def access_cookie(browser: FlaskClient) -> str | None:
    """The access cookie the browser holds."""
    found = browser.get_cookie(ACCESS)
    return found.value if found else None


def access_cookies_set(response: TestResponse) -> list[str]:
    """The values of the access cookies a response sets (an empty one clears it)."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{ACCESS}=")]
    return [h.split(";", 1)[0].split("=", 1)[1] for h in headers]


def session_end(provider: DataProvider, session_id: uuid.UUID) -> datetime:
    """The session's ``expires_at`` as the database holds it."""
    with provider.management() as session:
        row = session.get(AuthSession, session_id)
        assert row is not None
        return row.expires_at


def set_session_end(provider: DataProvider, session_id: uuid.UUID, when: datetime) -> None:
    """Move the session's end in the database (as the audit reproduced it)."""
    with provider.management() as session:
        session.execute(update(AuthSession).where(AuthSession.id == session_id).values(expires_at=when))
        session.commit()


def cookie_session(browser: FlaskClient) -> uuid.UUID:
    """The session of the browser's access cookie."""
    return uuid.UUID(unverified(access_cookie(browser) or "")["sid"])


def legacy_token(app: Flask, member: Member, session_id: uuid.UUID, lifetime: timedelta) -> str:
    """An access token as minted before tokens carried their session's end (no ``sexp``)."""
    with app.app_context():
        return create_access_token(identity=str(member.user_id), expires_delta=lifetime, additional_claims={
            "sid": str(session_id), "tenant": str(member.tenant_id), "op": False})


def wait_until_past(moment: datetime) -> None:
    """Let the wall clock pass ``moment`` (the condition under test is the time itself)."""
    while (left := moment.timestamp() - time.time()) >= 0:
        time.sleep(left + 0.01)


def assert_ends_with_session(token: str, end: datetime) -> dict[str, object]:
    """The token carries its session's end and does not outlive it; its claims."""
    claims = unverified(token)
    assert claims["exp"] <= end.timestamp()
    assert claims.get("sexp") == math.floor(end.timestamp())
    return claims


# --- minting -----------------------------------------------------------------------------------

def test_every_access_token_ends_with_its_session(ten_minute_app: Flask, provider: DataProvider,
                                                  member: Member) -> None:
    # A ten-minute session and fifteen-minute access tokens: each token is cut to the session.
    api = ten_minute_app.test_client()
    account = tenants.Account(member.user_id, member.email, tenants.PASSWORD)
    other = tenants.create_tenant(provider, (), prefix="other")
    tenants.add_member(provider, other.id, "employee", account=account)

    answer = api.post(TOKENS, json={"email": member.email, "password": tenants.PASSWORD,
                                    "tenant": member.slug})
    signed_in = tokens_of(answer)
    end = session_end(provider, signed_in.session_id)
    assert_ends_with_session(signed_in.access_token, end)
    assert answer.json["expires_in"] <= 600  # what the answer says agrees with the token

    refreshed = tokens_of(refresh(api, signed_in))  # a refresh never moves the session's end
    assert refreshed.session_id == signed_in.session_id
    assert_ends_with_session(refreshed.access_token, end)

    switched = tokens_of(api.post("/api/v1/identity/tenant", headers=signed_in.bearer,
                                  json={"tenant": other.slug}))
    assert_ends_with_session(switched.access_token, session_end(provider, switched.session_id))

    browser = signed_in_browser(ten_minute_app, member, member.slug)  # the sign-in page
    assert_ends_with_session(access_cookie(browser) or "", session_end(provider, cookie_session(browser)))


def test_a_tenant_switch_ends_when_the_session_it_came_from_ends(ten_minute_app: Flask,
                                                                  provider: DataProvider,
                                                                  member: Member) -> None:
    # Switching proves nothing new: without the cap, any access token bought a fresh session.
    api = ten_minute_app.test_client()
    other = tenants.create_tenant(provider, (), prefix="other")
    tenants.add_member(provider, other.id, "employee",
                       account=tenants.Account(member.user_id, member.email, tenants.PASSWORD))
    signed_in = tokens_of(api.post(TOKENS, json={"email": member.email, "password": tenants.PASSWORD,
                                                 "tenant": member.slug}))
    end = session_end(provider, signed_in.session_id)
    switched = tokens_of(api.post("/api/v1/identity/tenant", headers=signed_in.bearer,
                                  json={"tenant": other.slug}))
    assert switched.session_id != signed_in.session_id
    assert session_end(provider, switched.session_id) == end
    assert_ends_with_session(switched.access_token, end)
    # From a session whose end has passed (its access token not yet expired): refused, no session.
    set_session_end(provider, switched.session_id, utcnow() - timedelta(seconds=1))
    before = sessions_opened(provider, member.user_id)
    refused = api.post("/api/v1/identity/tenant", headers=switched.bearer, json={"tenant": member.slug})
    assert_refused(refused, 401, "Authorization")
    assert sessions_opened(provider, member.user_id) == before


def sessions_opened(provider: DataProvider, user_id: uuid.UUID) -> int:
    """How many sessions the user ever opened."""
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(AuthSession).where(
            AuthSession.user_id == user_id)) or 0


# --- renewing a page's access cookie ---------------------------------------------------------------

def test_a_renewed_cookie_ends_with_its_session(ten_minute_app: Flask, provider: DataProvider,
                                                member: Member) -> None:
    with access_lifetime(ten_minute_app, SHORT_ACCESS):
        browser = signed_in_browser(ten_minute_app, member)
    signed_in = access_cookie(browser) or ""
    end = session_end(provider, cookie_session(browser))
    assert unverified(signed_in)["exp"] < end.timestamp() - 300  # a cookie the session outlives

    response = browser.get(SESSIONS)  # in the renewal window; 15 minutes would pass the end
    assert response.status_code == 200
    [renewed] = access_cookies_set(response)
    claims = assert_ends_with_session(renewed, end)
    assert claims["exp"] == math.floor(end.timestamp())  # as far as the session goes, no further
    assert claims["sid"] == unverified(signed_in)["sid"]

    # Now the cookie ends with the session: there is nothing left to renew it with.
    assert access_cookies_set(browser.get(SESSIONS)) == []


def test_a_still_valid_session_keeps_renewing(app: Flask, provider: DataProvider, member: Member) -> None:
    with access_lifetime(app, SHORT_ACCESS):
        browser = signed_in_browser(app, member)
    signed_in = access_cookie(browser) or ""
    end = session_end(provider, cookie_session(browser))
    before = time.time()
    response = browser.get(SESSIONS)
    assert response.status_code == 200
    [renewed] = access_cookies_set(response)
    claims = assert_ends_with_session(renewed, end)  # a 30-day session: far past the renewal
    lifetime = FULL_ACCESS.total_seconds()
    assert before + lifetime - 1 <= claims["exp"] <= time.time() + lifetime
    assert claims["sid"] == unverified(signed_in)["sid"]
    assert browser.get(SESSIONS).status_code == 200


def test_a_session_that_ended_sends_the_next_page_to_sign_in(three_second_app: Flask,
                                                             provider: DataProvider, member: Member) -> None:
    browser = signed_in_browser(three_second_app, member)  # its cookie lasts as long as the session
    session_id = cookie_session(browser)
    end = session_end(provider, session_id)
    api = tokens_of(three_second_app.test_client().post(TOKENS, json={
        "email": member.email, "password": tenants.PASSWORD}))

    response = browser.get(SESSIONS)  # the badge's poll, say: seconds from the end
    assert response.status_code == 200
    assert access_cookies_set(response) == []  # no new cookie: the session ends first

    wait_until_past(max(end, session_end(provider, api.session_id)))
    assert goes_to_sign_in(browser.get(SESSIONS))
    assert access_cookie(browser) is None
    # The API token of an ended session is refused as an expired one (so is its refresh token).
    for answer in (three_second_app.test_client().get(ME, headers=api.bearer),
                   three_second_app.test_client().post(REFRESH, headers=api.refresh_bearer)):
        assert assert_refused(answer, 401, "Authorization")["reason"] == "token has expired"


def test_a_refresh_token_outliving_its_session_is_refused(client: FlaskClient, provider: DataProvider,
                                                          member: Member) -> None:
    # A refresh token signed to last longer than its session (the session's end moved, as the
    # audit did it): the database's end is the one that counts, so no new tokens.
    tokens = tokens_of(client.post(TOKENS, json={"email": member.email, "password": tenants.PASSWORD}))
    set_session_end(provider, tokens.session_id, utcnow() - timedelta(seconds=1))
    body = assert_refused(refresh(client, tokens), 401, "refresh_token")
    assert body["reason"] == "refresh token has expired"


# --- tokens minted before they carried their session's end -------------------------------------------

def test_an_old_token_of_an_ended_session_is_not_renewed(app: Flask, provider: DataProvider,
                                                         member: Member) -> None:
    # The audit's reproduction: the session ended yesterday, its cookie has two minutes left.
    browser = signed_in_browser(app, member)
    session_id = cookie_session(browser)
    set_session_end(provider, session_id, utcnow() - timedelta(days=1))
    browser.set_cookie(ACCESS, legacy_token(app, member, session_id, SHORT_ACCESS))

    response = browser.get(SESSIONS)
    assert response.status_code == 200  # the token itself is still good for two minutes
    assert [value for value in access_cookies_set(response) if value] == []  # no new cookie
    assert goes_to_sign_in(browser.get(SESSIONS))


def test_an_old_token_of_a_live_session_is_renewed_up_to_its_end(app: Flask, provider: DataProvider,
                                                                 member: Member) -> None:
    browser = signed_in_browser(app, member)
    session_id = cookie_session(browser)
    end = utcnow() + timedelta(minutes=10)
    set_session_end(provider, session_id, end)
    browser.set_cookie(ACCESS, legacy_token(app, member, session_id, SHORT_ACCESS))

    response = browser.get(SESSIONS)
    assert response.status_code == 200
    [renewed] = access_cookies_set(response)
    claims = assert_ends_with_session(renewed, end)  # its end looked up, and carried from now on
    assert claims["exp"] == math.floor(end.timestamp()) and claims["sid"] == str(session_id)
    assert browser.get(SESSIONS).status_code == 200

