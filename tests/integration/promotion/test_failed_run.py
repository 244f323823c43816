"""A promotion run that fails (here: no placement server answers) confirms its command: the
promotion is left to beat, which resumes it after its resume delay, and the relay does not
send the command again on its own, faster schedule. Only a run that dies leaves the command
to the relay."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery.result import AsyncResult

from domain.db.base import utcnow
from domain.messaging import outbox
from domain.tenancy import promotion
from domain.tenancy.models import Promotion, Tenant
from tests.integration.messaging.helpers import is_overdue, outbox_row, resent_ids, sweep_once
from tests.integration.promotion.conftest import SETTINGS
from tests.support import processes
from tests.support.planes import OwnPlane, own_plane, own_redis
from tests.support.services import Services
from tests.support.tenants import create_tenant
from tests.support.waiting import wait_for
from workers.publisher import publish


@pytest.fixture
def dead_server() -> Iterator[str]:
    """A placement server that does not answer: a port bound but not listening, so a
    connection to it is refused at once (and no other process can take the port meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/postgres"


@pytest.fixture
def down(services: Services, dead_server: str, tmp_path: Path) -> Iterator[OwnPlane]:
    """A stack whose only placement server is down, with a Redis server of its own: its worker
    takes no other test's promotion, and no other test's worker takes its."""
    with own_redis(tmp_path / "redis") as redis, \
            own_plane(services, redis, tmp_path / "var", PLACEMENT_SERVERS=dead_server, **SETTINGS) as own:
        yield own


def test_a_failed_run_confirms_its_command_and_leaves_the_promotion_to_beat(
        down: OwnPlane, log_dir: Path) -> None:
    tenant = create_tenant(down.provider, ("owner",))
    with down.provider.management() as session:
        promotion_id = promotion.request_promotion(session, tenant.id, reason="operator")
        (command,) = outbox.take_pending(session)
        session.commit()
    celery = down.app.extensions["allotment.celery"]
    worker = processes.celery_worker("tenancy-servers-down", "tenancy", down.env, log_dir, 1)
    try:
        assert publish(celery, [command]) == 1
        run = AsyncResult(command.id, app=celery)
        wait_for(lambda: run.state == "FAILURE", timeout=60, message="the promotion run to fail")
    finally:
        worker.stop()

    # The run failed, and the promotion says why; the tenant stays on trial.
    with down.provider.management() as session:
        failed = session.get(Promotion, promotion_id)
        tenant_row = session.get(Tenant, tenant.id)
        assert failed is not None and tenant_row is not None
        assert (failed.status, failed.step, failed.attempts) == ("running", "requested", 1)
        assert (failed.error or "").startswith("NoServerAvailable: no placement server answers")
        assert tenant_row.status == "trial"
        # Beat runs it again once its resume delay after this run has passed, not before.
        assert failed.updated_at is not None
        resume_at = failed.updated_at + promotion.resume_delay(down.settings.promotion_resume_seconds, 1)
        base = down.settings.promotion_resume_seconds
        assert promotion_id not in promotion.due_for_resume(
            session, now=resume_at - timedelta(seconds=1), base_seconds=base)
        assert promotion_id in promotion.due_for_resume(session, now=resume_at, base_seconds=base)

    # Its command is delivered: completed, never re-sent, not dead.
    row = outbox_row(down.provider, command.id)
    assert row is not None
    assert row["completed_at"] is not None and row["dead_at"] is None and row["attempts"] == 0
    # Nor will the relay send it once its lease has run out.
    wait_for(lambda: utcnow() > row["next_attempt_at"], timeout=30, message="the command's lease to run out")
    assert not is_overdue(down.provider, command.id)
    assert command.id not in resent_ids(sweep_once(down.provider, celery))
