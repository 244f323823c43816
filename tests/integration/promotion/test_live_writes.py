"""Promotion while the tenant is in use: a client writes at a steady rate through the data
provider and a real notifications worker records notices of events fed meanwhile. Writes
wait while the rows are copied, never fail, and each lands exactly once in the new database.

The longest write delay is printed (run with ``-s``) and kept as a junit property.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from celery.result import AsyncResult
from sqlalchemy import func, select

from domain.db.provider import TRIAL
from domain.iam import services as iam
from domain.identity import services as identity
from domain.messaging import outbox
from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.messaging.tables import outbox as outbox_table
from domain.notifications.models import Notice
from tests.integration.promotion.conftest import Plane, rows_in
from tests.integration.promotion.helpers import SteadyWriter
from tests.support import processes, refs
from tests.support.waiting import wait_for
from workers.publisher import publish

ROWS = 20_000


class EventFeeder(threading.Thread):
    """Records an event for the tenant every ``interval`` seconds, each becoming one notice
    through the notifications worker (a tenant-database write on the worker's side). Each
    welcomes a new member, made in the event's transaction (a tenant's event reaches only its
    members)."""

    def __init__(self, plane: Plane, tenant_id: uuid.UUID, interval: float) -> None:
        super().__init__(name="event-feeder", daemon=True)
        self.plane, self.tenant_id, self.interval = plane, tenant_id, interval
        self.users: list[uuid.UUID] = []
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        """Feed until told to stop."""
        try:
            while not self.halt.is_set():
                with self.plane.provider.management() as session:
                    email = refs.email("fed")
                    user = identity.create_user(session, email=email, name="Fed", password_hash=None).id
                    iam.grant_role(session, user, self.tenant_id, "employee")
                    outbox.record(session, TenantProvisionedV1(
                        tenant_id=self.tenant_id, tenant_name="Busy", admin_user_id=user,
                        admin_name="Fed", admin_email=email),
                        tenant_id=self.tenant_id, correlation_id=None)
                    pending = outbox.take_pending(session)
                    session.commit()
                self.users.append(user)
                publish(self.plane.app.extensions["allotment.celery"], pending)
                self.halt.wait(self.interval)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _welcome_notices(plane: Plane, tenant_id: uuid.UUID) -> int:
    with plane.provider.tenant(tenant_id) as session:
        welcome = select(func.count()).select_from(Notice).where(Notice.category == "welcome")
        return session.scalar(welcome) or 0


def test_writes_during_promotion_wait_and_land_exactly_once(
        plane: Plane, tenancy_worker: Callable[..., processes.Process], plane_beat: processes.Process,
        record_property: Callable[[str, object], None]) -> None:
    tenancy_worker("tenancy", "tenancy")
    tenancy_worker("notices", "notifications")
    tenancy_worker("relay", "relay")  # the relay confirms deliveries handled on a tenant database
    tenant = plane.tenant(rows=ROWS)
    writer = SteadyWriter(plane.provider, tenant.id, interval=0.01)
    feeder = EventFeeder(plane, tenant.id, interval=0.05)
    writer.start()
    feeder.start()
    wait_for(lambda: len(writer.acked) >= 20 and len(feeder.users) >= 5, timeout=30,
             message="writes and events before the promotion")

    result = plane.app.test_cli_runner().invoke(args=["tenants", "promote", tenant.slug, "--timeout", "180"])

    assert result.exit_code == 0, result.output
    assert f"{tenant.slug}: completed at purged" in result.output
    acked_at_switch = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= acked_at_switch + 20, timeout=30,
             message="writes on the new route")
    writer.halt.set()
    feeder.halt.set()
    writer.join(30)
    feeder.join(30)
    assert writer.error is None and feeder.error is None, (writer.error, feeder.error)

    # Everything the feeder recorded is handled (the worker retried what found the tenant moved).
    wait_for(lambda: _welcome_notices(plane, tenant.id) == len(feeder.users), timeout=90,
             message="every fed event's notice")
    route = plane.provider.route(tenant.id)
    assert route.db_key != TRIAL
    with plane.provider.tenant(tenant.id) as session:
        counts = dict(session.execute(select(Notice.id, func.count()).where(Notice.id.in_(writer.acked))
                                      .group_by(Notice.id)).all())
        steady = session.scalar(select(func.count()).select_from(Notice).where(Notice.category == "steady"))
        seeded = session.scalar(select(func.count()).select_from(Notice).where(Notice.category == "seed"))
        welcomed = session.execute(select(Notice.user_id).where(Notice.category == "welcome")).scalars().all()
    assert counts == dict.fromkeys(writer.acked, 1)  # every acknowledged write, exactly once
    assert steady == len(writer.acked) and seeded == ROWS
    assert sorted(welcomed) == sorted(feeder.users)
    for table in ("notices", "outbox", "inbox"):
        assert rows_in(plane.provider.url_of(TRIAL), table, tenant.id) == 0, table
    wait_for(lambda: _all_delivered(plane, tenant.id), timeout=60, message="every fed delivery confirmed")

    (promoted,) = plane.promotions_of(tenant.id)
    assert promoted.status == "completed" and promoted.write_stall_ms is not None
    # Flower shows the promotion as the task's state: the command's task id is its delivery id.
    with plane.provider.management() as session:
        delivery = session.scalar(select(outbox_table.c.id).where(
            outbox_table.c.type == "tenancy.PromoteTenant", outbox_table.c.tenant_id == tenant.id))
    task = AsyncResult(str(delivery), app=plane.app.extensions["allotment.celery"])
    assert task.state == "SUCCESS" and task.result["status"] == "completed"

    longest = max(writer.delays)
    record_property("longest_write_delay_ms", round(longest * 1000))
    print(f"\npromotion of {ROWS} rows under writes: longest write delay {longest * 1000:.0f} ms, "
          f"writes held by the promotion {promoted.write_stall_ms} ms, {len(writer.acked)} writes, "
          f"{writer.moved} found the tenant moved, {len(feeder.users)} events")


def _all_delivered(plane: Plane, tenant_id: uuid.UUID) -> bool:
    with plane.provider.management() as session:
        return not session.scalar(select(func.count()).select_from(outbox_table).where(
            outbox_table.c.tenant_id == tenant_id, outbox_table.c.completed_at.is_(None),
            outbox_table.c.type == TenantProvisionedV1.message_type))

