"""A delivery whose run never finishes (its worker process dies every time: a crash in a C
library, the out-of-memory killer) comes back after each death, Celery setting no limit
(``task_reject_on_worker_lost``). Past ``MAX_REDELIVERIES`` the task base gives it up and
records why on its outbox row; a later copy, as the relay sends, runs as usual."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from domain.tenancy.models import Signup
from tests.integration.messaging.helpers import broker_idle, inbox_has, outbox_row, sign_up
from tests.integration.purchases.helpers import PrivateStack, private_stack
from tests.support.planes import own_redis
from tests.support.services import Services
from tests.support.waiting import wait_for
from workers.publisher import publish
from workers.redelivery import MAX_REDELIVERIES


@pytest.fixture
def private(services: Services, tmp_path: Path) -> Iterator[PrivateStack]:
    """A stack and Redis server of this test's own: its worker meets no other test's messages."""
    with own_redis(tmp_path / "redis") as server, \
            private_stack(services, f"redis://127.0.0.1:{server.port}", 0, tmp_path) as stack:
        yield stack


def _waiting(conn: psycopg.Connection[tuple[int]]) -> int:
    """Backends of the management database waiting for a lock (killed runs' ones keep waiting)."""
    row = conn.execute("SELECT count(*) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND wait_event_type = 'Lock'").fetchone()
    return row[0] if row else 0


def test_a_delivery_that_kills_its_worker_every_time_is_given_up_and_a_later_copy_runs(
        private: PrivateStack) -> None:
    worker = private.worker("tenancy", "tenancy", concurrency=1)
    dsn = private.settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    holder, watcher = psycopg.connect(dsn), psycopg.connect(dsn, autocommit=True)
    try:
        signup_id, [envelope] = sign_up(private.provider)
        # Every run of the provisioning waits for the signup's row, held here, until killed.
        holder.execute("SELECT 1 FROM signups WHERE id = %s FOR UPDATE", [signup_id])
        celery = private.app.extensions["allotment.celery"]
        assert publish(celery, [envelope]) == 1
        for run in range(1, MAX_REDELIVERIES + 2):  # the first delivery, then each redelivery allowed
            wait_for(lambda: _waiting(watcher) >= run, timeout=60,  # noqa: B023 - called now
                     message=f"run {run} to be under way")
            for child in psutil.Process(worker.pid).children():  # the pool's process, mid-task
                child.kill()

        row = wait_for(lambda: (r := outbox_row(private.provider, envelope.id)) and r["last_error"] and r,
                       timeout=60, message="the delivery to be given up")
        assert f"given up after {MAX_REDELIVERIES + 1} redeliveries" in row["last_error"]
        assert row["completed_at"] is None  # the relay will re-send it
        wait_for(lambda: broker_idle(private.settings.broker_url, "tenancy"), timeout=30,
                 message="no copy left")
        assert _waiting(watcher) == MAX_REDELIVERIES + 1  # no run after the ones killed
        holder.rollback()

        assert publish(celery, [envelope]) == 1  # the relay's copy: not a redelivery, it runs
        with private.provider.management() as session:
            def provisioned() -> bool:
                session.expire_all()
                signup = session.get(Signup, signup_id)
                return signup is not None and signup.status == "provisioned"

            wait_for(provisioned, timeout=60, message="the later copy to provision the tenant")
        assert inbox_has(private.provider, "management", envelope.id)
    finally:
        holder.close()
        watcher.close()
        worker.stop()
