"""A web request writing to a tenant while it is promoted waits, then lands once in the new
database: the unit of work runs the view again on the new route (web.db.App)."""
from __future__ import annotations

import threading
import uuid
from typing import Any

from flask import Flask, jsonify

from domain.db.provider import TRIAL
from domain.notifications.models import Notice
from domain.tenancy import promotion
from tests.integration.promotion.conftest import Plane, rows_in
from tests.integration.promotion.helpers import held_before, wait_until_waiting_at
from tests.support.apps import web_app
from tests.support.waiting import wait_for
from web.db import tenant_db


def _writing_app(plane: Plane, calls: list[int]) -> Any:
    """The web app with one more view: write a notice of the tenant named in the URL."""
    manager = web_app(plane.settings)
    app: Flask = manager.__enter__()

    @app.post("/api/test/tenants/<uuid:tenant_id>/notices/<uuid:notice_id>")
    def write_notice(tenant_id: uuid.UUID, notice_id: uuid.UUID) -> Any:
        calls.append(1)
        tenant_db(tenant_id).add(Notice(id=notice_id, tenant_id=tenant_id, user_id=uuid.uuid4(),
                                        event_id=uuid.uuid4(), category="web", title="written by a view"))
        return jsonify({"id": str(notice_id)}), 201

    return manager, app


def _backends_waiting_on_advisory_locks(plane: Plane) -> int:
    from domain.tenancy.copying import connect  # noqa: PLC0415 - local helper
    with connect(plane.provider.url_of(TRIAL)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                           "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                           ).fetchone()
        return int(row[0]) if row else 0


def test_a_write_during_promotion_waits_and_lands_once_in_the_new_database(plane: Plane) -> None:
    tenant = plane.tenant(rows=100)
    calls: list[int] = []
    manager, app = _writing_app(plane, calls)
    try:
        with plane.provider.management() as session:
            promotion_id = promotion.request_promotion(session, tenant.id, reason="operator")
            session.commit()
        runs: list[promotion.RunResult] = []
        answers: list[Any] = []
        notice_id = uuid.uuid4()
        with held_before(plane.provider, "fenced") as held:  # rows copied, the tenant's writes held
            runner = threading.Thread(target=lambda: runs.append(promotion.run(plane.provider, promotion_id)))
            runner.start()
            wait_until_waiting_at(held, "fenced")
            client = app.test_client()
            writer = threading.Thread(target=lambda: answers.append(
                client.post(f"/api/test/tenants/{tenant.id}/notices/{notice_id}")))
            writer.start()
            wait_for(lambda: answers or _backends_waiting_on_advisory_locks(plane) >= 1, timeout=30,
                     message="the web write to wait on the tenant's write lock")
            assert not answers  # still waiting
        runner.join(60)
        writer.join(60)
    finally:
        manager.__exit__(None, None, None)

    assert runs and runs[0].progress.status == "completed"
    assert answers and answers[0].status_code == 201, answers[0].get_data(as_text=True)
    assert len(calls) == 2  # once on the trial route (moved), once on the new one
    with plane.provider.tenant(tenant.id) as session:
        assert session.get(Notice, notice_id) is not None
    assert plane.provider.route(tenant.id).db_key != TRIAL
    assert rows_in(plane.provider.url_of(TRIAL), "notices", tenant.id) == 0
    assert rows_in(plane.provider.route(tenant.id).url, "notices", tenant.id) == 101
