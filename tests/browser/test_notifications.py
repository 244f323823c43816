"""The header's unread badge in Chromium: it appears when a notice arrives and follows the
count as notices are read, without the page being reloaded; the notices page marks them read."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from domain.db.provider import DataProvider
from domain.notifications.models import Notice
from tests.support import tenants

pytestmark = pytest.mark.e2e
PASSWORD = "badge owner password 0123"
WAIT_MS = 20_000  # the badge asks every 5 s


def _arrive(provider: DataProvider, tenant_id: uuid.UUID, user_id: uuid.UUID, *titles: str) -> None:
    """Notices written as the notifications worker writes them."""
    with provider.tenant(tenant_id) as session:
        session.add_all(Notice(user_id=user_id, event_id=uuid.uuid4(), category="assets", title=title,
                               body="") for title in titles)
        session.commit()


def test_the_badge_follows_arriving_and_read_notices_without_a_reload(page: Page,
                                                                       provider: DataProvider) -> None:
    org = tenants.create_tenant(provider, ("owner",), prefix="badge", password=PASSWORD)
    owner = org.member("owner")
    page.goto("/identity/sign-in")
    page.fill('[name="email"]', owner.email)
    page.fill('[name="password"]', PASSWORD)
    page.fill('[name="tenant"]', org.slug)
    page.click('form#sign-in button[type="submit"]')
    page.wait_for_url("**/identity/sessions")
    badge = page.locator("#unread-badge")
    expect(page.locator("#notices-link")).to_be_visible()
    expect(badge).to_be_hidden()

    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded
    _arrive(provider, org.id, owner.user_id, "first.pdf is ready")
    expect(badge).to_be_visible(timeout=WAIT_MS)
    expect(badge).to_have_text("1")
    _arrive(provider, org.id, owner.user_id, "second.pdf is ready", "third.pdf is ready")
    expect(badge).to_have_text("3", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True

    page.click("#notices-link")
    page.wait_for_url("**/notifications")
    expect(page.locator("li.notice-item.unread")).to_have_count(3)
    expect(badge).to_have_text("3")
    page.click('li.notice-item:has-text("second.pdf") form[data-action="read"] button')
    page.wait_for_url("**/notifications*")
    expect(badge).to_have_text("2", timeout=WAIT_MS)
    page.click('form[data-action="read-all"] button')
    page.wait_for_url("**/notifications")
    expect(page.locator("li.notice-item.unread")).to_have_count(0)
    expect(badge).to_be_hidden(timeout=WAIT_MS)
