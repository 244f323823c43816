"""Employment writes that race, through the API on real PostgreSQL: each side is held in an
open transaction until the other is seen waiting on a lock (pg_stat_activity), then let go.

- An employee given a job type or an org unit whose deletion is under way: once the delete
  commits the answer is 404 naming the field, not a foreign key violation (500).
- Two requests making two people each other's manager at once: one is written, the other
  is refused as a cycle (409 naming manager_email), not a deadlock (500).
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from domain.db.provider import write_lock_key
from domain.employment import queries, structure
from domain.graph import queries as graph_queries
from domain.tenancy.copying import connect
from tests.integration.employment.conftest import API, Org, Plane, add_people
from tests.integration.web.helpers import assert_refused
from tests.support.locks import backend_pid, blocked_by
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def org(make_org: Callable[[], Org]) -> Org:
    """The module's organisation."""
    return make_org()


def in_thread(plane: Plane, calls: dict[str, Callable[[Any], Any]]) -> tuple[list[threading.Thread],
                                                                            dict[str, Any]]:
    """Start one thread per call, each with a test client of its own; their answers by name."""
    answers: dict[str, Any] = {}

    def run(name: str, call: Callable[[Any], Any]) -> None:
        try:
            answers[name] = call(plane.client())
        except Exception as exc:  # noqa: BLE001 - a 500 raised in the app is the test's to show
            answers[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    return threads, answers


@pytest.mark.parametrize("field", ["job_type_id", "org_unit_id"])
def test_an_employee_given_what_is_being_deleted_is_not_found(plane: Plane, org: Org, field: str) -> None:
    tag = uuid.uuid4().hex[:6]
    with plane.provider.tenant(org.id) as db:
        job = structure.create_job_type(db, org.id, f"Doomed {tag}")
        unit = structure.create_org_unit(db, org.id, f"Doomed {tag}", None)
        db.commit()
    (person, email), = add_people(plane.provider, org.id, 1, unit_id=None, prefix=f"race-{tag}")
    body = {"name": "Someone", "work_email": email, "status": "active"}
    if field == "job_type_id":  # a new employee with the job type
        body.update(work_email=f"new-{tag}@example.com", job_type_id=str(job.id))
        call = lambda api: api.post(f"{API}/employees", json=body, headers=org.auth())  # noqa: E731
    else:  # someone moved to the unit
        body.update(org_unit_id=str(unit.id))
        call = lambda api: api.put(f"{API}/employees/{person}", json=body, headers=org.auth())  # noqa: E731
    with plane.provider.tenant(org.id) as deleting:
        if field == "job_type_id":
            structure.delete_job_type(deleting, job.id)
        else:
            structure.delete_org_unit(deleting, unit.id)
        pid, trial = backend_pid(deleting), plane.provider.url_of("trial")
        threads, answers = in_thread(plane, {"write": call})
        wait_for(lambda: blocked_by(trial, pid) == 1, message="the write to wait for the delete")
        deleting.commit()
    threads[0].join(30)
    assert_refused(answers["write"], 404, field)
    with plane.provider.tenant(org.id) as db:
        assert queries.employee(db, person).org_unit_id is None
        assert f"new-{tag}@example.com" not in queries.ids_by_email(db, [f"new-{tag}@example.com"])


def test_two_people_made_each_others_manager_at_once_make_no_deadlock(plane: Plane, org: Org) -> None:
    (x, x_email), (m, m_email) = add_people(plane.provider, org.id, 2, unit_id=None, prefix="mutual")

    def manage(person: uuid.UUID, email: str, manager_email: str) -> Callable[[Any], Any]:
        body = {"name": "Renamed", "work_email": email, "status": "active", "manager_email": manager_email}
        return lambda api: api.put(f"{API}/employees/{person}", json=body, headers=org.auth())

    # Both are held at the tenant's write gate (its lock taken here), each with what it
    # locked before its first write; then let go together.
    with connect(plane.provider.url_of("trial"), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (write_lock_key(org.id),))
        threads, answers = in_thread(plane, {"x": manage(x, x_email, m_email),
                                             "m": manage(m, m_email, x_email)})
        trial = plane.provider.url_of("trial")
        wait_for(lambda: blocked_by(trial, holder.info.backend_pid) == 2, message="both requests to wait")
        holder.execute("SELECT pg_advisory_unlock(%s)", (write_lock_key(org.id),))
    for thread in threads:
        thread.join(30)
    statuses = sorted(getattr(a, "status_code", repr(a)) for a in answers.values())
    assert statuses == [200, 409], answers
    refused = next(a for a in answers.values() if a.status_code == 409)
    assert "cycle" in assert_refused(refused, 409, "manager_email")["reason"]
    with plane.provider.management() as graph_db:
        assert len(graph_queries.targets(graph_db, org.id, "reports_to", [x, m])) == 1


@pytest.mark.parametrize("how", ["create", "rename"])
def test_two_job_types_named_alike_at_once_make_one(plane: Plane, org: Org, how: str) -> None:
    tag = uuid.uuid4().hex[:6]
    with plane.provider.tenant(org.id) as db:
        other = structure.create_job_type(db, org.id, f"Other {tag}")
        db.commit()
    if how == "create":
        call = lambda api: api.post(f"{API}/job-types", json={"name": f"nurse {tag}"},  # noqa: E731
                                    headers=org.auth())
    else:
        call = lambda api: api.put(f"{API}/job-types/{other.id}", json={"name": f"NURSE {tag}"},  # noqa: E731
                                   headers=org.auth())
    with plane.provider.tenant(org.id) as first:
        structure.create_job_type(first, org.id, f"Nurse {tag}")  # not committed yet
        pid, trial = backend_pid(first), plane.provider.url_of("trial")
        threads, answers = in_thread(plane, {"second": call})
        wait_for(lambda: blocked_by(trial, pid) == 1, message="the second writer to wait for the first")
        first.commit()
    threads[0].join(30)
    assert_refused(answers["second"], 409, "name")
    with plane.provider.tenant(org.id) as db:
        named = sorted(j.name for j in queries.job_types(db) if j.name.lower() == f"nurse {tag}")
    assert named == [f"Nurse {tag}"]
