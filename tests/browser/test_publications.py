"""Publications in Chromium: an HR manager signs in, writes a publication for everyone
through the form (a blank title refused beside its field), adds a section and publishes
it; the ``publications`` worker sends it out; an employee, signed in in another browser,
finds it in their list and opens it; the author then sees it counted as read."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, Response

from domain.db.provider import DataProvider
from domain.employment import services
from domain.employment.services import EmployeeFields
from tests.browser.conftest import LiveServer, element_after
from tests.support import processes, tenants
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
PASSWORD = "publications password 0123"


def submit(page: Page, form: str) -> Response:
    """Press the form's button; the answer to its POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click(f'{form} button[type="submit"]')
    page.wait_for_load_state()
    return posted.value


def sign_in(page: Page, email: str, slug: str) -> None:
    """Sign in through the form."""
    page.goto("/identity/sign-in")
    page.fill('[name="email"]', email)
    page.fill('[name="password"]', PASSWORD)
    page.fill('[name="tenant"]', slug)
    assert submit(page, "form#sign-in").status == 303


def status_shown(page: Page) -> str | None:
    """The status the edit page shows, after reloading it."""
    page.reload()
    return page.get_attribute("#status", "data-status")


def test_a_publication_written_and_published_is_in_another_users_list(
        page: Page, browser: Browser, live_server: LiveServer, provider: DataProvider,
        start_worker: Callable[..., processes.Process]) -> None:
    start_worker("browser-publications", "publications")
    org = tenants.create_tenant(provider, ("hr_manager", "employee"), prefix="browser-pub", password=PASSWORD)
    author, reader = org.member("hr_manager"), org.member("employee")
    with provider.tenant(org.id) as db, provider.management() as graph_db:
        for name, account in (("Hanna Author", author), ("Erik Reader", reader)):
            services.create_employee(db, graph_db, org.id, EmployeeFields(name, account.email))
        db.commit()

    sign_in(page, author.email, org.slug)
    page.goto("/publications/new")
    page.fill('[name="body"]', "Welcome to the **new office**.")
    assert submit(page, "form#publication").status == 422
    assert element_after(page, "title") == {"cls": "field-error", "field": "title",
                                            "text": "This field is required."}
    assert page.input_value('[name="body"]') == "Welcome to the **new office**."  # kept
    page.fill('[name="title"]', "We moved")
    page.check('input[name="audience_kind"][value="everyone"]')
    assert submit(page, "form#publication").status == 303
    page.fill('#new-section [name="heading"]', "Directions")
    page.fill('#new-section [name="body"]', "Take the *second* left.")
    assert submit(page, "form#new-section").status == 303
    assert submit(page, "form#publish").status == 303
    wait_for(lambda: status_shown(page) == "published", timeout=60, message="the publication to go out")
    assert page.inner_text("#recipients") == "2"

    reader_context = browser.new_context(base_url=live_server.url)
    reader_context.set_default_timeout(15_000)
    reading = reader_context.new_page()
    try:
        sign_in(reading, reader.email, org.slug)
        reading.goto("/publications")
        row = reading.locator("#received tr.unread", has_text="We moved")
        assert row.count() == 1
        row.locator("a").click()
        reading.wait_for_load_state()
        assert reading.inner_text("h1") == "We moved"
        assert reading.inner_text("#publication .body strong") == "new office"
        assert reading.inner_text("#publication section h2") == "Directions"
        reading.goto("/publications")
        assert reading.locator("#received tr.read", has_text="We moved").count() == 1
        assert reading.goto("/publications/manage").status == 403  # readers do not manage
    finally:
        reader_context.close()

    page.goto("/publications/manage")
    row = page.locator("#publications tr", has_text="We moved")
    assert (row.locator(".status").inner_text(), row.locator(".read").inner_text()) == ("published", "1")
