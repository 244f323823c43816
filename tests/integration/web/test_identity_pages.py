"""The identity pages: sign in and out, "Continue as", my sessions, my password, accepting
an invitation. Real PostgreSQL and Redis; every POST carries the CSRF token a real page
rendered, as a browser would."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity import sessions
from tests.support import refs
from tests.support.apps import web_app
from tests.support.pages import (
    PASSWORD,
    SESSIONS,
    SIGN_IN,
    Member,
    api_get,
    api_token,
    goes_to_sign_in,
    live_sessions,
    make_member,
    make_tenant,
    page_csrf,
    post,
    sign_in,
    signed_in_browser,
)

ACCESS, REFRESH = "access_token_cookie", "refresh_token_cookie"


def error_next_to(page: str, field: str) -> str:
    """The error paragraph rendered right after the field's input."""
    match = re.search(rf'<input[^>]*name="{field}"[^>]*>\s*'
                      rf'<p class="field-error" data-field="{field}">([^<]*)</p>', page)
    assert match, f"an error next to {field}"
    return unescape(match.group(1))


def set_cookies(response: TestResponse) -> dict[str, str]:
    """The Set-Cookie headers of a response, by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def cookie(browser: FlaskClient, name: str) -> str | None:
    """The value of one of the token cookies the browser holds."""
    found = browser.get_cookie(name, path="/identity/" if name == REFRESH else "/")
    return found.value if found else None


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture
def member(provider: DataProvider) -> Member:
    """An employee of a fresh tenant."""
    return make_member(provider)


@pytest.fixture(scope="module")
def secure_app(settings: Settings) -> Iterator[Flask]:
    """An app as in production: Secure cookies, and an external OIDC provider configured."""
    secure = settings.model_copy(update={"cookie_secure": True, "oidc_issuer": "https://id.example.com/",
                                         "oidc_client_id": "allotment-test"})
    with web_app(secure) as app:
        yield app


# --- sign in -----------------------------------------------------------------------------

def test_the_sign_in_form_has_its_fields_a_csrf_token_and_a_submit_button(client: FlaskClient) -> None:
    page = client.get(SIGN_IN).get_data(as_text=True)
    for field in ("email", "password", "tenant"):
        assert f'name="{field}"' in page
    assert re.search(r'<form[^>]*id="sign-in".*?<button type="submit"', page, re.S)
    assert page_csrf(client, SIGN_IN)
    assert "/identity/oidc/login" not in page  # no provider configured
    assert "Sign up" in page and 'action="/identity/sign-out"' not in page


def test_signing_in_sets_http_only_lax_cookies_and_goes_to_next(
        client: FlaskClient, member: Member, provider: DataProvider) -> None:
    response = sign_in(client, member.email, next_="/iam/users?page=2")
    assert response.status_code == 303
    assert response.location == "/iam/users?page=2"
    cookies = set_cookies(response)
    for name in (ACCESS, REFRESH):
        flags = [f.strip().lower() for f in cookies[name].split(";")]
        assert "httponly" in flags and "samesite=lax" in flags
        assert "secure" not in flags  # COOKIE_SECURE=false in the test stack
    assert "path=/identity/" in cookies[REFRESH].lower()
    assert len(live_sessions(provider, member.user_id)) == 1

    page = client.get(SESSIONS)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "this session" in text and member.slug in text
    assert 'action="/identity/sign-out"' in text  # the header offers Sign out


def test_without_next_sign_in_goes_to_my_sessions(client: FlaskClient, member: Member) -> None:
    response = sign_in(client, member.email)
    assert response.status_code == 303 and response.location == SESSIONS


@pytest.mark.parametrize("target", ["//evil.example.com/", "/\\evil.example.com", "https://evil.example.com/",
                                    "/\t/evil.example.com", "javascript:alert(1)", ""])
def test_an_unsafe_next_is_ignored(client: FlaskClient, member: Member, target: str) -> None:
    response = sign_in(client, member.email, next_=target)
    assert response.status_code == 303 and response.location == SESSIONS


def test_cookies_are_secure_when_cookie_secure_is_set(secure_app: Flask, provider: DataProvider) -> None:
    member = make_member(provider)
    browser = secure_app.test_client()
    response = sign_in(browser, member.email)
    assert response.status_code == 303
    for name in (ACCESS, REFRESH):
        flags = [f.strip().lower() for f in set_cookies(response)[name].split(";")]
        assert {"secure", "httponly", "samesite=lax"} <= set(flags)


def test_the_provider_link_appears_only_when_oidc_is_configured(secure_app: Flask) -> None:
    page = secure_app.test_client().get(SIGN_IN + "?next=/iam/roles").get_data(as_text=True)
    assert re.search(r'<a href="/identity/oidc/login\?next=(?:%2F|/)iam(?:%2F|/)roles"[^>]*>'
                     r"Sign in with your organisation(?:'|&#39;)s provider</a>", page)


def test_a_wrong_password_is_shown_next_to_the_password_field_with_401(
        client: FlaskClient, member: Member, provider: DataProvider) -> None:
    response = sign_in(client, member.email, password="wrong password 0123")
    assert response.status_code == 401
    assert error_next_to(response.get_data(as_text=True), "password") == "email or password is wrong"
    assert not set_cookies(response)
    assert live_sessions(provider, member.user_id) == []


def test_invalid_input_is_shown_next_to_each_field_with_422(client: FlaskClient) -> None:
    response = sign_in(client, "not-an-email", password="", tenant="Not A Slug")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for field in ("email", "password", "tenant"):
        assert error_next_to(page, field)
    assert 'value="not-an-email"' in page  # what was typed is kept (never the password)


def test_a_member_of_several_tenants_is_asked_to_choose_next_to_the_tenant_field(
        client: FlaskClient, provider: DataProvider) -> None:
    first = make_member(provider)
    second_id, second_slug = make_tenant(provider)
    with provider.management() as session:
        iam.grant_role(session, first.user_id, second_id, "employee")
        session.commit()
    response = sign_in(client, first.email)
    assert response.status_code == 422
    error = error_next_to(response.get_data(as_text=True), "tenant")
    assert "choose one of: " + ", ".join(sorted([first.slug, second_slug])) in error
    chosen = sign_in(client, first.email, tenant=second_slug)
    assert chosen.status_code == 303
    assert second_slug in client.get(SESSIONS).get_data(as_text=True)


def test_a_tenant_the_account_is_not_in_is_not_found_next_to_the_tenant_field(
        client: FlaskClient, member: Member, provider: DataProvider) -> None:
    _, other_slug = make_tenant(provider)
    response = sign_in(client, member.email, tenant=other_slug)
    assert response.status_code == 404
    assert error_next_to(response.get_data(as_text=True), "tenant") == "no such tenant for this account"


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["no token", "forged token"])
def test_a_sign_in_without_a_valid_csrf_token_is_refused_and_starts_nothing(
        client: FlaskClient, member: Member, provider: DataProvider, token: str | None) -> None:
    data = {"email": member.email, "password": PASSWORD}
    if token:
        data["csrf_token"] = token
    client.get(SIGN_IN)  # the browser has a session, just not this form's token
    response = client.post(SIGN_IN, data=data)
    assert response.status_code == 400
    assert not set_cookies(response)
    assert live_sessions(provider, member.user_id) == []


def test_unauthenticated_pages_send_the_visitor_to_sign_in_with_next(client: FlaskClient) -> None:
    response = client.get(SESSIONS)
    assert goes_to_sign_in(response)
    assert parse_qs(urlsplit(response.location).query) == {"next": [SESSIONS]}


# --- continue as (refresh) ---------------------------------------------------------------

def test_continue_as_rotates_the_refresh_cookie_and_a_replay_revokes_the_session(
        app: Flask, member: Member, provider: DataProvider) -> None:
    browser = signed_in_browser(app, member)
    old_refresh = cookie(browser, REFRESH)
    browser.delete_cookie(ACCESS)  # the short access cookie has expired, say

    page = browser.get(SIGN_IN + "?next=/identity/sessions").get_data(as_text=True)
    assert "Continue as Pat Member" in page and member.slug in page
    assert cookie(browser, REFRESH) == old_refresh  # showing the button spent nothing

    response = post(browser, "/identity/refresh?next=/identity/sessions", token_from=SIGN_IN)
    assert response.status_code == 303 and response.location == SESSIONS
    assert cookie(browser, REFRESH) not in (None, old_refresh)
    assert browser.get(SESSIONS).status_code == 200
    [live] = live_sessions(provider, member.user_id)

    # Someone replays the spent refresh token: refused, and the session is revoked.
    browser.set_cookie(REFRESH, old_refresh or "", path="/identity/")
    refused = post(browser, "/identity/refresh", token_from=SIGN_IN)
    assert refused.status_code == 401
    page = refused.get_data(as_text=True)
    assert "already used" in page and 'id="sign-in"' in page and "Continue as" not in page
    assert cookie(browser, ACCESS) is None and cookie(browser, REFRESH) is None
    assert live_sessions(provider, member.user_id) == []
    with provider.management() as session:
        assert sessions.is_revoked(session, live.id)


def test_continue_as_without_a_refresh_cookie_shows_the_form_with_the_reason(client: FlaskClient) -> None:
    response = post(client, "/identity/refresh", token_from=SIGN_IN)
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "sign in again" in page and 'name="email"' in page


def test_no_continue_as_for_a_signed_out_session(app: Flask, member: Member) -> None:
    browser = signed_in_browser(app, member)
    refresh = cookie(browser, REFRESH)
    assert post(browser, "/identity/sign-out").status_code == 303
    browser.set_cookie(REFRESH, refresh or "", path="/identity/")  # a stale cookie left behind
    assert "Continue as" not in browser.get(SIGN_IN).get_data(as_text=True)


# --- GET never changes state -------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/identity/sign-out", "/identity/refresh", "/identity/sessions/revoke-all", "/identity/password",
    "/identity/sessions/6a1f0c3e-93a4-4c1b-9a55-0d1f2f5b7c21/revoke"])  # a fixed id keeps ids stable
def test_state_changing_paths_refuse_get(app: Flask, member: Member, provider: DataProvider,
                                         path: str) -> None:
    browser = signed_in_browser(app, member)
    refresh = cookie(browser, REFRESH)
    assert browser.get(path).status_code == 405
    assert browser.get(SIGN_IN).status_code == 200  # renders "Continue as": spends nothing
    assert len(live_sessions(provider, member.user_id)) == 1
    assert cookie(browser, REFRESH) == refresh
    assert browser.get(SESSIONS).status_code == 200


# --- sign out, my sessions ---------------------------------------------------------------

def test_sign_out_ends_the_session_and_clears_the_cookies(app: Flask, member: Member) -> None:
    browser = signed_in_browser(app, member)
    access = cookie(browser, ACCESS)
    response = post(browser, "/identity/sign-out")
    assert response.status_code == 303 and response.location == SIGN_IN
    assert cookie(browser, ACCESS) is None and cookie(browser, REFRESH) is None
    assert "You are signed out." in browser.get(SIGN_IN).get_data(as_text=True)
    assert api_get(app, "/api/v1/iam/me", access or "").status_code == 401


def test_sign_out_after_the_access_cookie_expired_still_ends_the_session(
        app: Flask, member: Member, provider: DataProvider) -> None:
    browser = signed_in_browser(app, member)
    browser.delete_cookie(ACCESS)
    assert post(browser, "/identity/sign-out", token_from=SIGN_IN).status_code == 303
    assert live_sessions(provider, member.user_id) == []


def test_the_sessions_page_lists_my_sessions_and_signs_one_out(
        app: Flask, member: Member, provider: DataProvider) -> None:
    laptop, phone = signed_in_browser(app, member), signed_in_browser(app, member)
    page = laptop.get(SESSIONS).get_data(as_text=True)
    listed = re.findall(r'<tr data-session="([0-9a-f-]+)"', page)
    assert sorted(listed) == sorted(str(s.id) for s in live_sessions(provider, member.user_id))
    assert len(listed) == 2 and page.count("this session") == 1
    assert "password" in page and "127.0.0.1" in page

    phone_session = next(s for s in listed if f'data-session="{s}" class="current"' not in page)
    response = post(laptop, f"/identity/sessions/{phone_session}/revoke")
    assert response.status_code == 303 and response.location == SESSIONS
    assert "That session is signed out." in laptop.get(SESSIONS).get_data(as_text=True)
    assert goes_to_sign_in(phone.get(SESSIONS))
    assert laptop.get(SESSIONS).status_code == 200


def test_signing_out_this_session_from_the_list_sends_me_to_sign_in(
        app: Flask, member: Member) -> None:
    browser = signed_in_browser(app, member)
    [current] = re.findall(r'<tr data-session="([0-9a-f-]+)" class="current"',
                           browser.get(SESSIONS).get_data(as_text=True))
    response = post(browser, f"/identity/sessions/{current}/revoke")
    assert goes_to_sign_in(response) and cookie(browser, ACCESS) is None


def test_another_users_session_cannot_be_signed_out(app: Flask, member: Member,
                                                    provider: DataProvider) -> None:
    other = make_member(provider)
    signed_in_browser(app, other)
    [their_session] = live_sessions(provider, other.user_id)
    browser = signed_in_browser(app, member)
    assert post(browser, f"/identity/sessions/{their_session.id}/revoke").status_code == 404
    assert [s.id for s in live_sessions(provider, other.user_id)] == [their_session.id]


def test_sign_out_everywhere(app: Flask, member: Member, provider: DataProvider) -> None:
    laptop, phone = signed_in_browser(app, member), signed_in_browser(app, member)
    api_access = api_token(app, member)
    response = post(laptop, "/identity/sessions/revoke-all")
    assert goes_to_sign_in(response)
    assert "Signed out of 3 session(s)" in laptop.get(SIGN_IN).get_data(as_text=True)
    assert goes_to_sign_in(laptop.get(SESSIONS)) and goes_to_sign_in(phone.get(SESSIONS))
    assert api_get(app, "/api/v1/iam/me", api_access).status_code == 401
    assert live_sessions(provider, member.user_id) == []


def test_sign_out_everywhere_without_csrf_is_refused_and_changes_nothing(
        app: Flask, member: Member, provider: DataProvider) -> None:
    browser = signed_in_browser(app, member)
    assert browser.post("/identity/sessions/revoke-all", data={}).status_code == 400
    assert len(live_sessions(provider, member.user_id)) == 1
    assert browser.get(SESSIONS).status_code == 200


# --- password ----------------------------------------------------------------------------

def test_changing_the_password_keeps_this_browser_and_cuts_off_the_rest(
        app: Flask, member: Member, provider: DataProvider) -> None:
    browser, other = signed_in_browser(app, member), signed_in_browser(app, member)
    new_password = "a brand new password 42"
    response = post(browser, "/identity/password", {"current_password": PASSWORD,
                                                    "new_password": new_password})
    assert response.status_code == 303 and response.location == SESSIONS
    page = browser.get(SESSIONS)
    assert page.status_code == 200
    assert "Your password is changed" in page.get_data(as_text=True)
    assert goes_to_sign_in(other.get(SESSIONS))
    assert len(live_sessions(provider, member.user_id)) == 1

    old = app.test_client().post("/api/v1/identity/tokens",
                                 json={"email": member.email, "password": PASSWORD})
    assert old.status_code == 401
    assert api_token(app, member, new_password)


@pytest.mark.parametrize(("body", "field", "status", "reason"), [
    ({"current_password": "not my password 00", "new_password": "a brand new password 42"},
     "current_password", 422, "is not your current password"),
    ({"current_password": PASSWORD, "new_password": "short"}, "new_password", 422, "between 8 and 128"),
], ids=["wrong current password", "new password too short"])
def test_a_refused_password_change_shows_the_error_next_to_the_field(
        app: Flask, member: Member, provider: DataProvider, *, body: dict[str, str], field: str,
        status: int, reason: str) -> None:
    browser = signed_in_browser(app, member)
    response = post(browser, "/identity/password", body)
    assert response.status_code == status
    assert reason in error_next_to(response.get_data(as_text=True), field)
    assert len(live_sessions(provider, member.user_id)) == 1
    assert api_token(app, member)  # the old password still works


# --- invitations -------------------------------------------------------------------------

def invite(provider: DataProvider, tenant_id: uuid.UUID, email: str, role: str = "hr_manager") -> str:
    """An invitation by an admin of the tenant, recorded directly in the domain; its token
    (which only the email carries)."""
    admin = make_member(provider, "admin", tenant=(tenant_id, ""), name="Ada Admin")
    with provider.management() as session:
        _, token = iam.invite(session, tenant_id, email=email, role_name=role,
                              invited_by=admin.user_id, lifetime=timedelta(days=1))
        session.commit()
    return token


def test_accepting_an_invitation_creates_the_account_and_membership_once(
        client: FlaskClient, provider: DataProvider) -> None:
    tenant_id, slug = make_tenant(provider, name="Invited Org")
    email = refs.email("invitee")
    token = invite(provider, tenant_id, email)
    path = f"/identity/invitations/{token}"
    page = client.get(path).get_data(as_text=True)
    assert "Invited Org" in page and "hr_manager" in page and email in page
    assert 'name="name"' in page and 'no-referrer' in page

    nameless = post(client, path, {"password": "invitee password 1"}, token_from=path)
    assert nameless.status_code == 422
    assert error_next_to(nameless.get_data(as_text=True), "name") == "is required for a new account"

    response = post(client, path, {"name": "Ivy Invitee", "password": "invitee password 1"}, token_from=path)
    assert response.status_code == 303 and response.location == SESSIONS
    sessions_page = client.get(SESSIONS).get_data(as_text=True)
    assert slug in sessions_page and "Welcome to Invited Org." in sessions_page
    with provider.management() as session:
        user = identity.user_by_email(session, email)
        assert user is not None and user.name == "Ivy Invitee"
        assert iam.member(session, tenant_id, user.id).roles == ["hr_manager"]

    assert client.get(path).status_code == 404
    assert app_post_again(client, path).status_code == 404


def app_post_again(client: FlaskClient, path: str) -> TestResponse:
    """Post the accept form again with a valid CSRF token from another page."""
    return post(client, path, {"name": "Ivy Again", "password": "invitee password 1"}, token_from=SIGN_IN)


def test_an_existing_account_accepts_with_its_password(
        client: FlaskClient, member: Member, provider: DataProvider) -> None:
    tenant_id, slug = make_tenant(provider)
    token = invite(provider, tenant_id, member.email, role="employee")
    path = f"/identity/invitations/{token}"
    page = client.get(path).get_data(as_text=True)
    assert 'name="name"' not in page and "already have an account" in page

    wrong = post(client, path, {"password": "wrong password 0123"}, token_from=path)
    assert wrong.status_code == 401
    assert error_next_to(wrong.get_data(as_text=True), "password") == "email or password is wrong"
    with provider.management() as session:
        assert not iam.is_member(session, member.user_id, tenant_id)

    assert post(client, path, {"password": PASSWORD}, token_from=path).status_code == 303
    assert slug in client.get(SESSIONS).get_data(as_text=True)
    with provider.management() as session:
        assert iam.is_member(session, member.user_id, tenant_id)


@pytest.mark.parametrize("token", ["x" * 43, "short", "has.dots.in.it.and.more.chars"])
def test_an_unknown_invitation_is_a_404_page(client: FlaskClient, token: str) -> None:
    response = client.get(f"/identity/invitations/{token}")
    assert response.status_code == 404
    assert "unknown, already used or expired" in response.get_data(as_text=True)


def test_an_invitation_without_csrf_is_refused_and_not_used(client: FlaskClient,
                                                            provider: DataProvider) -> None:
    tenant_id, _ = make_tenant(provider)
    token = invite(provider, tenant_id, refs.email("invitee"))
    path = f"/identity/invitations/{token}"
    client.get(path)
    response = client.post(path, data={"name": "Ivy", "password": "invitee password 1"})
    assert response.status_code == 400
    assert client.get(path).status_code == 200  # still live
