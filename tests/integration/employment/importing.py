"""Import files for the tests: employees with managers, and bad rows of every kind at known
lines; and following an import through the API."""
from __future__ import annotations

import csv
import io
import random
import uuid
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from domain.employment import structure
from domain.employment.models import ImportJob
from domain.employment.rows import COLUMNS
from tests.integration.employment.conftest import API, Org
from tests.support.waiting import wait_for

JOB_TYPE, UNIT = "Engineer", "Platform"

# (what is wrong, the column named, how to break a row)
DEFECTS: list[tuple[str, str, Any]] = [
    ("no name", "name", lambda row, seen: row.update(name="")),
    ("not an email", "work_email", lambda row, seen: row.update(work_email="not-an-email")),
    ("unknown job type", "job_type", lambda row, seen: row.update(job_type="Astronaut")),
    ("unknown unit", "org_unit", lambda row, seen: row.update(org_unit="Atlantis")),
    ("no such date", "start_date", lambda row, seen: row.update(start_date="2024-13-01")),
    ("ends before it starts", "end_date", lambda row, seen: row.update(start_date="2024-05-02",
                                                                      end_date="2024-05-01")),
    ("unknown status", "status", lambda row, seen: row.update(status="retired")),
    ("bad manager email", "manager_email", lambda row, seen: row.update(manager_email="boss@")),
    ("email of an earlier line", "work_email",
     lambda row, seen: row.update(work_email=seen[1]["work_email"])),
    ("control character", "name", lambda row, seen: row.update(name="Bell\x07Ringer")),
]


@dataclass(frozen=True)
class PeopleFile:
    """A generated file and what importing it must give."""

    data: bytes
    rows: int
    problems: dict[int, str]   # line -> the column its problem names
    managed: int               # valid rows with a manager (reports_to edges)
    emails: list[str]          # work emails of the valid rows


def people_file(rows: int = 5_000, bad: int = 20, seed: int = 11) -> PeopleFile:
    """``rows`` employees, ``bad`` of them broken (each in one way), the others reporting to
    an earlier valid row (except the first); no bad row is anyone's manager."""
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    bad_at = set(rng.sample(range(2, rows), bad))
    table: list[dict[str, str]] = []
    valid: list[int] = []
    problems: dict[int, str] = {}
    for i in range(rows):
        row = {"name": f"Person {i:05d}", "work_email": f"person-{i}-{tag}@example.com", "job_type": JOB_TYPE,
               "org_unit": UNIT, "start_date": "2020-01-01", "end_date": "", "status": "active",
               "manager_email": table[rng.choice(valid[-300:])]["work_email"] if valid else ""}
        if i in bad_at:
            _, column, breaks = DEFECTS[len(problems) % len(DEFECTS)]
            breaks(row, table)
            problems[i + 2] = column  # the header is line 1
        else:
            valid.append(i)
        table.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return PeopleFile(out.getvalue().encode(), rows, problems, len(valid) - 1,
                      [table[i]["work_email"] for i in valid])


def prepare(provider: DataProvider, org: Org) -> None:
    """The job type and the unit the file names."""
    with provider.tenant(org.id) as db:
        structure.create_job_type(db, org.id, JOB_TYPE)
        structure.create_org_unit(db, org.id, UNIT, None)
        db.commit()


def import_job(provider: DataProvider, org: Org, import_id: str) -> ImportJob:
    """The import's row, read from the tenant's database."""
    with provider.tenant(org.id) as db:
        job = db.get(ImportJob, uuid.UUID(import_id))
        assert job is not None
        return job


def multipart(data: bytes, name: str = "people.csv", field: str = "file") -> tuple[bytes, str]:
    """A multipart/form-data body holding one file, and its content type.

    Made here, in memory: the test client's own encoder spools a big body to a temporary
    file it never closes."""
    boundary = f"allotment-{uuid.uuid4().hex}"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: text/csv\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_file(api: FlaskClient, org: Org, data: bytes, name: str = "people.csv",
              role: str = "hr_manager") -> Any:
    """POST ``data`` as the import file; the answer."""
    body, content_type = multipart(data, name)
    return api.post(f"{API}/imports", data=body, content_type=content_type, headers=org.auth(role))


def upload(api: FlaskClient, org: Org, data: bytes, name: str = "people.csv") -> dict[str, Any]:
    """POST the file; the 202 answer."""
    response = post_file(api, org, data, name)
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    return response.json  # type: ignore[no-any-return]


def status(api: FlaskClient, org: Org, import_id: str, page: int = 1) -> dict[str, Any]:
    """Where the import stands."""
    response = api.get(f"{API}/imports/{import_id}", query_string={"page": page}, headers=org.auth())
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def finished(api: FlaskClient, org: Org, import_id: str, timeout: float = 180) -> dict[str, Any]:
    """Wait for the import to complete (or fail); its status then."""
    return wait_for(lambda: (s := status(api, org, import_id))["status"] in ("completed", "failed") and s,
                    timeout=timeout, interval=0.25, message=f"import {import_id} to finish")
