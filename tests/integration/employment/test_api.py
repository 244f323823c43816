"""The employment API: employees, job types, org units and relations, end to end through
the app on real PostgreSQL; every bad input is a 4xx naming its field, and a refused
request writes nothing (the tenant's fingerprint, the graph included, is unchanged)."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from domain.employment.models import Employee
from domain.messaging.tables import outbox
from tests.integration.employment.conftest import API, Org, Plane, add_people, edge_count
from tests.integration.web.helpers import assert_refused
from tests.support import tenants


@pytest.fixture(scope="module")
def org(make_org) -> Org:  # type: ignore[no-untyped-def]
    """The module's organisation."""
    return make_org()


@pytest.fixture(scope="module")
def api(plane: Plane) -> FlaskClient:
    """A test client shared by the module."""
    return plane.client()


@pytest.fixture(scope="module")
def setup(api: FlaskClient, org: Org) -> dict[str, str]:
    """A job type, a top unit and a sub-unit, a manager in the sub-unit and someone else."""
    job = api.post(f"{API}/job-types", json={"name": "Engineer"}, headers=org.auth()).json
    top = api.post(f"{API}/org-units", json={"name": "Head office"}, headers=org.auth()).json
    sub = api.post(f"{API}/org-units", json={"name": "Platform", "parent_id": top["id"]},
                   headers=org.auth()).json
    boss = api.post(f"{API}/employees", json={"name": "Grace Boss", "work_email": "grace@example.com",
                                              "org_unit_id": sub["id"]}, headers=org.auth()).json
    other = api.post(f"{API}/employees", json={"name": "Otto Other", "work_email": "otto@example.com"},
                     headers=org.auth()).json
    return {"job": job["id"], "top": top["id"], "sub": sub["id"], "boss": boss["id"], "other": other["id"]}


def _employees(plane: Plane, org: Org) -> int:
    with plane.provider.tenant(org.id) as db:
        return db.scalar(select(func.count()).select_from(Employee)) or 0


def test_an_employee_is_added_read_changed_listed_and_deleted(api: FlaskClient, plane: Plane, org: Org,
                                                              setup: dict[str, str]) -> None:
    body = {"name": "Ada Lovelace", "work_email": "Ada.Lovelace@Example.com", "job_type_id": setup["job"],
            "org_unit_id": setup["sub"], "start_date": "2024-01-15", "status": "active",
            "manager_email": "GRACE@example.com"}
    created = api.post(f"{API}/employees", json=body, headers=org.auth())
    assert created.status_code == 201, created.json
    ada = created.json
    assert created.headers["Location"].endswith(f"/employees/{ada['id']}")
    assert (ada["work_email"], ada["job_type"], ada["org_unit"]) == ("ada.lovelace@example.com", "Engineer",
                                                                    "Platform")
    chain = api.get(f"{API}/employees/{ada['id']}/chain", headers=org.auth("employee")).json["items"]
    assert [c["person"]["id"] for c in chain] == [setup["boss"]]
    assert api.get(f"{API}/employees/{ada['id']}", headers=org.auth("employee")).json == ada

    change = {**body, "name": "Ada King", "status": "on_leave", "end_date": "2030-01-01", "manager_email": ""}
    changed = api.put(f"{API}/employees/{ada['id']}", json=change, headers=org.auth())
    assert changed.status_code == 200
    assert (changed.json["name"], changed.json["status"], changed.json["end_date"]) == (
        "Ada King", "on_leave", "2030-01-01")
    assert api.get(f"{API}/employees/{ada['id']}/chain", headers=org.auth()).json["items"] == []

    found = api.get(f"{API}/employees", query_string={"q": "ada k"}, headers=org.auth("employee")).json
    assert [e["id"] for e in found["items"]] == [ada["id"]] and found["total"] == 1

    assert api.delete(f"{API}/employees/{ada['id']}", headers=org.auth()).status_code == 204
    assert_refused(api.get(f"{API}/employees/{ada['id']}", headers=org.auth()), 404, "employee_id")
    with plane.provider.tenant(org.id) as db:  # the event is recorded with the delete
        events = db.execute(select(outbox.c.type, outbox.c.payload).where(
            outbox.c.type == "employment.EmployeeDeleted")).all()
    assert [(t, p["employee_id"]) for t, p in events] == [("employment.EmployeeDeleted", ada["id"])]


def test_the_list_is_searched_and_paged_by_name(api: FlaskClient, plane: Plane, org: Org) -> None:
    tag = uuid.uuid4().hex[:8]
    add_people(plane.provider, org.id, 23, unit_id=None, prefix=f"paged{tag}")
    first = api.get(f"{API}/employees", query_string={"q": f"paged{tag}", "per_page": 10},
                    headers=org.auth("employee")).json
    third = api.get(f"{API}/employees", query_string={"q": f"PAGED{tag}", "per_page": 10, "page": 3},
                    headers=org.auth("employee")).json
    assert (first["total"], first["pages"], len(first["items"]), len(third["items"])) == (23, 3, 10, 3)
    names = [e["name"] for e in first["items"]] + [e["name"] for e in third["items"]]
    assert names == sorted(names)
    assert third["items"][-1]["name"].endswith("00022")
    for query, field in [({"page": "0"}, "page"), ({"per_page": "500"}, "per_page"),
                         ({"q": "a\x00b"}, "q"), ({"org_unit_id": "nope"}, "org_unit_id"),
                         ({"sort": "name"}, "sort")]:
        assert_refused(api.get(f"{API}/employees", query_string=query, headers=org.auth()), 422, field)


def _valid(setup: dict[str, str]) -> dict[str, Any]:
    return {"name": "New Person", "work_email": f"new-{uuid.uuid4().hex[:8]}@example.com",
            "job_type_id": setup["job"], "org_unit_id": setup["top"]}


BAD_EMPLOYEES: dict[str, tuple[dict[str, Any], int, str]] = {
    "no-name": ({"name": None}, 422, "name"),
    "blank-name": ({"name": "   "}, 422, "name"),
    "control-in-name": ({"name": "Ada\x00"}, 422, "name"),
    "long-name": ({"name": "x" * 201}, 422, "name"),
    "bad-email": ({"work_email": "not an email"}, 422, "work_email"),
    "taken-email": ({"work_email": "GRACE@example.com"}, 409, "work_email"),
    "bad-status": ({"status": "retired"}, 422, "status"),
    "bad-date": ({"start_date": "15/01/2024"}, 422, "start_date"),
    "ends-before-start": ({"start_date": "2024-02-01", "end_date": "2024-01-31"}, 422, "end_date"),
    "job-type-not-a-uuid": ({"job_type_id": "engineer"}, 422, "job_type_id"),
    "unknown-job-type": ({"job_type_id": str(uuid.uuid4())}, 404, "job_type_id"),
    "unknown-org-unit": ({"org_unit_id": str(uuid.uuid4())}, 404, "org_unit_id"),
    "unknown-manager": ({"manager_email": "nobody@example.com"}, 404, "manager_email"),
    "bad-manager-email": ({"manager_email": "nobody"}, 422, "manager_email"),
    "unknown-field": ({"salary": 100}, 422, "salary"),
}


@pytest.mark.parametrize("case", list(BAD_EMPLOYEES), ids=list(BAD_EMPLOYEES))
def test_a_bad_employee_is_refused_naming_the_field_and_nothing_is_written(
        api: FlaskClient, plane: Plane, org: Org, setup: dict[str, str], case: str) -> None:
    change, status, field = BAD_EMPLOYEES[case]
    body = {k: v for k, v in {**_valid(setup), **change}.items() if v is not None}
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    assert_refused(api.post(f"{API}/employees", json=body, headers=org.auth()), status, field)
    # The same body on another employee.
    assert_refused(api.put(f"{API}/employees/{setup['other']}", json=body, headers=org.auth()), status, field)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []


def test_an_employee_cannot_report_to_themselves(api: FlaskClient, org: Org, setup: dict[str, str]) -> None:
    body = {**_valid(setup), "work_email": "self@example.com", "manager_email": "SELF@example.com"}
    assert_refused(api.post(f"{API}/employees", json=body, headers=org.auth()), 422, "manager_email")


def test_bodies_that_are_not_json_objects_are_refused(api: FlaskClient, org: Org) -> None:
    assert_refused(api.post(f"{API}/employees", data="name=x", headers=org.auth()), 415, "Content-Type")
    assert_refused(api.post(f"{API}/employees", data="{", content_type="application/json",
                            headers=org.auth()), 400, "body")
    assert_refused(api.post(f"{API}/employees", json=[1], headers=org.auth()), 422, "body")


def test_readers_may_not_write(api: FlaskClient, org: Org, setup: dict[str, str]) -> None:
    for method, path, body in [("POST", "/employees", _valid(setup)), ("POST", "/job-types", {"name": "X"}),
                               ("DELETE", f"/employees/{setup['boss']}", None)]:
        response = api.open(f"{API}{path}", method=method, json=body, headers=org.auth("employee"))
        assert_refused(response, 403, None)
    assert api.get(f"{API}/employees/{setup['boss']}", headers=org.auth("employee")).status_code == 200


def test_job_types_are_named_once_and_kept_while_held(api: FlaskClient, plane: Plane, org: Org,
                                                     setup: dict[str, str]) -> None:
    made = api.post(f"{API}/job-types", json={"name": "Nurse"}, headers=org.auth())
    assert made.status_code == 201 and made.json["employees"] == 0
    assert_refused(api.post(f"{API}/job-types", json={"name": " nurse "}, headers=org.auth()), 409, "name")
    assert_refused(api.post(f"{API}/job-types", json={"name": ""}, headers=org.auth()), 422, "name")
    rename = api.put(f"{API}/job-types/{made.json['id']}", json={"name": "ENGINEER"}, headers=org.auth())
    assert_refused(rename, 409, "name")
    renamed = api.put(f"{API}/job-types/{made.json['id']}", json={"name": "Head nurse"}, headers=org.auth())
    assert renamed.json["name"] == "Head nurse"
    held = api.post(f"{API}/employees", json={**_valid(setup), "job_type_id": made.json["id"]},
                    headers=org.auth()).json
    assert_refused(api.delete(f"{API}/job-types/{made.json['id']}", headers=org.auth()), 409, "job_type_id")
    api.delete(f"{API}/employees/{held['id']}", headers=org.auth())
    assert api.delete(f"{API}/job-types/{made.json['id']}", headers=org.auth()).status_code == 204
    listed = api.get(f"{API}/job-types", headers=org.auth()).json["items"]
    assert made.json["id"] not in {j["id"] for j in listed}


def test_org_units_form_a_tree_without_cycles(api: FlaskClient, plane: Plane, org: Org) -> None:
    def unit(name: str, parent: str | None = None) -> dict[str, Any]:
        made = api.post(f"{API}/org-units", json={"name": name, "parent_id": parent}, headers=org.auth())
        assert made.status_code == 201, made.json
        return made.json  # type: ignore[no-any-return]

    root = unit(f"Region {uuid.uuid4().hex[:6]}")
    north = unit("North", root["id"])
    city = unit("City", north["id"])
    assert (city["path"], city["depth"]) == ([root["name"], "North", "City"], 2)
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    for target in (city["id"], north["id"]):  # under its own sub-unit, or under itself
        response = api.put(f"{API}/org-units/{north['id']}", json={"name": "North", "parent_id": target},
                           headers=org.auth())
        assert_refused(response, 409, "parent_id")
    assert_refused(api.post(f"{API}/org-units", json={"name": "north", "parent_id": root["id"]},
                            headers=org.auth()), 409, "name")
    assert_refused(api.post(f"{API}/org-units", json={"name": "X", "parent_id": str(uuid.uuid4())},
                            headers=org.auth()), 404, "parent_id")
    assert_refused(api.delete(f"{API}/org-units/{north['id']}", headers=org.auth()), 409, "org_unit_id")
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []
    moved = api.put(f"{API}/org-units/{city['id']}", json={"name": "Capital", "parent_id": root["id"]},
                    headers=org.auth())
    assert (moved.status_code, moved.json["path"]) == (200, [root["name"], "Capital"])
    assert api.delete(f"{API}/org-units/{north['id']}", headers=org.auth()).status_code == 204
    listed = [u["id"] for u in api.get(f"{API}/org-units", headers=org.auth("employee")).json["items"]]
    assert listed.index(root["id"]) < listed.index(city["id"]) and north["id"] not in listed


def test_relations_are_written_listed_and_removed(api: FlaskClient, plane: Plane, org: Org,
                                                  setup: dict[str, str]) -> None:
    mentor, mentee = (p for p, _ in add_people(plane.provider, org.id, 2, unit_id=None, prefix="mentor"))
    edges = edge_count(plane.provider, org.id)
    body = {"relation": "mentor_of", "from_id": str(mentor), "to_id": str(mentee)}
    assert api.post(f"{API}/relations", json=body, headers=org.auth()).status_code == 201
    assert api.post(f"{API}/relations", json=body, headers=org.auth()).status_code == 200  # no second edge
    listed = api.get(f"{API}/employees/{mentee}/relations", headers=org.auth("employee")).json["items"]
    assert [(r["relation"], r["from_id"], r["other"]["id"]) for r in listed] == [
        ("mentor_of", str(mentor), str(mentor))]
    assert edge_count(plane.provider, org.id) == edges + 1
    assert_refused(api.post(f"{API}/relations", json={**body, "relation": "likes"}, headers=org.auth()),
                   422, "relation")
    reports = {"relation": "reports_to", "from_id": str(mentee), "to_id": setup["boss"]}
    assert api.post(f"{API}/relations", json=reports, headers=org.auth()).status_code == 201
    assert_refused(api.post(f"{API}/relations", json={**reports, "to_id": str(mentor)}, headers=org.auth()),
                   409, "from_id")  # one manager at a time
    assert api.delete(f"{API}/relations/mentor_of/{mentor}/{mentee}", headers=org.auth()).status_code == 204
    assert_refused(api.delete(f"{API}/relations/mentor_of/{mentor}/{mentee}", headers=org.auth()), 404,
                   "relation")
    assert_refused(api.delete(f"{API}/relations/likes/{mentor}/{mentee}", headers=org.auth()), 404,
                   "relation")
    assert edge_count(plane.provider, org.id) == edges + 1
