"""The worker is SIGKILLed in the middle of an import: a new worker resumes it after the
last committed batch (the relay sends the command again once its lease passed) and the
import completes exactly once: every row counted once, every employee and edge once. A
run resumed after the employees phase sets the reporting lines the first run applied the
employees for, even though the job type and unit the file names were renamed meanwhile."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from domain.employment import queries, structure
from domain.employment.imports import BATCH, CHECKPOINT_CLASS
from domain.employment.models import Employee, ImportJob, ImportProblem
from domain.messaging.tables import outbox
from domain.tenancy.copying import connect
from tests.integration.employment.conftest import Org, Plane, edge_count
from tests.integration.employment.importing import (
    JOB_TYPE,
    UNIT,
    finished,
    import_job,
    people_file,
    prepare,
    upload,
)
from tests.support import processes
from tests.support.waiting import wait_for

HOLD_AT = 2 * BATCH  # the checkpoint before the third batch of employees


def _waiting_at(conn: object, position: int) -> bool:
    row = conn.execute(  # type: ignore[attr-defined]
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s "
        "AND objid = %s AND objsubid = 2 AND database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())", (CHECKPOINT_CLASS, position)).fetchone()
    return bool(row and row[0])


def test_an_import_whose_worker_is_killed_completes_exactly_once(
        plane: Plane, make_org: Callable[[], Org], start_worker: Callable[..., processes.Process],
        relay: processes.Process) -> None:
    org = make_org()
    prepare(plane.provider, org)
    people = people_file(seed=23)
    api = plane.client()
    first = start_worker("employment-doomed")
    with connect(plane.provider.url_of("trial"), autocommit=True) as held:
        held.execute("SELECT pg_advisory_lock(%s, %s)", (CHECKPOINT_CLASS, HOLD_AT))
        import_id = upload(api, org, people.data)["id"]
        wait_for(lambda: _waiting_at(held, HOLD_AT), timeout=60, message="the import to reach the held batch")
        job = import_job(plane.provider, org, import_id)
        bad_before = sum(line < HOLD_AT + 2 for line in people.problems)  # lines 2.. hold rows 0..
        assert (job.status, job.phase, job.rows_done, job.created) == ("running", "employees", HOLD_AT,
                                                                      HOLD_AT - bad_before)
        first.kill()  # the worker and its pool child, mid-import, holding the import's lock
        held.execute("SELECT pg_advisory_unlock(%s, %s)", (CHECKPOINT_CLASS, HOLD_AT))
    second = start_worker("employment-survivor")
    done = finished(api, org, import_id)
    assert second.running()
    counts = {k: done[k] for k in ("status", "created", "updated", "unchanged", "failed", "edges",
                                   "problems_total", "rows_done", "managers_done")}
    assert counts == {"status": "completed", "created": 4_980, "updated": 0, "unchanged": 0, "failed": 20,
                      "edges": people.managed, "problems_total": 20, "rows_done": 5_000,
                      "managers_done": 5_000}
    with plane.provider.tenant(org.id) as db:
        emails = list(db.scalars(select(Employee.work_email)))
        problems = dict(db.execute(select(ImportProblem.line, ImportProblem.field)).all())
    assert sorted(emails) == sorted(people.emails) and len(set(emails)) == 4_980
    assert problems == people.problems
    assert edge_count(plane.provider, org.id) == people.managed

    def delivered() -> bool:  # the command ends confirmed at its origin, not dead
        with plane.provider.tenant(org.id) as db:
            row = db.execute(select(outbox.c.completed_at, outbox.c.dead_at).where(
                outbox.c.type == "employment.RunImport",
                outbox.c.payload["import_id"].astext == import_id)).one()
        assert row.dead_at is None
        return row.completed_at is not None

    wait_for(delivered, timeout=30, message="the RunImport command to be confirmed")
    with plane.provider.tenant(org.id) as db:
        assert db.scalar(select(func.count()).select_from(ImportJob)) == 1


def test_a_run_resumed_after_the_employees_sets_their_managers_whatever_was_renamed(
        plane: Plane, make_org: Callable[[], Org], start_worker: Callable[..., processes.Process],
        relay: processes.Process) -> None:
    org = make_org()
    prepare(plane.provider, org)
    people = people_file(rows=300, bad=4, seed=29)  # every row names the job type and the unit
    api = plane.client()
    first = start_worker("employment-doomed-managers")
    with connect(plane.provider.url_of("trial"), autocommit=True) as held:
        held.execute("SELECT pg_advisory_lock(%s, %s)", (CHECKPOINT_CLASS, people.rows))  # the first managers
        import_id = upload(api, org, people.data)["id"]
        wait_for(lambda: _waiting_at(held, people.rows), timeout=60, message="the employees to be applied")
        first.kill()
        job = import_job(plane.provider, org, import_id)
        assert (job.status, job.phase, job.created, job.failed, job.edges) == ("running", "managers", 296, 4,
                                                                              0)
        with plane.provider.tenant(org.id) as db:  # the names the file used are no longer anyone's
            job_type = next(j for j in queries.job_types(db) if j.name == JOB_TYPE)
            unit = next(u for u in queries.org_units(db) if u.name == UNIT)
            structure.rename_job_type(db, job_type.id, "Renamed job")
            structure.update_org_unit(db, unit.id, "Renamed unit", None)
            db.commit()
        held.execute("SELECT pg_advisory_unlock(%s, %s)", (CHECKPOINT_CLASS, people.rows))
    start_worker("employment-survivor-managers")
    done = finished(api, org, import_id)
    counts = {k: done[k] for k in ("status", "created", "failed", "edges", "problems_total")}
    assert counts == {"status": "completed", "created": 296, "failed": 4, "edges": people.managed,
                      "problems_total": 4}
    assert edge_count(plane.provider, org.id) == people.managed
