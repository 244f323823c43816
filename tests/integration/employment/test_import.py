"""Bulk import by a real ``employment`` worker: a 5,000-row file with 20 bad rows imports the
4,980 good ones and names the 20 bad lines; importing it again changes nothing; a file
that is not a CSV of known columns is refused at the upload and nothing is recorded."""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from domain.employment import queries
from domain.employment.models import Employee, ImportJob
from domain.graph import queries as graph_queries
from tests.integration.employment.conftest import API, Org, Plane, edge_count
from tests.integration.employment.importing import (
    PeopleFile,
    finished,
    people_file,
    post_file,
    prepare,
    status,
    upload,
)
from tests.integration.web.helpers import assert_refused
from tests.support import processes, tenants


@pytest.fixture(scope="module")
def worker(start_worker: Callable[..., processes.Process],
           relay: processes.Process) -> Iterator[processes.Process]:
    """The module's ``employment`` worker (the relay runs beside it)."""
    process = start_worker("employment-import")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def org(plane: Plane, make_org) -> Org:  # type: ignore[no-untyped-def]
    """An organisation with the job type and unit the files name."""
    made: Org = make_org()
    prepare(plane.provider, made)
    return made


@pytest.fixture(scope="module")
def people() -> PeopleFile:
    """5,000 rows, 20 of them bad."""
    return people_file()


@pytest.fixture(scope="module")
def api(plane: Plane) -> FlaskClient:
    """A test client shared by the module."""
    return plane.client()


def _people_in_db(plane: Plane, org: Org) -> list[str]:
    with plane.provider.tenant(org.id) as db:
        return list(db.scalars(select(Employee.work_email).order_by(Employee.work_email)))


def _kept(prints: dict[str, str]) -> dict[str, str]:
    """What an import may change: the people, the structure and the graph (not its own records)."""
    return {k: v for k, v in prints.items()
            if k.rsplit(".", 1)[-1] in ("employees", "job_types", "org_units", "relation_edges")}


def test_good_rows_are_imported_and_bad_lines_reported(api: FlaskClient, plane: Plane, org: Org,
                                                       people: PeopleFile, worker: processes.Process) -> None:
    accepted = upload(api, org, people.data)
    assert accepted["rows_total"] == 5_000 and accepted["status_url"].endswith(accepted["id"])
    done = finished(api, org, accepted["id"])
    assert done["status"] == "completed", done
    counts = {k: done[k] for k in ("created", "updated", "unchanged", "failed", "edges", "problems_total")}
    assert counts == {"created": 4_980, "updated": 0, "unchanged": 0, "failed": 20, "edges": people.managed,
                      "problems_total": 20}
    assert {p["line"]: p["field"] for p in done["problems"]} == people.problems
    assert all(p["reason"] for p in done["problems"])
    assert _people_in_db(plane, org) == sorted(people.emails)
    assert edge_count(plane.provider, org.id) == people.managed == 4_979
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        top = queries.ids_by_email(db, [people.emails[0]])[people.emails[0]]
        assert len(graph_queries.subordinates(graph_db, org.id, top)) == 4_979  # one tree, every good row


def test_importing_the_same_file_again_changes_nothing(api: FlaskClient, plane: Plane, org: Org,
                                                      people: PeopleFile, worker: processes.Process) -> None:
    if edge_count(plane.provider, org.id) == 0:  # run alone: the first import first
        finished(api, org, upload(api, org, people.data)["id"])
    before = _kept(tenants.tenant_fingerprint(plane.provider, org.id))
    done = finished(api, org, upload(api, org, people.data, name="again.csv")["id"])
    counts = {k: done[k] for k in ("created", "updated", "unchanged", "failed", "edges", "problems_total")}
    assert counts == {"created": 0, "updated": 0, "unchanged": 4_980, "failed": 20, "edges": people.managed,
                      "problems_total": 20}
    assert _kept(tenants.tenant_fingerprint(plane.provider, org.id)) == before


def test_the_import_page_follows_the_run(plane: Plane, org: Org, worker: processes.Process) -> None:
    small = people_file(rows=40, bad=2, seed=5)
    client = plane.client()
    response = tenants.call_as(client, plane.app, "POST", "/employment/imports", org.tokens["hr_manager"],
                               form={"file": (io.BytesIO(small.data), "small.csv")})
    assert response.status_code == 303
    page_url = response.headers["Location"]
    import_id = page_url.rstrip("/").rsplit("/", 1)[1]
    done = finished(plane.client(), org, import_id)
    assert (done["created"], done["failed"]) == (38, 2)
    shown = tenants.call_as(client, plane.app, "GET", page_url, org.tokens["hr_manager"])
    page = shown.get_data(as_text=True)
    assert 'data-status="completed"' in page and 'http-equiv="refresh"' not in page
    for line in small.problems:
        assert f"<td>{line}</td>" in page


def test_managers_that_would_make_a_cycle_are_reported_by_line(api: FlaskClient, plane: Plane, org: Org,
                                                               worker: processes.Process) -> None:
    data = (b"name,work_email,manager_email\n"
            b"Ann,ann@cycle.example.com,ben@cycle.example.com\n"   # line 2: fine on its own
            b"Ben,ben@cycle.example.com,ann@cycle.example.com\n"   # line 3: closes Ann -> Ben -> Ann
            b"Cy,cy@cycle.example.com,ann@cycle.example.com\n"     # line 4: fine
            b"Di,di@cycle.example.com,nobody@cycle.example.com\n")  # line 5: no such manager
    done = finished(api, org, upload(api, org, data, name="cycle.csv")["id"])
    assert (done["status"], done["created"], done["failed"], done["edges"]) == ("completed", 4, 0, 2)
    assert [(p["line"], p["field"]) for p in done["problems"]] == [(3, "manager_email"), (5, "manager_email")]
    assert "report to someone who reports to them" in done["problems"][0]["reason"]
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        ids = queries.ids_by_email(db, ["ann@cycle.example.com", "ben@cycle.example.com",
                                        "cy@cycle.example.com"])
        managers = graph_queries.targets(graph_db, org.id, "reports_to", list(ids.values()))
    assert managers == {ids["ann@cycle.example.com"]: ids["ben@cycle.example.com"],
                        ids["cy@cycle.example.com"]: ids["ann@cycle.example.com"]}


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    "not-utf8": ("name,work_email\nJosé,jose@example.com\n".encode("latin-1"), "UTF-8"),
    "empty": (b"", "empty"),
    "header-only": (b"name,work_email\n\n", "no employees"),
    "unknown-column": (b"name,work_email,salary\nA,a@example.com,1\n", "salary"),
    "missing-column": (b"name,job_type\nA,Engineer\n", "work_email"),
    "repeated-column": (b"name,work_email,name\nA,a@example.com,B\n", "twice"),
    "broken-quotes": (b'name,work_email\n"A,a@example.com\n', "CSV"),
    "a-column-named-thousands-of-times": (b"work_email" + b",name" * 3_000 + b"\n", "'name' appears twice"),
    "a-line-of-commas": (b"name,work_email\nA,a@example.com" + b"," * 20_000 + b"\n", "line 2 is longer"),
    "lines-past-the-limit": (b"name,work_email\nA,a@example.com\n" + b"\r\n" * 200_000, "200,000 lines"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_file_that_is_not_a_csv_of_known_columns_is_refused_at_the_upload(
        api: FlaskClient, plane: Plane, org: Org, case: str) -> None:
    data, said = BAD_FILES[case]
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    refused = assert_refused(post_file(api, org, data), 422, "file")
    assert said in refused["reason"]
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []


def test_a_file_name_keeps_no_control_characters(api: FlaskClient, make_org) -> None:  # type: ignore[no-untyped-def]
    org: Org = make_org()  # its own: a worker may run this import, and the module's org counts its people
    accepted = upload(api, org, b"name,work_email\nAda,ada@example.com\n", name="peo\x00ple\x07.csv")
    assert status(api, org, accepted["id"])["filename"] == "people.csv"


def test_uploads_without_a_file_or_too_big_are_refused(api: FlaskClient, plane: Plane, org: Org) -> None:
    with plane.provider.tenant(org.id) as db:
        jobs = db.scalar(select(func.count()).select_from(ImportJob))
    empty = api.post(f"{API}/imports", data={}, content_type="multipart/form-data", headers=org.auth())
    assert_refused(empty, 422, "file")
    assert_refused(api.post(f"{API}/imports", json={"file": "x"}, headers=org.auth()), 415, "Content-Type")
    too_big = b"name,work_email\n" + b"x" * (11 * 1024 * 1024)
    assert_refused(post_file(api, org, too_big), 413, "body")
    assert_refused(post_file(api, org, b"name,work_email\n", role="employee"), 403, None)
    with plane.provider.tenant(org.id) as db:
        assert db.scalar(select(func.count()).select_from(ImportJob)) == jobs


class CountedBody(io.BytesIO):
    """A request body that counts what the app read of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.taken += len(line)
        return line


# (path, the token's role or None for no token, the answer): each before the body is read.
NOT_ALLOWED_TO_UPLOAD = {
    "page, signed out": ("/employment/imports", None, 302),
    "page, an employee": ("/employment/imports", "employee", 403),
    "api, no token": (f"{API}/imports", None, 401),
    "api, an employee": (f"{API}/imports", "employee", 403),
}


@pytest.mark.parametrize("case", list(NOT_ALLOWED_TO_UPLOAD))
def test_an_upload_nobody_may_send_is_refused_before_its_body_is_read(plane: Plane, org: Org,
                                                                     case: str) -> None:
    path, role, status = NOT_ALLOWED_TO_UPLOAD[case]
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n")
    data = head.encode() + b"x" * (8 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    body = CountedBody(data)
    client = plane.client()
    headers = {}
    if role is not None and path.startswith("/api/"):
        headers = {"Authorization": f"Bearer {org.tokens[role]}"}
    elif role is not None:
        client.set_cookie(plane.app.config["JWT_ACCESS_COOKIE_NAME"], org.tokens[role])
    response = client.post(path, input_stream=body, content_length=len(data), headers=headers,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert body.taken == 0


def _person(plane: Plane, org: Org, email: str) -> tuple[Any, ...]:
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        view = queries.employee(db, queries.ids_by_email(db, [email])[email])
        manager = graph_queries.targets(graph_db, org.id, "reports_to", [view.id]).get(view.id)
    return (view.name, view.job_type, view.org_unit, str(view.start_date), str(view.end_date), view.status,
            manager)


def test_a_file_without_some_columns_keeps_what_employees_have_there(
        api: FlaskClient, plane: Plane, org: Org, worker: processes.Process) -> None:
    ann, ben = "ann@columns.example.com", "ben@columns.example.com"
    full = ("name,work_email,job_type,org_unit,start_date,end_date,status,manager_email\n"
            f"Ben,{ben},Engineer,Platform,2019-01-01,,active,\n"
            f"Ann,{ann},Engineer,Platform,2020-01-01,2030-12-31,on_leave,{ben}\n").encode()
    assert finished(api, org, upload(api, org, full, name="full.csv")["id"])["created"] == 2
    with plane.provider.tenant(org.id) as db:
        ben_id = queries.ids_by_email(db, [ben])[ben]
    assert _person(plane, org, ben)[-1] is None
    assert _person(plane, org, ann) == ("Ann", "Engineer", "Platform", "2020-01-01", "2030-12-31", "on_leave",
                                        ben_id)
    # Names only: Ann's new name is all that changes; Ben is unchanged.
    names = f"name,work_email\nAnn Smith,{ann}\nBen,{ben}\n".encode()
    done = finished(api, org, upload(api, org, names, name="names.csv")["id"])
    assert (done["status"], done["created"], done["updated"], done["unchanged"]) == ("completed", 0, 1, 1)
    assert _person(plane, org, ann) == ("Ann Smith", "Engineer", "Platform", "2020-01-01", "2030-12-31",
                                        "on_leave", ben_id)
    # An empty cell of a column the file has still clears the field (as before); the rest is kept.
    cleared = f"name,work_email,job_type,end_date\nAnn Smith,{ann},,\n".encode()
    assert finished(api, org, upload(api, org, cleared, name="cleared.csv")["id"])["updated"] == 1
    assert _person(plane, org, ann) == ("Ann Smith", None, "Platform", "2020-01-01", "None", "on_leave",
                                        ben_id)
    # One date alone is checked against the other date the employee keeps.
    early = f"name,work_email,end_date\nBen,{ben},2018-06-30\n".encode()
    done = finished(api, org, upload(api, org, early, name="early.csv")["id"])
    assert (done["updated"], done["failed"]) == (0, 1)
    assert [(p["line"], p["field"]) for p in done["problems"]] == [(2, "end_date")]
    assert "2019-01-01" in done["problems"][0]["reason"]
    assert _person(plane, org, ben)[3:5] == ("2019-01-01", "None")
