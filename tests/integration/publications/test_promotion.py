"""Trial and dedicated tenants behave the same: the same publishing, reading and scheduling
run on a trial tenant and on one promoted to a database of its own (the data provider
routes; the worker, beat's job and the pages follow the route)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from domain.publications import scheduling
from domain.tenancy import promotion
from tests.integration.publications.conftest import (
    API,
    Org,
    Plane,
    add_reader,
    deliveries,
    draft,
    notices_of,
    publish,
    unit,
    wait_published,
)
from tests.support.tenants import bearer
from tests.support.waiting import wait_for
from workers import publisher

pytestmark = pytest.mark.usefixtures("workers")


def promote(plane: Plane, tenant_id: uuid.UUID) -> None:
    """Move the tenant to a database of its own, in this process (DESIGN §5)."""
    with plane.provider.management() as session:
        promotion_id = promotion.request_promotion(session, tenant_id, reason="operator")
        session.commit()
    result = promotion.run(plane.provider, promotion_id)
    assert result.progress.status == "completed", result.progress.error
    assert plane.provider.route(tenant_id).db_key.startswith("dedicated:")


@pytest.mark.parametrize("placement", ["trial", "dedicated"])
def test_publishing_reading_and_scheduling_on_either_placement(plane: Plane, make_org: Callable[..., Org],
                                                               placement: str) -> None:
    org = make_org()
    team = unit(plane.provider, org.id, "Team")
    reader, reader_employee, token = add_reader(plane, org, unit_id=team)
    client = plane.client()
    before = draft(client, org, title=f"Before {placement}", sections=[{"heading": "Moved along"}],
                   audience={"kind": "org_unit", "org_unit_id": str(team)})
    if placement == "dedicated":
        promote(plane, org.id)  # a draft written on trial moves with the tenant
    publish(client, org, before["id"])
    wait_published(plane, org.id, before["id"])
    assert deliveries(plane, org.id, before["id"]) == {reader_employee: (reader.user_id, None)}
    wait_for(lambda: notices_of(plane, org.id, f"Before {placement}") == {reader.user_id: 1}, timeout=60,
             message="the reader's notice")

    when = datetime.now(UTC) + timedelta(hours=1)
    later = draft(client, org, title=f"Later {placement}")
    assert publish(client, org, later["id"], publish_at=when.isoformat())["status"] == "scheduled"
    claimed = scheduling.publish_due(plane.provider, now=when + timedelta(seconds=1))
    mine = [e for e in claimed if e.payload["publication_id"] == later["id"]]
    assert len(mine) == 1  # found in the tenant's database, wherever it lives
    assert publisher.publish(plane.app.extensions["allotment.celery"], mine) == 1
    wait_published(plane, org.id, later["id"])

    listed = client.get(f"{API}/received", headers=bearer(token)).json["items"]
    assert [p["title"] for p in listed] == [f"Later {placement}", f"Before {placement}"]
    opened = client.get(f"{API}/received/{before['id']}", headers=bearer(token))
    assert [s["heading"] for s in opened.json["sections"]] == ["Moved along"]
    assert client.get(f"{API}/{before['id']}", headers=org.auth()).json["read"] == 1
