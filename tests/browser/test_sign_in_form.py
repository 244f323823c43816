"""The sign-in form in Chromium: a wrong password is shown next to the password field; the
right one lands on the sessions page with the tokens in HttpOnly cookies that page scripts
cannot read; a post without its CSRF token is refused and opens no session."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Response

from domain.db.provider import DataProvider
from tests.browser.conftest import Owner, count_sessions, element_after, make_owner, remove_csrf_token

pytestmark = pytest.mark.e2e
SIGN_IN = "/identity/sign-in"
ACCESS_COOKIE = "access_token_cookie"  # flask-jwt-extended's default name
REFRESH_COOKIE = "refresh_token_cookie"
FORM_ELEMENT = "form#sign-in"


@pytest.fixture(scope="module")
def owner(provider: DataProvider) -> Iterator[Owner]:
    """The owner of a fresh trial tenant, made in the database."""
    yield make_owner(provider)


def fill_sign_in(page: Page, owner: Owner, password: str) -> None:
    """Open the sign-in page and type the credentials and the tenant."""
    page.goto(SIGN_IN)
    page.fill('[name="email"]', owner.email)
    page.fill('[name="password"]', password)
    page.fill('[name="tenant"]', owner.slug)


def submit(page: Page) -> Response:
    """Press the form's button; the answer to its POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click(f'{FORM_ELEMENT} button[type="submit"]')
    page.wait_for_load_state()
    return posted.value


def token_cookies(page: Page) -> dict[str, dict[str, object]]:
    """The browser's token cookies by name (read from the browser, not from page scripts)."""
    return {c["name"]: dict(c) for c in page.context.cookies()
            if c["name"] in (ACCESS_COOKIE, REFRESH_COOKIE)}


def test_a_wrong_password_is_shown_next_to_the_password_field(page: Page, owner: Owner,
                                                              provider: DataProvider) -> None:
    fill_sign_in(page, owner, "not the password 0123")
    before = count_sessions(provider, owner.user_id)
    answer = submit(page)
    assert answer.status == 401
    error = element_after(page, "password")
    assert (error["cls"], error["field"]) == ("field-error", "password"), error
    assert error["text"] == "email or password is wrong"
    assert page.input_value('[name="email"]') == owner.email  # kept, to correct the password
    assert page.input_value('[name="password"]') == ""       # never sent back
    assert token_cookies(page) == {}
    assert count_sessions(provider, owner.user_id) == before


def test_signing_in_lands_on_the_sessions_page_with_tokens_scripts_cannot_read(
        page: Page, owner: Owner, provider: DataProvider) -> None:
    fill_sign_in(page, owner, owner.password)
    before = count_sessions(provider, owner.user_id)
    answer = submit(page)
    assert answer.status == 303
    assert page.url.endswith("/identity/sessions"), page.url
    assert page.inner_text("h1") == "My sessions"
    assert page.inner_text("tr.current td:first-child") == owner.slug  # this session, in the tenant
    assert count_sessions(provider, owner.user_id) == before + 1
    cookies = token_cookies(page)
    assert set(cookies) == {ACCESS_COOKIE, REFRESH_COOKIE}, cookies
    assert all(c["httpOnly"] for c in cookies.values()), cookies
    visible = page.evaluate("document.cookie")
    assert ACCESS_COOKIE not in visible and REFRESH_COOKIE not in visible
    assert str(cookies[ACCESS_COOKIE]["value"]) not in visible
    # The cookie is what signs the page in: a fresh visit still shows the sessions page.
    assert page.goto("/identity/sessions").status == 200  # type: ignore[union-attr]
    assert page.url.endswith("/identity/sessions"), page.url


def test_a_post_without_its_csrf_token_is_refused_and_opens_no_session(
        page: Page, owner: Owner, provider: DataProvider) -> None:
    fill_sign_in(page, owner, owner.password)
    remove_csrf_token(page, FORM_ELEMENT)
    before = count_sessions(provider, owner.user_id)
    answer = submit(page)
    assert answer.status == 400
    assert page.inner_text("h1") == "Error 400"
    assert "csrf_token" in page.inner_text("p.error")
    assert token_cookies(page) == {}
    assert count_sessions(provider, owner.user_id) == before
