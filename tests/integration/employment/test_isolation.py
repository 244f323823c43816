"""Tenant isolation of the employment routes: tenant A's owner (every permission) aims each
route that names a thing at tenant B's employee, job type, org unit, relation or import
(in the URL or the body): the answer is 404 (naming the field, for the API) and nothing of
B changes. Pages are called as a browser calls them (cookie and CSRF token)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from domain.employment import imports, queries, services, structure
from domain.employment.services import EmployeeFields
from domain.messaging import handling, outbox
from tests.integration.employment.conftest import API, Org, Plane
from tests.support import tenants

TEXT = b"name,work_email\nB Person,b-person@example.com\n"


@dataclass(frozen=True)
class B:
    """Tenant B and one of each of its things."""

    org: Org
    employee: uuid.UUID
    manager: uuid.UUID
    job_type: uuid.UUID
    unit: uuid.UUID
    import_id: uuid.UUID


@pytest.fixture(scope="module")
def b(plane: Plane, make_org: Callable[[], Org]) -> B:
    """B with a job type, a unit, an employee reporting to a manager, and a finished import.

    The import is run here, as the employment worker runs it, and its message confirmed: left
    pending, the relay would re-send it and a worker left running by another module could
    change B's import in the middle of a test."""
    org = make_org()
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        job = structure.create_job_type(db, org.id, "B's job")
        unit = structure.create_org_unit(db, org.id, "B's unit", None)
        boss = services.create_employee(db, graph_db, org.id, EmployeeFields("B Boss", "b-boss@example.com",
                                                                             org_unit_id=unit.id))
        worker = services.create_employee(db, graph_db, org.id, EmployeeFields(
            "B Worker", "b-worker@example.com", job.id, unit.id, manager_email="b-boss@example.com"))
        pending = imports.record_import(db, org.id, "b.csv", TEXT, created_by=None, correlation_id=None)
        queued = outbox.take_pending(db)
        graph_db.commit()
        db.commit()
    assert imports.run(plane.provider, org.id, pending.id).status == "completed"
    for envelope in queued:
        handling.confirm_delivery(plane.provider, envelope)
    return B(org, worker.id, boss.id, job.id, unit.id, pending.id)


@pytest.fixture(scope="module")
def a(make_org: Callable[[], Org]) -> Org:
    """Tenant A, whose owner probes."""
    return make_org()


def employee_body(b: B) -> dict[str, Any]:
    """A valid employee body for A."""
    return {"name": "A Person", "work_email": f"a-{uuid.uuid4().hex[:6]}@example.com"}


# (method, path, json or form, the field a 404 of the API names)
Case = tuple[str, Callable[[B], str], Callable[[B], Any] | None, str | None]
CASES: dict[str, Case] = {
    # API, B's thing in the URL
    "get-employee": ("GET", lambda b: f"{API}/employees/{b.employee}", None, "employee_id"),
    "put-employee": ("PUT", lambda b: f"{API}/employees/{b.employee}", employee_body, "employee_id"),
    "delete-employee": ("DELETE", lambda b: f"{API}/employees/{b.employee}", None, "employee_id"),
    "relations": ("GET", lambda b: f"{API}/employees/{b.employee}/relations", None, "employee_id"),
    "direct-reports": ("GET", lambda b: f"{API}/employees/{b.manager}/direct-reports", None, "employee_id"),
    "chain": ("GET", lambda b: f"{API}/employees/{b.employee}/chain", None, "employee_id"),
    "subordinates": ("GET", lambda b: f"{API}/employees/{b.manager}/subordinates", None, "employee_id"),
    "rename-job-type": ("PUT", lambda b: f"{API}/job-types/{b.job_type}", lambda b: {"name": "Mine"},
                        "job_type_id"),
    "delete-job-type": ("DELETE", lambda b: f"{API}/job-types/{b.job_type}", None, "job_type_id"),
    "get-unit": ("GET", lambda b: f"{API}/org-units/{b.unit}", None, "org_unit_id"),
    "put-unit": ("PUT", lambda b: f"{API}/org-units/{b.unit}", lambda b: {"name": "Mine"}, "org_unit_id"),
    "delete-unit": ("DELETE", lambda b: f"{API}/org-units/{b.unit}", None, "org_unit_id"),
    "chart": ("GET", lambda b: f"{API}/org-units/{b.unit}/chart", None, "org_unit_id"),
    "delete-relation": ("DELETE", lambda b: f"{API}/relations/reports_to/{b.employee}/{b.manager}", None,
                        "relation"),
    "import-status": ("GET", lambda b: f"{API}/imports/{b.import_id}", None, "import_id"),
    # API, B's thing in the body
    "relate-b": ("POST", lambda b: f"{API}/relations",
                 lambda b: {"relation": "reports_to", "from_id": str(b.employee), "to_id": str(b.manager)},
                 "from_id"),
    "employee-in-b-unit": ("POST", lambda b: f"{API}/employees",
                           lambda b: {**employee_body(b), "org_unit_id": str(b.unit)}, "org_unit_id"),
    "employee-with-b-job": ("POST", lambda b: f"{API}/employees",
                            lambda b: {**employee_body(b), "job_type_id": str(b.job_type)}, "job_type_id"),
    "employee-under-b-boss": ("POST", lambda b: f"{API}/employees",
                              lambda b: {**employee_body(b), "manager_email": "b-boss@example.com"},
                              "manager_email"),
    "unit-under-b-unit": ("POST", lambda b: f"{API}/org-units",
                          lambda b: {"name": "Mine", "parent_id": str(b.unit)}, "parent_id"),
    # pages
    "page-employee": ("GET", lambda b: f"/employment/employees/{b.employee}", None, None),
    "page-save-employee": ("POST", lambda b: f"/employment/employees/{b.employee}",
                           lambda b: {"name": "Mine", "work_email": "mine@example.com", "status": "active"},
                           None),
    "page-delete-employee": ("POST", lambda b: f"/employment/employees/{b.employee}/delete", None, None),
    "page-delete-job-type": ("POST", lambda b: f"/employment/job-types/{b.job_type}/delete", None, None),
    "page-unit": ("GET", lambda b: f"/employment/org-units/{b.unit}", None, None),
    "page-save-unit": ("POST", lambda b: f"/employment/org-units/{b.unit}", lambda b: {"name": "Mine"}, None),
    "page-delete-unit": ("POST", lambda b: f"/employment/org-units/{b.unit}/delete", None, None),
    "page-chart": ("GET", lambda b: f"/employment/org-units/{b.unit}/chart", None, None),
    "page-import": ("GET", lambda b: f"/employment/imports/{b.import_id}", None, None),
    "page-employee-in-b-unit": ("POST", lambda b: "/employment/employees",
                                lambda b: {"name": "Mine", "work_email": "mine2@example.com",
                                           "status": "active", "org_unit_id": str(b.unit)}, None),
    "page-unit-under-b-unit": ("POST", lambda b: "/employment/org-units",
                               lambda b: {"name": "Mine", "parent_id": str(b.unit)}, None),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_another_tenants_things_are_not_found_and_unchanged(plane: Plane, a: Org, b: B, case: str) -> None:
    method, path, body, field = CASES[case]
    url = path(b)
    client = plane.client()
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    page = not url.startswith("/api/")
    response = tenants.call_as(client, plane.app, method, url, a.tokens["owner"],
                               json=None if page or body is None else body(b),
                               form=body(b) if page and body is not None else None)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    if not page:
        assert response.json["field"] == field
    assert "B Worker" not in response.get_data(as_text=True)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []


def test_lists_show_only_the_callers_tenant(plane: Plane, a: Org, b: B) -> None:
    client = plane.client()
    for url in (f"{API}/employees", f"{API}/job-types", f"{API}/org-units", f"{API}/imports",
                "/employment/employees", "/employment/structure", "/employment/imports",
                "/employment/employees?q=b-worker"):
        text = tenants.call_as(client, plane.app, "GET", url, a.tokens["owner"]).get_data(as_text=True)
        leaked = [s for s in ("B Worker", "b-boss@example.com", "B's unit", "B's job", "b.csv", str(b.unit))
                  if s in text]
        assert not leaked, (url, leaked)


def test_a_file_naming_another_tenants_people_and_units_stays_in_its_tenant(plane: Plane, a: Org,
                                                                            b: B) -> None:
    # Run in this process: the rows name B's unit and B's manager, which A does not have.
    data = (b"name,work_email,org_unit,manager_email\n"
            b"A One,a-one@example.com,B's unit,\nA Two,a-two@example.com,,b-boss@example.com\n")
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    with plane.provider.tenant(a.id) as db:
        pending = imports.record_import(db, a.id, "a.csv", data, created_by=None, correlation_id=None)
        db.commit()
    assert imports.run(plane.provider, a.id, pending.id).status == "completed"
    with plane.provider.tenant(a.id) as db:
        done = queries.import_job(db, pending.id)
    assert (done.created, done.failed, [(p.line, p.field) for p in done.problems.items]) == (
        1, 1, [(2, "org_unit"), (3, "manager_email")])
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []
