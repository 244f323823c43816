"""Tenant isolation of the employment routes: tenant A's owner (every permission) aims each
route that names a thing at tenant B's employee, job type, org unit, relation or import
(in the URL or the body): the answer is 404 (naming the field, for the API) and nothing of
B changes. Pages are called as a browser calls them (cookie and CSRF token). What A creates
(a job type, an import uploaded through the API or the page and run by a real ``employment``
worker) belongs to A alone, even where it names B's things, and the forms offer A's choices
only."""
from __future__ import annotations

import html
import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from domain.employment import imports, queries, services, structure
from domain.employment.services import EmployeeFields
from domain.messaging import handling, outbox
from tests.integration.employment.conftest import API, Org, Plane
from tests.integration.employment.importing import finished, post_file
from tests.support import processes, tenants

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


@dataclass(frozen=True)
class Mine:
    """Things of A's own that A's owner changes to point at B's."""

    employee: uuid.UUID
    unit: uuid.UUID


@pytest.fixture(scope="module")
def mine(plane: Plane, a: Org) -> Mine:
    """An employee and a unit of A's."""
    with plane.provider.tenant(a.id) as db, plane.provider.management() as graph_db:
        unit = structure.create_org_unit(db, a.id, "A's own unit", None)
        person = services.create_employee(db, graph_db, a.id, EmployeeFields("A Own", "a-own@example.com"))
        graph_db.commit()
        db.commit()
    return Mine(person.id, unit.id)


def _my_employee(b: B, **changes: str) -> dict[str, Any]:
    return {"name": "A Own", "work_email": "a-own@example.com", "status": "active", **changes}


# Updates of A's own things naming B's in the body: (method, path, json or form, the field)
UPDATES: dict[str, tuple[str, Callable[[Mine], str], Callable[[B], Any], str | None]] = {
    "put-mine-into-b-unit": ("PUT", lambda m: f"{API}/employees/{m.employee}",
                             lambda b: _my_employee(b, org_unit_id=str(b.unit)), "org_unit_id"),
    "put-mine-with-b-job": ("PUT", lambda m: f"{API}/employees/{m.employee}",
                            lambda b: _my_employee(b, job_type_id=str(b.job_type)), "job_type_id"),
    "put-my-unit-under-b-unit": ("PUT", lambda m: f"{API}/org-units/{m.unit}",
                                 lambda b: {"name": "A's own unit", "parent_id": str(b.unit)}, "parent_id"),
    "page-save-mine-into-b-unit": ("POST", lambda m: f"/employment/employees/{m.employee}",
                                   lambda b: _my_employee(b, org_unit_id=str(b.unit)), None),
    "page-save-mine-with-b-job": ("POST", lambda m: f"/employment/employees/{m.employee}",
                                  lambda b: _my_employee(b, job_type_id=str(b.job_type)), None),
    "page-save-my-unit-under-b-unit": ("POST", lambda m: f"/employment/org-units/{m.unit}",
                                       lambda b: {"name": "A's own unit", "parent_id": str(b.unit)}, None),
}


@pytest.mark.parametrize("case", list(UPDATES), ids=list(UPDATES))
def test_an_update_naming_another_tenants_things_is_not_found_and_changes_nothing(
        plane: Plane, a: Org, b: B, mine: Mine, case: str) -> None:
    method, path, body, field = UPDATES[case]
    url = path(mine)
    client = plane.client()
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    mine_before = client.get(f"{API}/employees/{mine.employee}", headers=a.auth("owner")).json
    page = not url.startswith("/api/")
    response = tenants.call_as(client, plane.app, method, url, a.tokens["owner"],
                               json=None if page else body(b), form=body(b) if page else None)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    if not page:
        assert response.json["field"] == field
    assert not _leaks(response.get_data(as_text=True), b)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []
    assert client.get(f"{API}/employees/{mine.employee}", headers=a.auth("owner")).json == mine_before
    unit = client.get(f"{API}/org-units/{mine.unit}", headers=a.auth("owner")).json
    assert unit["parent_id"] is None


def test_lists_show_only_the_callers_tenant(plane: Plane, a: Org, b: B) -> None:
    client = plane.client()
    for url in (f"{API}/employees", f"{API}/job-types", f"{API}/org-units", f"{API}/imports",
                "/employment/employees", "/employment/structure", "/employment/imports",
                "/employment/employees?q=b-worker", "/employment/employees/new"):
        response = tenants.call_as(client, plane.app, "GET", url, a.tokens["owner"])
        assert response.status_code == 200, (url, response.status_code)
        leaked = _leaks(response.get_data(as_text=True), b)
        assert not leaked, (url, leaked)


def _leaks(text: str, b: B) -> list[str]:
    """What of B's the text shows: names (as JSON has them or as a page escapes them:
    B&#39;s unit), emails, the import's file name, ids."""
    secrets = ("B Worker", "B Boss", "b-boss@example.com", "b-worker@example.com", "B's unit", "B's job",
               "b.csv", str(b.unit), str(b.job_type), str(b.employee), str(b.manager), str(b.import_id))
    shown = text + html.unescape(text)
    return [s for s in secrets if s in shown]


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


# --- what A creates belongs to A alone ---------------------------------------------------

def _option_values(page: str, select: str) -> set[str]:
    """The values offered by the page's ``<select name=select>`` (the empty choice left out)."""
    found = re.search(rf'<select[^>]*name="{select}"[^>]*>(.*?)</select>', page, re.S)
    assert found, f"the page has a {select} choice"
    return set(re.findall(r'<option[^>]*value="([^"]+)"', found.group(1)))


def test_the_new_employee_form_offers_only_the_callers_job_types_and_units(plane: Plane, a: Org,
                                                                          b: B) -> None:
    tag = uuid.uuid4().hex[:6]
    with plane.provider.tenant(a.id) as db:
        job = structure.create_job_type(db, a.id, f"A's job {tag}")
        unit = structure.create_org_unit(db, a.id, f"A's unit {tag}", None)
        db.commit()
    response = tenants.call_as(plane.client(), plane.app, "GET", "/employment/employees/new",
                               a.tokens["owner"])
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    page = response.get_data(as_text=True)
    client = plane.client()
    jobs = {item["id"] for item in client.get(f"{API}/job-types", headers=a.auth("owner")).json["items"]}
    units = {item["id"] for item in client.get(f"{API}/org-units", headers=a.auth("owner")).json["items"]}
    assert str(job.id) in jobs and str(unit.id) in units
    assert (_option_values(page, "job_type_id"), _option_values(page, "org_unit_id")) == (jobs, units)
    assert f"A's job {tag}" in html.unescape(page) and f"A's unit {tag}" in html.unescape(page)
    assert not _leaks(page, b), _leaks(page, b)


@pytest.mark.parametrize("via", ["api", "page"])
def test_a_job_type_named_like_bs_is_created_in_the_callers_tenant_alone(
        plane: Plane, make_org: Callable[[], Org], b: B, via: str) -> None:
    # Its own tenant: the name it takes would show in A's lists, which must never show B's names.
    caller = make_org()
    name = "b's JOB"  # B's job type's name in other letters: taken in B, free in the caller's tenant
    client = plane.client()
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    if via == "api":
        response = tenants.call_as(client, plane.app, "POST", f"{API}/job-types", caller.tokens["owner"],
                                   json={"name": name})
        assert response.status_code == 201, response.get_data(as_text=True)[:300]
    else:  # a form ignores fields it does not have: B's ids beside the name change nothing
        response = tenants.call_as(client, plane.app, "POST", "/employment/job-types", caller.tokens["owner"],
                                   form={"name": name, "id": str(b.job_type), "tenant_id": str(b.org.id)})
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        assert response.headers["Location"].endswith("/employment/structure")
    listed = client.get(f"{API}/job-types", headers=caller.auth("owner")).json["items"]
    assert [(item["name"], item["employees"]) for item in listed] == [(name, 0)]
    created = listed[0]["id"]
    assert created != str(b.job_type)
    assert tenants.owners_of(plane.provider, "job_types", created, (caller.id, b.org.id)) == {caller.id}
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []


def test_a_job_type_body_naming_bs_ids_is_refused(plane: Plane, a: Org, b: B) -> None:
    client = plane.client()
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    mine = tenants.tenant_fingerprint(plane.provider, a.id)
    for extra in ({"id": str(b.job_type)}, {"tenant_id": str(b.org.id)}):
        response = tenants.call_as(client, plane.app, "POST", f"{API}/job-types", a.tokens["owner"],
                                   json={"name": "Smuggled", **extra})
        assert (response.status_code, response.json["field"]) == (422, next(iter(extra))), response.json
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []
    in_a = tenants.changed(mine, tenants.tenant_fingerprint(plane.provider, a.id))
    assert not [name for name in in_a if name.endswith(".job_types")], in_a
    names = [item["name"] for item in client.get(f"{API}/job-types", headers=a.auth("owner")).json["items"]]
    assert "Smuggled" not in names


@pytest.fixture(scope="module")
def worker(start_worker: Callable[..., processes.Process]) -> Iterator[processes.Process]:
    """The module's ``employment`` worker: it runs the imports uploaded here."""
    process = start_worker("employment-isolation")
    yield process
    process.stop()


# Every line names one of B's things; none of them exists in the caller's tenant.
NAMING_B = (b"name,work_email,job_type,org_unit,manager_email\n"
            b"A One,a-one@example.com,,B's unit,\n"           # line 2: B's unit: refused
            b"A Two,a-two@example.com,,,b-boss@example.com\n"  # line 3: B's manager: added, unmanaged
            b"A Three,a-three@example.com,B's job,,\n"         # line 4: B's job type: refused
            b"A Four,b-worker@example.com,,,\n")               # line 5: B's worker's email: a new person


@pytest.mark.parametrize("via", ["api", "page"])
def test_an_uploaded_file_naming_bs_things_is_imported_into_the_callers_tenant_alone(
        plane: Plane, make_org: Callable[[], Org], b: B, worker: processes.Process, via: str) -> None:
    # Through the route and the worker's task, not below them. Its own tenant: the import
    # adds people A's lists would show.
    caller = make_org()
    client = plane.client()
    before = tenants.tenant_fingerprint(plane.provider, b.org.id)
    if via == "api":
        response = post_file(client, caller, NAMING_B, "naming-b.csv", role="owner")
        assert response.status_code == 202, response.get_data(as_text=True)[:300]
        import_id = response.json["id"]
    else:
        response = tenants.call_as(client, plane.app, "POST", "/employment/imports", caller.tokens["owner"],
                                   form={"file": (io.BytesIO(NAMING_B), "naming-b.csv")})
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        import_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    assert tenants.owners_of(plane.provider, "import_jobs", import_id, (caller.id, b.org.id)) == {caller.id}
    done = finished(client, caller, import_id, timeout=60)
    assert (done["status"], done["created"], done["updated"], done["failed"], done["edges"]) == (
        "completed", 2, 0, 2, 0), done
    assert [(p["line"], p["field"]) for p in done["problems"]] == [
        (2, "org_unit"), (3, "manager_email"), (4, "job_type")]
    people = client.get(f"{API}/employees", headers=caller.auth("owner")).json["items"]
    assert sorted((p["work_email"], p["job_type_id"], p["org_unit_id"]) for p in people) == [
        ("a-two@example.com", None, None), ("b-worker@example.com", None, None)]
    for person in people:
        assert person["id"] not in (str(b.employee), str(b.manager))
        owners = tenants.owners_of(plane.provider, "employees", person["id"], (caller.id, b.org.id))
        assert owners == {caller.id}
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, b.org.id)) == []
    other = tenants.call_as(client, plane.app, "GET", f"{API}/imports/{import_id}", b.org.tokens["owner"])
    assert (other.status_code, other.json["field"]) == (404, "import_id")
