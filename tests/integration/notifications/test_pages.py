"""The HTML pages: my notices (newest first, twenty a page, mark one or all read), the unread
count the header's badge polls, my preferences, and the tenant admin's texts page. Forms carry
their CSRF token as a browser's would; another tenant's notice or override is a 404 page."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html import unescape

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from domain.db.base import utcnow
from domain.notifications.models import Notice
from domain.notifications.preferences import preferences_of
from tests.integration.notifications.conftest import Plane
from tests.support import pages, tenants
from tests.support.tenants import TenantWithMembers

ADMIN_PAGE = "/translations/admin"


def _member(org: TenantWithMembers, role: str) -> pages.Member:
    account = org.member(role)
    return pages.Member(account.email, account.user_id, org.id, org.slug)


def _notices(plane: Plane, org: TenantWithMembers, role: str, count: int) -> list[uuid.UUID]:
    return _notices_for(plane, org.id, org.member(role).user_id, count)


def _notices_for(plane: Plane, tenant_id: uuid.UUID, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """``count`` unread notices of the person in the tenant, committed; their ids, oldest first."""
    start = utcnow() - timedelta(hours=2)
    rows = [Notice(id=uuid.uuid4(), user_id=user_id, event_id=uuid.uuid4(),
                   category="assets", title=f"page notice {i:02d}", body=f"body {i}",
                   created_at=start + timedelta(minutes=i))
            for i in range(count)]
    with plane.provider.tenant(tenant_id) as session:
        session.add_all(rows)
        session.commit()
    return [n.id for n in rows]


def _shown(browser: FlaskClient, path: str = "/notifications") -> list[str]:
    return re.findall(r"<strong>(page notice \d+)</strong>", browser.get(path).get_data(as_text=True))


def test_the_notices_page_lists_pages_and_marks_read(plane: Plane) -> None:
    org = plane.tenant(("employee", "owner"))
    ids = _notices(plane, org, "employee", 23)
    _notices(plane, org, "owner", 2)
    browser = pages.signed_in_browser(plane.app, _member(org, "employee"))
    assert _shown(browser) == [f"page notice {i:02d}" for i in range(22, 2, -1)]
    assert _shown(browser, "/notifications?page=2") == ["page notice 02", "page notice 01", "page notice 00"]
    page = browser.get("/notifications").get_data(as_text=True)
    assert 'data-unread="23"' in page and "Page 1 of 2" in page
    assert browser.get("/notifications/unread-count").json == {"unread": 23}

    read = pages.post(browser, f"/notifications/{ids[22]}/read", token_from="/notifications")
    assert read.status_code == 303
    assert browser.get("/notifications/unread-count").json == {"unread": 22}
    assert f'data-notice="{ids[22]}"' in browser.get("/notifications").get_data(as_text=True)
    assert 'class="notice-item read" data-notice="' + str(ids[22]) in browser.get("/notifications").get_data(
        as_text=True)
    assert pages.post(browser, "/notifications/read-all", token_from="/notifications").status_code == 303
    assert browser.get("/notifications/unread-count").json == {"unread": 0}
    assert "22 notices marked read." in browser.get("/notifications").get_data(as_text=True)


def test_another_tenants_notice_is_a_404_page_and_stays_unread(plane: Plane) -> None:
    a, b = plane.tenant(("employee",)), plane.tenant(("employee",))
    (theirs,) = _notices(plane, b, "employee", 1)
    browser = pages.signed_in_browser(plane.app, _member(a, "employee"))
    response = pages.post(browser, f"/notifications/{theirs}/read", token_from="/notifications")
    assert response.status_code == 404
    with plane.provider.tenant(b.id) as session:
        assert session.get(Notice, theirs).read_at is None  # type: ignore[union-attr]


def test_the_badge_needs_a_tenant_member_and_a_form_needs_its_token(plane: Plane) -> None:
    assert pages.goes_to_sign_in(plane.app.test_client().get("/notifications/unread-count"))
    org = plane.tenant(("employee",))
    browser = pages.signed_in_browser(plane.app, _member(org, "employee"))
    assert browser.post("/notifications/read-all").status_code == 400  # no CSRF token
    page = browser.get("/notifications").get_data(as_text=True)
    assert 'id="unread-badge"' in page and "notifications.js" in page


def test_the_preferences_page_saves_channels_and_keeps_mandatory_ones_on(plane: Plane) -> None:
    org = plane.tenant(("employee",))
    member = _member(org, "employee")
    browser = pages.signed_in_browser(plane.app, member)
    page = browser.get("/notifications/preferences").get_data(as_text=True)
    assert re.search(r'name="email-billing"[^>]*checked[^>]*disabled', page)
    saved = pages.post(browser, "/notifications/preferences",
                       {"in_app-assets": "y", "email-welcome": "y", "in_app-welcome": "y", "digest": "y"},
                       token_from="/notifications/preferences")
    assert saved.status_code == 303
    with plane.provider.management() as session:
        found = preferences_of(session, member.user_id)
    chosen = {c.category: (c.email, c.in_app) for c in found.categories}
    assert chosen["assets"] == (False, True) and chosen["welcome"] == (True, True)
    assert chosen["publications"] == (False, False) and chosen["billing"] == (True, True) and found.digest
    assert "Your preferences are saved." in browser.get("/notifications/preferences").get_data(as_text=True)


def test_the_texts_page_sets_and_removes_an_override_for_its_tenant_only(plane: Plane) -> None:
    a, b = plane.tenant(("owner", "employee")), plane.tenant(("owner",))
    admin = pages.signed_in_browser(plane.app, _member(a, "owner"))
    bad = pages.post(admin, "/translations/admin?locale=en",
                     {"locale": "en", "key": "Notifications", "text": "%(who)s"}, token_from=ADMIN_PAGE)
    assert bad.status_code == 422
    assert pages.field_errors(bad, "text") and "unknown placeholder" in pages.field_errors(bad, "text")[0]
    made = pages.post(admin, "/translations/admin?locale=en",
                      {"locale": "en", "key": "Notifications", "text": "Inbox"}, token_from=ADMIN_PAGE)
    assert made.status_code == 303
    page = admin.get("/translations/admin?locale=en").get_data(as_text=True)
    override_id = re.search(r'data-key="Notifications" class="overridden" data-override="([0-9a-f-]{36})"',
                            page)
    assert override_id, page[:2000]
    assert "<h1>Inbox</h1>" in admin.get("/notifications").get_data(as_text=True)

    other = pages.signed_in_browser(plane.app, _member(b, "owner"))
    assert "<h1>Notifications</h1>" in other.get("/notifications").get_data(as_text=True)
    assert 'class="overridden"' not in other.get("/translations/admin").get_data(as_text=True)
    stolen = pages.post(other, f"/translations/admin/{override_id.group(1)}/delete", token_from=ADMIN_PAGE)
    assert stolen.status_code == 404
    assert "<h1>Inbox</h1>" in admin.get("/notifications").get_data(as_text=True)
    employee = pages.signed_in_browser(plane.app, _member(a, "employee"))
    assert employee.get("/translations/admin").status_code == 403
    removed = pages.post(admin, f"/translations/admin/{override_id.group(1)}/delete?locale=en",
                         token_from="/translations/admin")
    assert removed.status_code == 303
    assert "<h1>Notifications</h1>" in admin.get("/notifications").get_data(as_text=True)


# --- tenant isolation of the notice routes ------------------------------------------------
# Notices live in each tenant's database and are filtered by person; the strong case is one
# account that is a member of both A and B, signed in to A: only the tenant scopes its rows.

def _in_both(plane: Plane) -> tuple[TenantWithMembers, TenantWithMembers, pages.Member]:
    """Tenants A and B (B with an employee of its own), and an employee of A who is also an
    employee of B, as a member of A."""
    a, b = plane.tenant(("employee",)), plane.tenant(("employee",))
    tenants.add_member(plane.provider, b.id, "employee", account=a.member("employee"))
    return a, b, _member(a, "employee")


def _read_at(plane: Plane, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, object]:
    """When each of ``ids`` was read (None: unread), from the tenant's database."""
    with plane.provider.unscoped(plane.provider.route(tenant_id).db_key) as session:
        rows = session.execute(select(Notice.id, Notice.read_at, Notice.tenant_id).where(Notice.id.in_(ids)))
        found = {row.id: (row.read_at, row.tenant_id) for row in rows}
    assert {tenant for _, tenant in found.values()} == {tenant_id} and found.keys() == set(ids)
    return {notice: read_at for notice, (read_at, _) in found.items()}


@pytest.mark.parametrize("whose", ["b-employee", "same-account"])
def test_marking_another_tenants_notice_read_is_a_404_and_it_stays_unread(plane: Plane, whose: str) -> None:
    a, b, member = _in_both(plane)
    (mine,) = _notices(plane, a, "employee", 1)
    owner = b.member("employee") if whose == "b-employee" else a.member("employee")
    theirs = _notices_for(plane, b.id, owner.user_id, 1)
    browser = pages.signed_in_browser(plane.app, member, a.slug)
    before = tenants.tenant_fingerprint(plane.provider, b.id)

    response = pages.post(browser, f"/notifications/{theirs[0]}/read", token_from="/notifications")
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    assert "page notice" not in unescape(response.get_data(as_text=True))
    assert _read_at(plane, b.id, theirs) == {theirs[0]: None}
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.id)) == []
    assert _read_at(plane, a.id, [mine]) == {mine: None}  # nothing of A's marked either
    assert browser.get("/notifications/unread-count").json == {"unread": 1}


def test_read_all_marks_only_the_callers_tenants_notices(plane: Plane) -> None:
    a, b, member = _in_both(plane)
    mine = _notices(plane, a, "employee", 3)
    same_account_in_b = _notices_for(plane, b.id, member.user_id, 4)
    b_employees = _notices(plane, b, "employee", 2)
    browser = pages.signed_in_browser(plane.app, member, a.slug)
    before = tenants.tenant_fingerprint(plane.provider, b.id)

    marked = pages.post(browser, "/notifications/read-all", token_from="/notifications")
    assert marked.status_code == 303
    assert "3 notices marked read." in unescape(browser.get("/notifications").get_data(as_text=True))
    assert None not in _read_at(plane, a.id, mine).values()
    assert _read_at(plane, b.id, same_account_in_b + b_employees) == dict.fromkeys(
        same_account_in_b + b_employees)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.id)) == []
    in_b = pages.signed_in_browser(plane.app, member, b.slug)
    assert in_b.get("/notifications/unread-count").json == {"unread": 4}


def test_the_unread_count_counts_only_the_callers_tenant(plane: Plane) -> None:
    a, b, member = _in_both(plane)
    mine = _notices(plane, a, "employee", 3)
    _notices_for(plane, b.id, member.user_id, 5)
    _notices(plane, b, "employee", 7)
    with plane.provider.tenant(a.id) as session:  # one of A's read: only unread ones count
        session.execute(update(Notice).where(Notice.id == mine[0]).values(read_at=utcnow()))
        session.commit()

    for slug, unread in ((a.slug, 2), (b.slug, 5)):
        in_tenant = pages.signed_in_browser(plane.app, member, slug)
        assert in_tenant.get("/notifications/unread-count").json == {"unread": unread}
    b_employee = pages.signed_in_browser(plane.app, _member(b, "employee"))
    assert b_employee.get("/notifications/unread-count").json == {"unread": 7}
