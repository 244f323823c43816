"""The sign-up form in Chromium: submitted, it leads to the status page; an error shows next to
its field; without its CSRF token the post is refused and nothing is written."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Response

from domain.db.provider import DataProvider
from tests.browser.conftest import count_signups, element_after, remove_csrf_token, tenant_exists
from tests.support import refs

pytestmark = pytest.mark.e2e
FORM = "/tenancy/signup"
FORM_ELEMENT = 'main form[action="/tenancy/signup"]'


def fill_signup(page: Page, body: dict[str, str]) -> None:
    """Open the form and type every field, as a person would."""
    page.goto(FORM)
    for name, value in body.items():
        page.fill(f'[name="{name}"]', value)


def submit(page: Page) -> Response:
    """Press the button; the answer to the form's POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click(f'{FORM_ELEMENT} button[type="submit"]')
    page.wait_for_load_state()
    return posted.value


def test_a_filled_form_leads_to_the_status_page_of_the_signup(page: Page, provider: DataProvider) -> None:
    body = refs.signup_body()
    fill_signup(page, body)
    before = count_signups(provider)
    answer = submit(page)
    assert answer.status == 303
    assert re.fullmatch(r".*/tenancy/signups/[0-9a-f-]{36}", page.url), page.url
    assert page.inner_text("h1") == f"Setting up {body['slug']}"
    assert page.get_attribute('[data-step="recorded"]', "class") == "done"
    assert count_signups(provider) == before + 1
    assert tenant_exists(provider, body["slug"])


def test_a_taken_slug_is_shown_next_to_the_slug_field(page: Page, provider: DataProvider) -> None:
    first = refs.signup_body()
    fill_signup(page, first)
    assert submit(page).status == 303
    second = refs.signup_body(slug=first["slug"])
    fill_signup(page, second)
    before = count_signups(provider)
    answer = submit(page)
    assert answer.status == 409
    assert element_after(page, "slug") == {"cls": "field-error", "field": "slug", "text": "is already taken"}
    # The form comes back filled in (not the password), ready to correct and resend.
    assert page.input_value('[name="email"]') == second["email"]
    assert count_signups(provider) == before


def test_an_invalid_slug_is_shown_next_to_the_slug_field(page: Page, provider: DataProvider) -> None:
    body = refs.signup_body(slug="Not A Slug")
    fill_signup(page, body)
    before = count_signups(provider)
    answer = submit(page)
    assert answer.status == 422
    after_slug = element_after(page, "slug")
    assert (after_slug["cls"], after_slug["field"]) == ("field-error", "slug")
    assert "lower-case" in (after_slug["text"] or "")
    assert element_after(page, "email")["cls"] != "field-error"  # only the bad field is marked
    assert count_signups(provider) == before


def test_a_post_without_its_csrf_token_is_refused_and_writes_nothing(page: Page,
                                                                    provider: DataProvider) -> None:
    body = refs.signup_body()
    fill_signup(page, body)
    remove_csrf_token(page, FORM_ELEMENT)
    before = count_signups(provider)
    answer = submit(page)
    assert answer.status == 400
    assert page.inner_text("h1") == "Error 400"
    assert "csrf_token" in page.inner_text("p.error")
    assert count_signups(provider) == before
    assert not tenant_exists(provider, body["slug"])
