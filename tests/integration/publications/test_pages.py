"""The publications pages as a browser uses them (access cookie, CSRF token on every POST):
the draft form with its errors beside the fields, sections added, moved and removed,
publishing and scheduling, the reader's list and page (its read receipt), and the authors'
list with read counts."""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.test import TestResponse

from domain.publications import queries
from tests.integration.publications.conftest import (
    PUBLISH,
    Org,
    Plane,
    add_reader,
    messages,
    status_of,
    unit,
    wait_published,
)
from tests.support import tenants
from tests.support.pages import errors_by_field

pytestmark = pytest.mark.usefixtures("workers")
@pytest.fixture(scope="module")
def org(make_org: Callable[..., Org]) -> Org:
    """The module's organisation."""
    return make_org()


def call(plane: Plane, org: Org, method: str, path: str, *, role: str = "hr_manager",
         form: dict[str, object] | None = None, token: str | None = None) -> TestResponse:
    """A page request with the member's cookie (and a CSRF token on POST)."""
    return tenants.call_as(plane.client(), plane.app, method, path, token or org.tokens[role], form=form)


def created_id(response: TestResponse) -> uuid.UUID:
    """The publication a 303 to its edit page names."""
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    match = re.search(r"/publications/([0-9a-f-]{36})/edit$", response.headers["Location"])
    assert match, response.headers["Location"]
    return uuid.UUID(match.group(1))


def view(plane: Plane, org: Org, publication_id: uuid.UUID) -> queries.PublicationView:
    """The publication as the authors' query reads it."""
    with plane.provider.tenant(org.id) as db:
        return queries.publication(db, publication_id)


def test_the_draft_form_refuses_bad_values_beside_their_fields(plane: Plane, org: Org) -> None:
    page = call(plane, org, "GET", "/publications/new")
    assert page.status_code == 200 and 'name="csrf_token"' in page.get_data(as_text=True)
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    blank = call(plane, org, "POST", "/publications", form={"title": "  ", "audience_kind": "everyone"})
    assert (blank.status_code, errors_by_field(blank)) == (422, {"title": ["This field is required."]})
    unknown = call(plane, org, "POST", "/publications", form={
        "title": "For some", "audience_kind": "people", "people": "nobody@example.com"})
    assert unknown.status_code == 404
    assert errors_by_field(unknown) == {"people": ["no employee has the work email nobody@example.com"]}
    assert 'value="For some"' in unknown.get_data(as_text=True)  # kept, to correct
    nul = call(plane, org, "POST", "/publications", form={
        "title": "For some", "audience_kind": "people", "people": "a\x00b@example.com"})
    assert nul.status_code == 422
    assert errors_by_field(nul) == {"people": ["a work email has no control characters"]}
    no_unit = call(plane, org, "POST", "/publications",
                   form={"title": "For a unit", "audience_kind": "org_unit"})
    assert (no_unit.status_code, list(errors_by_field(no_unit))) == (422, ["org_unit_id"])
    control = call(plane, org, "POST", "/publications", form={"title": "Bell", "body": "ding\x07"})
    assert (control.status_code, list(errors_by_field(control))) == (422, ["body"])
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []


def test_a_draft_is_written_structured_and_scheduled_through_the_pages(plane: Plane, org: Org) -> None:
    team = unit(plane.provider, org.id, "Pages team")
    made = call(plane, org, "POST", "/publications", form={
        "title": "Quarterly update", "body": "It went **well**.", "audience_kind": "org_unit",
        "org_unit_id": str(team), "sub_units": "y"})
    publication_id = created_id(made)
    base = f"/publications/{publication_id}"
    created = view(plane, org, publication_id)
    assert (created.audience.kind, created.audience.org_unit_id, created.audience.sub_units) == (
        "org_unit", team, True)
    edit = call(plane, org, "GET", f"{base}/edit").get_data(as_text=True)
    assert 'value="Quarterly update"' in edit and 'id="new-section"' in edit and 'data-status="draft"' in edit

    for heading in ("First", "Second", "Third"):
        added = call(plane, org, "POST", f"{base}/sections", form={"heading": heading, "body": "x"})
        assert added.status_code == 303
    refused = call(plane, org, "POST", f"{base}/sections", form={"heading": ""})
    assert (refused.status_code, list(errors_by_field(refused))) == (422, ["heading"])
    first, second, third = (s.id for s in view(plane, org, publication_id).sections)
    for section, direction in ((first, "down"), (third, "up")):
        moved = call(plane, org, "POST", f"{base}/sections/{section}/move", form={"direction": direction})
        assert moved.status_code == 303
    refused_edit = call(plane, org, "POST", f"{base}/sections/{second}",
                        form={"heading": "", "body": "typed"})
    assert refused_edit.status_code == 422
    assert errors_by_field(refused_edit) == {"heading": ["This field is required."]}
    assert "typed</textarea>" in refused_edit.get_data(as_text=True)  # kept, to correct
    bad_move = call(plane, org, "POST", f"{base}/sections/{third}/move", form={"direction": "sideways"})
    assert bad_move.status_code == 422
    assert call(plane, org, "POST", f"{base}/sections/{second}", form={"heading": "Zweite", "body": "**2**"}
                ).status_code == 303
    assert call(plane, org, "POST", f"{base}/sections/{first}/delete").status_code == 303
    sections = view(plane, org, publication_id).sections
    assert [(s.heading, s.position) for s in sections] == [("Zweite", 0), ("Third", 1)]

    bad_time = call(plane, org, "POST", f"{base}/publish", form={"publish_at": "soon"})
    assert (bad_time.status_code, list(errors_by_field(bad_time))) == (422, ["publish_at"])
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    assert call(plane, org, "POST", f"{base}/publish", form={"publish_at": later}).status_code == 303
    assert status_of(plane, org.id, publication_id) == "scheduled"
    assert 'data-status="scheduled"' in call(plane, org, "GET", f"{base}/edit").get_data(as_text=True)
    assert call(plane, org, "POST", f"{base}/unschedule").status_code == 303
    assert status_of(plane, org.id, publication_id) == "draft"
    assert messages(plane, org.id, PUBLISH, publication_id) == []

    employee_email = org.tenant.member("employee").email
    changed = call(plane, org, "POST", f"{base}/edit", form={
        "title": "Quarterly update", "audience_kind": "people", "people": employee_email})
    assert changed.status_code == 303
    assert view(plane, org, publication_id).audience.employee_ids == (org.employees["employee"],)


def test_a_reader_finds_and_opens_a_publication_and_the_author_sees_it_read(plane: Plane, org: Org) -> None:
    reader, _, reader_token = add_reader(plane, org)
    made = call(plane, org, "POST", "/publications", form={
        "title": "Canteen menu", "body": "Soup <b>and</b> [bread](javascript:alert(1))",
        "audience_kind": "people", "people": reader.email})
    publication_id = created_id(made)
    assert call(plane, org, "POST", f"/publications/{publication_id}/publish", form={}).status_code == 303
    wait_published(plane, org.id, publication_id)

    listed = call(plane, org, "GET", "/publications", token=reader_token)
    assert listed.status_code == 200
    assert f'data-publication="{publication_id}" class="unread"' in listed.get_data(as_text=True)
    opened = call(plane, org, "GET", f"/publications/{publication_id}", token=reader_token)
    text = opened.get_data(as_text=True)
    assert opened.status_code == 200 and "Canteen menu" in text
    assert '<p>Soup and <a rel="noopener noreferrer nofollow">bread</a></p>' in text  # no tag, no target
    assert "javascript" not in text
    assert f'data-publication="{publication_id}" class="read"' in call(
        plane, org, "GET", "/publications", token=reader_token).get_data(as_text=True)
    manage = call(plane, org, "GET", "/publications/manage").get_data(as_text=True)
    row = re.search(rf'data-publication="{publication_id}".*?</tr>', manage, re.S)
    assert row and '<td class="recipients">1</td>' in row.group(0)
    assert '<td class="read">1</td>' in row.group(0)
    # The author is not in its audience: it is not theirs to read (they manage it instead).
    assert call(plane, org, "GET", f"/publications/{publication_id}").status_code == 404


def test_only_publishers_reach_the_authors_pages(plane: Plane, org: Org) -> None:
    assert call(plane, org, "GET", "/publications", role="employee").status_code == 200
    for path in ("/publications/manage", "/publications/new"):
        assert call(plane, org, "GET", path, role="employee").status_code == 403
    anonymous = plane.client().get("/publications/manage")
    assert anonymous.status_code == 302 and "/identity/sign-in" in anonymous.headers["Location"]


def test_a_form_without_its_csrf_token_is_refused(plane: Plane, org: Org) -> None:
    client = plane.client()
    client.set_cookie(plane.app.config["JWT_ACCESS_COOKIE_NAME"], org.tokens["hr_manager"])
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    response = client.post("/publications", data={"title": "Forged", "audience_kind": "everyone"})
    assert response.status_code == 400
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []
