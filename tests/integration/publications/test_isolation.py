"""Tenant isolation of the publications routes: tenant A's owner (every permission) aims
each route that names a thing at tenant B's publication, section, attachment, org unit or
employee (in the URL or the body): the answer is 404 (naming the field, for the API) and
nothing of B changes. An account that belongs to both tenants reads B's publication only
with a token for B. Pages are called as a browser calls them (cookie and CSRF token)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.publications.conftest import (
    API,
    Org,
    Plane,
    asset,
    draft,
    emails_in_progress,
    employ,
    notices_of,
    publish,
    unit,
    wait_published,
)
from tests.support import tenants
from tests.support.tenants import bearer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("workers")
SECRET = "B-only-secret-words"


@dataclass(frozen=True)
class B:
    """Tenant B and one of each of its things."""

    org: Org
    draft: uuid.UUID
    section: uuid.UUID
    published: uuid.UUID
    asset: uuid.UUID
    unit: uuid.UUID
    employee: uuid.UUID
    employee_email: str


@pytest.fixture(scope="module")
def a(make_org: Callable[..., Org]) -> Org:
    """Tenant A, whose owner probes."""
    return make_org()


@pytest.fixture(scope="module")
def b(plane: Plane, a: Org, make_org: Callable[..., Org]) -> B:
    """B with a draft (and a section), a unit, an attachment, and a publication sent to its
    employee and to A's owner, who is a member and an employee of B too."""
    org = make_org()
    client = plane.client()
    b_unit = unit(plane.provider, org.id, "B unit")
    tenants.add_member(plane.provider, org.id, "employee", account=a.tenant.member("owner"))
    (twin,) = employ(plane.provider, org.id, [a.tenant.member("owner").email])
    attachment = asset(plane, org.id, org.user("hr_manager"), filename="b-secret.txt")
    pending = draft(client, org, title=f"{SECRET} draft", body=SECRET,
                    sections=[{"heading": f"{SECRET} section", "body": SECRET}])
    out = draft(client, org, title=f"{SECRET} news", body=SECRET, attachments=[str(attachment)],
                audience={"kind": "people", "employee_ids": [str(org.employees["employee"]), str(twin)]})
    publish(client, org, out["id"])
    wait_published(plane, org.id, out["id"])
    wait_for(lambda: len(notices_of(plane, org.id, SECRET)) == 2, timeout=60, message="B's notices")
    # The tests compare B before and after each request: nothing of B's may still be moving.
    wait_for(lambda: emails_in_progress(plane, org.id) == 0, timeout=60, message="B's emails to be settled")
    employee_email = org.tenant.member("employee").email
    return B(org, uuid.UUID(pending["id"]), uuid.UUID(pending["sections"][0]["id"]), uuid.UUID(out["id"]),
             attachment, b_unit, org.employees["employee"], employee_email)


def _a_draft(plane: Plane, a: Org) -> str:
    return draft(plane.client(), a, "owner", title="A's own")["id"]  # type: ignore[no-any-return]


# (method, path, json or form, the field a 404 of the API names)
Case = tuple[str, Callable[[B, Callable[[], str]], str], Callable[[B], Any] | None, str | None]
CASES: dict[str, Case] = {
    # API, B's thing in the URL
    "get": ("GET", lambda b, mine: f"{API}/{b.draft}", None, "publication_id"),
    "put": ("PUT", lambda b, mine: f"{API}/{b.draft}", lambda b: {"title": "Mine"}, "publication_id"),
    "delete": ("DELETE", lambda b, mine: f"{API}/{b.draft}", None, "publication_id"),
    "add-section": ("POST", lambda b, mine: f"{API}/{b.draft}/sections", lambda b: {"heading": "Mine"},
                    "publication_id"),
    "put-section": ("PUT", lambda b, mine: f"{API}/{b.draft}/sections/{b.section}",
                    lambda b: {"heading": "Mine"}, "publication_id"),
    "delete-section": ("DELETE", lambda b, mine: f"{API}/{b.draft}/sections/{b.section}", None,
                       "publication_id"),
    "reorder": ("PUT", lambda b, mine: f"{API}/{b.draft}/sections/order",
                lambda b: {"section_ids": [str(b.section)]}, "publication_id"),
    "publish": ("POST", lambda b, mine: f"{API}/{b.draft}/publish", lambda b: {}, "publication_id"),
    "unschedule": ("POST", lambda b, mine: f"{API}/{b.draft}/unschedule", None, "publication_id"),
    "read": ("GET", lambda b, mine: f"{API}/received/{b.published}", None, "publication_id"),
    "attachment": ("GET", lambda b, mine: f"{API}/received/{b.published}/attachments/{b.asset}", None,
                   "publication_id"),
    "b-section-of-mine": ("PUT", lambda b, mine: f"{API}/{mine()}/sections/{b.section}",
                          lambda b: {"heading": "Mine"}, "section_id"),
    # API, B's thing in the body
    "reorder-mine-with-b-section": ("PUT", lambda b, mine: f"{API}/{mine()}/sections/order",
                                    lambda b: {"section_ids": [str(b.section)]}, "section_ids"),
    "audience-b-unit": ("POST", lambda b, mine: API, lambda b: {"title": "Mine", "audience": {
        "kind": "org_unit", "org_unit_id": str(b.unit)}}, "audience.org_unit_id"),
    "audience-b-employee": ("POST", lambda b, mine: API, lambda b: {"title": "Mine", "audience": {
        "kind": "people", "employee_ids": [str(b.employee)]}}, "audience.employee_ids"),
    "attach-b-asset": ("POST", lambda b, mine: API,
                       lambda b: {"title": "Mine", "attachments": [str(b.asset)]}, "attachments"),
    "change-mine-to-b-unit": ("PUT", lambda b, mine: f"{API}/{mine()}", lambda b: {
        "title": "Mine", "audience": {"kind": "org_unit", "org_unit_id": str(b.unit)}},
        "audience.org_unit_id"),
    # pages
    "page-read": ("GET", lambda b, mine: f"/publications/{b.published}", None, None),
    "page-attachment": ("GET", lambda b, mine: f"/publications/{b.published}/attachments/{b.asset}", None,
                        None),
    "page-edit": ("GET", lambda b, mine: f"/publications/{b.draft}/edit", None, None),
    "page-save": ("POST", lambda b, mine: f"/publications/{b.draft}/edit",
                  lambda b: {"title": "Mine", "audience_kind": "everyone"}, None),
    "page-add-section": ("POST", lambda b, mine: f"/publications/{b.draft}/sections",
                         lambda b: {"heading": "Mine"}, None),
    "page-save-section": ("POST", lambda b, mine: f"/publications/{b.draft}/sections/{b.section}",
                          lambda b: {"heading": "Mine"}, None),
    "page-move-section": ("POST", lambda b, mine: f"/publications/{b.draft}/sections/{b.section}/move",
                          lambda b: {"direction": "up"}, None),
    "page-delete-section": ("POST", lambda b, mine: f"/publications/{b.draft}/sections/{b.section}/delete",
                            None, None),
    "page-publish": ("POST", lambda b, mine: f"/publications/{b.draft}/publish", lambda b: {}, None),
    "page-unschedule": ("POST", lambda b, mine: f"/publications/{b.draft}/unschedule", None, None),
    "page-delete": ("POST", lambda b, mine: f"/publications/{b.draft}/delete", None, None),
    "page-b-section-of-mine": ("POST", lambda b, mine: f"/publications/{mine()}/sections/{b.section}",
                               lambda b: {"heading": "Mine"}, None),
    "page-create-for-b-unit": ("POST", lambda b, mine: "/publications", lambda b: {
        "title": "Mine", "audience_kind": "org_unit", "org_unit_id": str(b.unit)}, None),
    "page-create-for-b-employee": ("POST", lambda b, mine: "/publications", lambda b: {
        "title": "Mine", "audience_kind": "people", "people": b.employee_email}, None),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_another_tenants_things_are_not_found_and_unchanged(plane: Plane, a: Org, b: B, case: str) -> None:
    method, path, body, field = CASES[case]
    url = path(b, lambda: _a_draft(plane, a))
    client = plane.client()
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    page = not url.startswith("/api/")
    response = tenants.call_as(client, plane.app, method, url, a.tokens["owner"],
                               json=None if page or body is None else body(b),
                               form=body(b) if page and body is not None else None)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    if not page:
        assert response.json["field"] == field
    assert SECRET not in response.get_data(as_text=True)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []


def test_lists_show_only_the_callers_tenant(plane: Plane, a: Org, b: B) -> None:
    client = plane.client()
    for url in (API, f"{API}/received", "/publications", "/publications/manage", "/publications/new"):
        response = tenants.call_as(client, plane.app, "GET", url, a.tokens["owner"])
        assert response.status_code == 200, (url, response.status_code)
        text = response.get_data(as_text=True)
        secrets = (SECRET, str(b.draft), str(b.published), str(b.unit), "b-secret.txt")
        leaked = [s for s in secrets if s in text]
        assert not leaked, (url, leaked)


def test_an_account_in_both_tenants_reads_bs_publication_only_as_b(plane: Plane, a: Org, b: B) -> None:
    client = plane.client()
    owner = a.tenant.member("owner")
    as_a = bearer(a.tokens["owner"])
    as_b = bearer(tenants.access_token(client, owner, b.org.tenant.slug))
    assert client.get(f"{API}/received", headers=as_a).json["items"] == []
    assert [p["id"] for p in client.get(f"{API}/received", headers=as_b).json["items"]] == [str(b.published)]
    opened = client.get(f"{API}/received/{b.published}", headers=as_b)
    assert opened.status_code == 200 and SECRET in opened.json["body_html"]
