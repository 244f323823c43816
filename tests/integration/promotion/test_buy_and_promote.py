"""End to end on two real PostgreSQL servers, Redis and real worker pools: a trial tenant's
owner buys a paid plan -> the purchases worker charges the sandbox card -> the tenancy worker
applies the plan and promotes the tenant -> its data lives only in its own database, on the
server the placement policy chose. A refund then reverts the plan (not the placement)."""
from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import func, select

from domain.db.provider import TRIAL, server_label
from domain.notifications.models import Notice
from tests.integration.promotion.conftest import Plane, rows_in
from tests.support import processes
from tests.support.tenants import access_token, bearer, create_account
from tests.support.waiting import wait_for


def _final(client, url: str, token: str, *statuses: str):  # type: ignore[no-untyped-def]
    def done():  # type: ignore[no-untyped-def]
        response = client.get(url, headers=bearer(token))  # 404 until the plan change records it
        return response.json if response.status_code == 200 and response.json["status"] in statuses else None
    return done


def test_a_paid_plan_is_charged_and_promotes_the_tenant_to_its_own_database(
        plane: Plane, tenancy_worker: Callable[..., processes.Process],
        plane_beat: processes.Process) -> None:
    tenancy_worker("purchases", "purchases")
    tenancy_worker("tenancy", "tenancy")
    tenancy_worker("notifications", "notifications")
    tenancy_worker("default", "default,billing,relay")
    client = plane.app.test_client()
    operator = access_token(client, create_account(plane.provider, operator=True))
    code = f"standard-{secrets.token_hex(3)}"
    created = client.post("/api/v1/operations/products", headers=bearer(operator), json={
        "code": code, "name": "Standard", "kind": "plan", "plan": "standard", "price_minor": 4900,
        "currency": "EUR"})
    assert created.status_code == 201, created.get_data(as_text=True)
    tenant = plane.tenant(rows=1_000)
    owner = access_token(client, tenant.member("owner"), tenant.slug)

    key = {"Idempotency-Key": secrets.token_hex(8)}
    bought = client.post("/api/v1/purchases", headers={**bearer(owner), **key},
                         json={"product_code": code, "amount_minor": 4900, "currency": "EUR",
                               "card_number": "4242 4242 4242 4242"})
    assert bought.status_code == 202, bought.get_data(as_text=True)
    purchase = wait_for(_final(client, bought.headers["Location"], owner, "completed", "failed"),
                        timeout=60, message="the purchase to be charged")
    assert purchase["status"] == "completed", purchase
    promoted = wait_for(_final(client, "/api/v1/tenancy/promotion", owner, "completed", "failed"),
                        timeout=120, message="the promotion to finish")

    assert promoted["status"] == "completed", promoted
    row = plane.tenant_row(tenant.id)
    assert (row.status, row.plan) == ("dedicated", "standard")
    # The only dedicated tenant: the first configured server holds no tenant yet, so it wins.
    assert row.placement_server == server_label(plane.servers[0]) == promoted["server"]
    route = plane.provider.route(tenant.id)
    assert rows_in(route.url, "notices", tenant.id) >= 1_000
    for table in ("notices", "outbox", "inbox"):
        assert rows_in(plane.provider.url_of(TRIAL), table, tenant.id) == 0, table
    # The receipt and the "own database" notices reach the buyer in the new database.
    buyer = tenant.member("owner").user_id

    def notices_of_buyer() -> set[str]:
        with plane.provider.tenant(tenant.id) as session:
            return set(session.scalars(select(Notice.category).where(Notice.user_id == buyer)))

    wait_for(lambda: {"billing", "tenancy"} <= notices_of_buyer(), timeout=60,
             message="the receipt and promotion notices")
    ledger = client.get(f"/api/v1/operations/tenants/{tenant.id}/ledger", headers=bearer(operator))
    assert ledger.status_code == 200, ledger.get_data(as_text=True)
    assert [e["kind"] for e in ledger.json["entries"]] == ["charge"]

    # A refund reverts the plan; the data stays in its own database.
    refund = client.post(f"/api/v1/operations/purchases/{purchase['id']}/refund", headers=bearer(operator),
                         json={"reason": "changed their mind"})
    assert refund.status_code == 202, refund.get_data(as_text=True)
    wait_for(lambda: plane.tenant_row(tenant.id).plan == "trial", timeout=60, message="the plan to revert")
    assert plane.tenant_row(tenant.id).status == "dedicated"
    with plane.provider.tenant(tenant.id) as session:
        assert session.scalar(select(func.count()).select_from(Notice)) >= 1_000
