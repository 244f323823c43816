"""A lost password replaced in Chromium: from the sign-in page's link, through the email a real
``notifications`` worker writes, to signing in with the new password; the second password
field must match, and the error is shown next to it."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page

from domain.db.provider import DataProvider
from tests.browser.conftest import element_after, make_owner
from tests.support import processes
from tests.support.mailbox import maildir_of, reset_token

pytestmark = pytest.mark.e2e
NEW_PASSWORD = "a password chosen anew 0123"


def press(page: Page, form: str) -> int:
    """Press the form's button; the status of the answer to its POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click(f'{form} button[type="submit"]')
    page.wait_for_load_state()
    return posted.value.status


def test_a_lost_password_is_replaced_from_the_sign_in_page(page: Page, provider: DataProvider,
                                                           all_queues_worker: processes.Process) -> None:
    owner = make_owner(provider)
    page.goto("/identity/sign-in")
    page.click("#forgot-password")
    page.fill('[name="email"]', owner.email)
    assert press(page, "form#password-reset-link") == 200
    assert owner.email in page.inner_text("#link-sent")

    token = reset_token(maildir_of(all_queues_worker), owner.email)
    page.goto(f"/identity/password-reset/{token}")
    assert page.inner_text('dd[data-field="email"]') == owner.email
    page.fill('[name="new_password"]', NEW_PASSWORD)
    page.fill('[name="confirm_password"]', NEW_PASSWORD + " typo")
    assert press(page, "form#reset") == 422
    error = element_after(page, "confirm_password")
    assert (error["cls"], error["field"], error["text"]) == (
        "field-error", "confirm_password", "does not match the new password"), error

    page.fill('[name="new_password"]', NEW_PASSWORD)
    page.fill('[name="confirm_password"]', NEW_PASSWORD)
    assert press(page, "form#reset") == 303
    assert page.url.endswith("/identity/sign-in"), page.url
    assert "Sign in with the new password." in page.inner_text('p.notice[role="status"]')

    page.fill('[name="email"]', owner.email)
    page.fill('[name="password"]', owner.password)
    assert press(page, "form#sign-in") == 401  # the old password is gone
    page.fill('[name="password"]', NEW_PASSWORD)
    page.fill('[name="tenant"]', owner.slug)
    assert press(page, "form#sign-in") == 303
    assert page.url.endswith("/identity/sessions"), page.url
