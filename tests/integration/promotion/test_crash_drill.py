"""Crash drill: the tenancy worker is SIGKILLed at each step of a promotion in turn.

The run is held at the step's checkpoint (a real advisory lock the procedure passes
through), the whole worker process group is killed there, a new worker is started and
the operator re-runs the promotion (``flask tenants promote``). The tenant must end fully
promoted - every row exactly once in its own database, none left in the trial database -
while a client keeps writing to it the whole time.
"""
from __future__ import annotations

import socket
import uuid
from collections.abc import Callable

import pytest
from celery.result import AsyncResult
from sqlalchemy import select

from domain.db.provider import TRIAL
from domain.messaging import outbox
from domain.messaging.tables import outbox as outbox_table
from domain.notifications.models import Notice
from domain.tenancy import promotion
from domain.tenancy.copying import connect
from tests.integration.promotion.conftest import Plane, rows_in
from tests.integration.promotion.helpers import SteadyWriter, held_before, wait_until_waiting_at
from tests.support import processes
from tests.support.waiting import wait_for
from workers.publisher import publish

ROWS = 3_000
# Killed before each step begins, i.e. with every earlier step done and recorded.
STEPS = [step for step in promotion.STEPS if step != "requested"]


def _trial_notice_ids(plane: Plane, tenant_id: uuid.UUID) -> set[uuid.UUID]:
    with connect(plane.provider.url_of(TRIAL)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM notices WHERE tenant_id = %s", (tenant_id,))}


@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_at_any_step_leaves_the_tenant_whole(
        plane: Plane, tenancy_worker: Callable[..., processes.Process], step: str) -> None:
    worker = tenancy_worker("tenancy", "tenancy")
    tenant = plane.tenant(rows=ROWS)
    seeded = _trial_notice_ids(plane, tenant.id)
    writer = SteadyWriter(plane.provider, tenant.id, interval=0.02)
    writer.start()

    with held_before(plane.provider, step) as held:
        with plane.provider.management() as session:
            promotion_id = promotion.request_promotion(session, tenant.id, reason="operator")
            (command,) = outbox.take_pending(session)
            session.commit()
        publish(plane.app.extensions["allotment.celery"], [command])
        wait_until_waiting_at(held, step)
        # Flower follows the run as the task's state.
        task = AsyncResult(command.id, app=plane.app.extensions["allotment.celery"])
        assert task.state == "PROGRESS" and task.info["promotion_id"] == str(promotion_id)
        worker.kill()

    worker.start()
    processes.wait_until_ready(worker, f"tenancy@{socket.gethostname()}")
    result = plane.app.test_cli_runner().invoke(args=["tenants", "promote", tenant.slug, "--timeout", "120"])
    assert result.exit_code == 0, result.output + worker.log()[-3000:]

    acked = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= acked + 10, timeout=30, message="writes after the promotion")
    writer.halt.set()
    writer.join(30)
    assert writer.error is None, writer.error

    (promoted,) = plane.promotions_of(tenant.id)
    assert (promoted.status, promoted.step) == ("completed", "purged")
    assert promoted.attempts >= 2  # the killed run, then the re-run
    row = plane.tenant_row(tenant.id)
    assert (row.status, row.database_name) == ("dedicated", promoted.database)
    with plane.provider.tenant(tenant.id) as session:
        ids = list(session.scalars(select(Notice.id)))
    assert len(ids) == len(set(ids)) == len(seeded) + len(writer.acked)
    assert set(ids) == seeded | set(writer.acked)
    for table in ("notices", "outbox", "inbox"):
        assert rows_in(plane.provider.url_of(TRIAL), table, tenant.id) == 0, table
    with plane.provider.management() as session:
        announced = session.scalars(select(outbox_table.c.id).where(
            outbox_table.c.type == "tenancy.TenantPromoted", outbox_table.c.tenant_id == tenant.id)).all()
    assert len(announced) == 1
