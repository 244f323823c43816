"""An import whose run kills its worker every time (a crash decoding the file, the
out-of-memory killer) comes back after each death, Celery setting no limit. Past
``MAX_REDELIVERIES`` the import task gives the delivery up unrun and records why on the
command's outbox row; the relay's later copy runs it as usual and completes the import."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from sqlalchemy import select

from domain.employment.imports import CHECKPOINT_CLASS
from domain.employment.models import Employee
from domain.messaging.tables import outbox
from domain.tenancy.copying import connect
from tests.integration.employment.conftest import SETTINGS, Org
from tests.integration.employment.importing import import_job, people_file, prepare, upload
from tests.integration.messaging.helpers import broker_idle, is_overdue, resent_ids, sweep_once
from tests.support import processes, tenants
from tests.support.planes import OwnPlane, own_plane, own_redis
from tests.support.services import Services
from tests.support.waiting import wait_for
from workers.redelivery import MAX_REDELIVERIES

HOLD_AT = 0  # every run waits before its first batch of employees
KILLED_RUNS = MAX_REDELIVERIES + 1  # the first delivery, then each redelivery allowed


@pytest.fixture
def own(services: Services, tmp_path: Path) -> Iterator[OwnPlane]:
    """A stack and Redis server of this test's own: its worker meets no other test's messages,
    and no relay runs but the sweeps the test makes."""
    with own_redis(tmp_path / "redis") as server, \
            own_plane(services, server, tmp_path / "var", **SETTINGS) as plane:
        yield plane


def _org(plane: OwnPlane) -> Org:
    tenant = tenants.create_tenant(plane.provider, ("hr_manager",), prefix="emp")
    token = tenants.access_token(plane.app.test_client(), tenant.member("hr_manager"))
    return Org(tenant, {"hr_manager": token})


def _waiting(conn: psycopg.Connection[Any]) -> int:
    """Runs waiting at the held checkpoint (a killed run's backend keeps waiting there)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s "
        "AND objid = %s AND objsubid = 2 AND database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())", (CHECKPOINT_CLASS, HOLD_AT)).fetchone()
    return int(row[0]) if row else 0


def _command(plane: OwnPlane, org: Org, import_id: str) -> Any:
    """The import's RunImport outbox row (in the tenant's database)."""
    with plane.provider.tenant(org.id) as db:
        return db.execute(select(outbox).where(
            outbox.c.type == "employment.RunImport",
            outbox.c.payload["import_id"].astext == import_id)).mappings().one()


def test_an_import_that_kills_its_worker_every_time_is_given_up_and_the_relays_copy_completes_it(
        own: OwnPlane, log_dir: Path) -> None:
    org = _org(own)
    prepare(own.provider, org)
    people = people_file(rows=300, bad=5, seed=31)
    worker = processes.celery_worker("employment-poisoned", "employment", own.env, log_dir, 1)
    try:
        with connect(own.provider.url_of("trial"), autocommit=True) as held:
            held.execute("SELECT pg_advisory_lock(%s, %s)", (CHECKPOINT_CLASS, HOLD_AT))
            import_id = upload(own.app.test_client(), org, people.data)["id"]
            for run in range(1, KILLED_RUNS + 1):
                wait_for(lambda: _waiting(held) >= run, timeout=60,  # noqa: B023 - called now
                         message=f"run {run} of the import to be under way")
                for child in psutil.Process(worker.pid).children():  # the pool's process, mid-import
                    child.kill()

            # The next redelivery is given up, or (no guard) runs once more and waits too.
            wait_for(lambda: _command(own, org, import_id)["last_error"] or _waiting(held) > KILLED_RUNS,
                     timeout=60, message="the delivery to be given up")
            assert _waiting(held) == KILLED_RUNS  # no run after the ones killed
            command = _command(own, org, import_id)
            assert f"given up after {KILLED_RUNS} redeliveries" in (command["last_error"] or "")
            wait_for(lambda: broker_idle(own.settings.broker_url, "employment"), timeout=30,
                     message="no copy left")
            assert _waiting(held) == KILLED_RUNS  # acknowledged, not put back: still no other run
            assert command["completed_at"] is None and command["dead_at"] is None
            job = import_job(own.provider, org, import_id)
            assert (job.status, job.rows_done, job.created) == ("running", 0, 0)
            held.execute("SELECT pg_advisory_unlock(%s, %s)", (CHECKPOINT_CLASS, HOLD_AT))

        # The relay sends it again once its lease has run out: not a redelivery, it runs.
        delivery_id = str(command["id"])
        wait_for(lambda: is_overdue(own.provider, delivery_id), timeout=30, message="the command overdue")
        assert delivery_id in resent_ids(sweep_once(own.provider, own.app.extensions["allotment.celery"]))
        wait_for(lambda: import_job(own.provider, org, import_id).status in ("completed", "failed"),
                 timeout=60,
                 message="the relay's copy to finish the import")
        assert worker.running()
    finally:
        worker.stop()

    job = import_job(own.provider, org, import_id)
    assert (job.status, job.rows_done, job.created, job.failed, job.edges) == (
        "completed", 300, 300 - 5, 5, people.managed)
    with own.provider.tenant(org.id) as db:
        assert sorted(db.scalars(select(Employee.work_email))) == sorted(people.emails)
    command = _command(own, org, import_id)
    assert command["completed_at"] is not None and command["dead_at"] is None
    assert command["attempts"] == 1  # the relay's one copy
