"""The employment pages, as a browser calls them (cookie and CSRF token): the employee list
with search and paging, the create and edit forms with errors next to their fields and
nothing written, the structure page, and the org chart of 500 people as SVG."""
from __future__ import annotations

import re
import uuid
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from domain.employment import queries, relations
from domain.employment.models import Employee
from tests.integration.employment.conftest import Org, Plane, add_people, make_tree
from tests.support import tenants

BOX = re.compile(r'<g class="person" data-id="([^"]+)" data-manager="([^"]*)" '
                 r'transform="translate\((\d+),(\d+)\)">')


@pytest.fixture(scope="module")
def org(make_org) -> Org:  # type: ignore[no-untyped-def]
    """The module's organisation."""
    return make_org()


@pytest.fixture
def client(plane: Plane) -> FlaskClient:
    """A fresh test client."""
    return plane.client()


def page(plane: Plane, client: FlaskClient, org: Org, method: str, path: str, *, role: str = "hr_manager",
         form: dict[str, Any] | None = None) -> TestResponse:
    """Call a page with the member's token in the cookie (and a CSRF token on POST)."""
    return tenants.call_as(client, plane.app, method, path, org.tokens[role], form=form)


def errors_of(response: TestResponse) -> dict[str, str]:
    """The field errors a page shows: field name -> message."""
    found = re.findall(r'<p class="field-error" data-field="([^"]+)">([^<]*)</p>',
                       response.get_data(as_text=True))
    return {name: unescape(text) for name, text in found}


def _count(plane: Plane, org: Org) -> int:
    with plane.provider.tenant(org.id) as db:
        return db.scalar(select(func.count()).select_from(Employee)) or 0


def test_the_list_searches_and_pages(plane: Plane, client: FlaskClient, org: Org) -> None:
    tag = uuid.uuid4().hex[:6]
    add_people(plane.provider, org.id, 30, unit_id=None, prefix=f"lister{tag}")
    first = page(plane, client, org, "GET", f"/employment/employees?q=lister{tag}", role="employee")
    text = first.get_data(as_text=True)
    assert first.status_code == 200 and "30 employees" in text
    assert text.count("data-employee=") == 25 and "Page 1 of 2" in text and 'rel="next"' in text
    assert "Add an employee" not in text  # readers get no form links
    second = page(plane, client, org, "GET", f"/employment/employees?q=lister{tag}&page=2", role="employee")
    assert second.get_data(as_text=True).count("data-employee=") == 5
    odd = page(plane, client, org, "GET", "/employment/employees?q=%00%01x&page=zz", role="employee")
    assert odd.status_code == 200


def test_the_form_adds_an_employee_or_shows_each_error_beside_its_field(plane: Plane, client: FlaskClient,
                                                                       org: Org) -> None:
    boss = add_people(plane.provider, org.id, 1, unit_id=None, prefix="formboss")[0]
    blank = page(plane, client, org, "GET", "/employment/employees/new")
    assert blank.status_code == 200 and 'name="manager_email"' in blank.get_data(as_text=True)
    valid = {"name": "Form Person", "work_email": f"form-{uuid.uuid4().hex[:6]}@example.com",
             "status": "active", "job_type_id": "", "org_unit_id": "", "start_date": "2024-03-01",
             "end_date": "", "manager_email": boss[1]}
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    for change, field, status in [
        ({"name": ""}, "name", 422), ({"work_email": "nope"}, "work_email", 422),
        ({"end_date": "2024-02-01"}, "end_date", 422), ({"start_date": "2024-02-31"}, "start_date", 422),
        ({"org_unit_id": "not-a-unit"}, "org_unit_id", 422),
        ({"org_unit_id": str(uuid.uuid4())}, "org_unit_id", 404),
        ({"manager_email": "nobody@example.com"}, "manager_email", 404),
        ({"work_email": boss[1], "manager_email": ""}, "work_email", 409),
    ]:
        response = page(plane, client, org, "POST", "/employment/employees", form={**valid, **change})
        assert response.status_code == status, (change, response.status_code)
        assert field in errors_of(response), (change, errors_of(response))
        assert f'value="{valid["name"]}"' in response.get_data(as_text=True) or change.get("name") == ""
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []
    added = page(plane, client, org, "POST", "/employment/employees", form=valid)
    assert added.status_code == 303
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        person = queries.ids_by_email(db, [valid["work_email"]])[valid["work_email"]]
        assert relations.manager_of(db, graph_db, org.id, person).id == boss[0]  # type: ignore[union-attr]


def test_a_post_without_its_csrf_token_is_refused(plane: Plane, client: FlaskClient, org: Org) -> None:
    before = _count(plane, org)
    client.set_cookie(plane.app.config["JWT_ACCESS_COOKIE_NAME"], org.tokens["hr_manager"])
    response = client.post("/employment/employees", data={"name": "X", "work_email": "x@example.com",
                                                          "status": "active"})
    assert response.status_code == 400
    assert _count(plane, org) == before


def test_the_edit_form_saves_moves_and_deletes(plane: Plane, client: FlaskClient, org: Org) -> None:
    (boss, boss_email), (person, email) = add_people(plane.provider, org.id, 2, unit_id=None, prefix="editee")
    shown = page(plane, client, org, "GET", f"/employment/employees/{person}").get_data(as_text=True)
    assert f'value="{email}"' in shown
    form = {"name": "Edited Name", "work_email": email, "status": "on_leave", "job_type_id": "",
            "org_unit_id": "", "start_date": "", "end_date": "", "manager_email": boss_email}
    assert page(plane, client, org, "POST", f"/employment/employees/{person}", form=form).status_code == 303
    again = page(plane, client, org, "GET", f"/employment/employees/{person}").get_data(as_text=True)
    assert 'value="Edited Name"' in again and f'value="{boss_email}"' in again
    cycle = page(plane, client, org, "POST", f"/employment/employees/{boss}",
                 form={**form, "name": "Boss", "work_email": boss_email, "manager_email": email})
    assert cycle.status_code == 409 and "manager_email" in errors_of(cycle)
    cleared = page(plane, client, org, "POST", f"/employment/employees/{person}",
                   form={**form, "manager_email": ""})
    assert cleared.status_code == 303
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        assert relations.manager_of(db, graph_db, org.id, person) is None
    assert page(plane, client, org, "POST", f"/employment/employees/{person}/delete").status_code == 303
    assert page(plane, client, org, "GET", f"/employment/employees/{person}").status_code == 404


def test_the_structure_page_adds_and_refuses_with_reasons(plane: Plane, client: FlaskClient,
                                                         org: Org) -> None:
    name = f"Unit {uuid.uuid4().hex[:6]}"
    added = page(plane, client, org, "POST", "/employment/org-units", form={"name": name, "parent_id": ""})
    assert added.status_code == 303
    again = page(plane, client, org, "POST", "/employment/org-units",
                 form={"name": name.upper(), "parent_id": ""})
    assert again.status_code == 409 and "name" in errors_of(again)
    job = f"Job {uuid.uuid4().hex[:6]}"
    assert page(plane, client, org, "POST", "/employment/job-types", form={"name": job}).status_code == 303
    empty = page(plane, client, org, "POST", "/employment/job-types", form={"name": ""})
    assert empty.status_code == 422 and "name" in errors_of(empty)
    with plane.provider.tenant(org.id) as db:
        unit = next(u for u in queries.org_units(db) if u.name == name)
    add_people(plane.provider, org.id, 1, unit_id=unit.id, prefix="occupant")
    held = page(plane, client, org, "POST", f"/employment/org-units/{unit.id}/delete")
    assert held.status_code == 409 and "org_unit_id" in errors_of(held)
    text = page(plane, client, org, "GET", "/employment/structure", role="employee").get_data(as_text=True)
    assert name in text and job in text and 'id="create-org-unit"' not in text  # readers see no forms


def test_the_org_chart_of_500_people_draws_every_box_apart(plane: Plane, client: FlaskClient,
                                                          org: Org) -> None:
    tree = make_tree(plane.provider, org.id, 500, seed=13)
    response = page(plane, client, org, "GET", f"/employment/org-units/{tree.unit_id}/chart", role="employee")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    boxes = {uuid.UUID(i): (m, int(x), int(y)) for i, m, x, y in BOX.findall(text)}
    assert set(boxes) == set(tree.people)
    assert len({(x, y) for _, x, y in boxes.values()}) == 500  # no two boxes in one place
    for person, (manager, x, _) in boxes.items():
        boss = tree.manager[person]
        assert manager == (str(boss) if boss else "")
        assert boss is None or boxes[boss][1] < x  # a manager's column is left of their reports'
    assert text.count("<path d=") == 499  # one connector per reporting line
    assert "500 people" in text


def test_names_on_the_chart_are_escaped(plane: Plane, client: FlaskClient, org: Org) -> None:
    api = plane.client()
    unit = api.post("/api/v1/employment/org-units", json={"name": f"<b>Unit</b> {uuid.uuid4().hex[:4]}"},
                    headers=org.auth()).json
    api.post("/api/v1/employment/employees", headers=org.auth(), json={
        "name": "<script>alert(1)</script>", "work_email": f"x-{uuid.uuid4().hex[:6]}@example.com",
        "org_unit_id": unit["id"]})
    text = page(plane, client, org, "GET", f"/employment/org-units/{unit['id']}/chart").get_data(as_text=True)
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text and "<b>Unit" not in text
