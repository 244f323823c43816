"""Promotion through the web: operators start and follow one (API), a tenant admin follows
their tenant's (API and the admin page), and nobody else does. A real tenancy worker runs it."""
from __future__ import annotations

import uuid
from collections.abc import Callable

from tests.integration.promotion.conftest import Plane
from tests.support import processes
from tests.support.tenants import access_token, add_member, bearer, call_as, create_account
from tests.support.waiting import wait_for

MINE = "/api/v1/tenancy/promotion"
ADMIN_PAGE = "/tenancy/admin"


def _start(tenant_id: uuid.UUID) -> str:
    return f"/api/v1/operations/tenants/{tenant_id}/promotions"


def test_an_operator_promotes_a_tenant_and_its_admin_follows_it(
        plane: Plane, tenancy_worker: Callable[..., processes.Process]) -> None:
    client = plane.app.test_client()
    operator = access_token(client, create_account(plane.provider, operator=True))
    tenant = plane.tenant(rows=50)
    owner = access_token(client, tenant.member("owner"), tenant.slug)
    assert client.get(MINE, headers=bearer(owner)).status_code == 404
    page = call_as(client, plane.app, "GET", ADMIN_PAGE, owner)
    assert page.status_code == 200 and 'id="promotion"' not in page.get_data(as_text=True)

    started = client.post(_start(tenant.id), headers=bearer(operator))
    assert started.status_code == 202, started.get_data(as_text=True)
    status_url = started.headers["Location"]
    assert started.json["status_url"] == status_url
    again = client.post(_start(tenant.id), headers=bearer(operator))
    assert again.status_code == 202 and again.json["id"] == started.json["id"]  # the same one
    pending = client.get(MINE, headers=bearer(owner))
    assert pending.status_code == 200 and pending.json["status"] == "pending"
    page = call_as(client, plane.app, "GET", ADMIN_PAGE, owner)
    assert 'data-status="pending"' in page.get_data(as_text=True)

    tenancy_worker("tenancy", "tenancy")

    def finished() -> dict[str, object] | None:
        body = client.get(status_url, headers=bearer(operator)).json
        return body if body["status"] in ("completed", "failed") else None

    done = wait_for(finished, timeout=60, message="the promotion to finish")
    assert (done["status"], done["step"], done["percent"]) == ("completed", "purged", 100)
    assert done["rows_total"] == 52  # 50 notices, an outbox and an inbox row
    mine = client.get(MINE, headers=bearer(owner)).json
    assert mine == done
    html = call_as(client, plane.app, "GET", ADMIN_PAGE, owner).get_data(as_text=True)
    assert 'data-status="completed"' in html and 'value="100"' in html
    assert f"own database {done['database']}@{done['server']}" in html
    # A tenant with a database of its own is not promoted again.
    refused = client.post(_start(tenant.id), headers=bearer(operator))
    assert refused.status_code == 409 and refused.json["field"] == "tenant"


def test_only_operators_start_or_follow_promotions_and_only_admins_see_their_own(plane: Plane) -> None:
    client = plane.app.test_client()
    operator = access_token(client, create_account(plane.provider, operator=True))
    tenant, other = plane.tenant(), plane.tenant()
    employee = add_member(plane.provider, tenant.id, "employee")
    owner = access_token(client, tenant.member("owner"), tenant.slug)
    staff = access_token(client, employee, tenant.slug)

    assert client.post(_start(tenant.id), headers=bearer(owner)).status_code == 403
    assert client.post(_start(uuid.uuid4()), headers=bearer(operator)).status_code == 404
    started = client.post(_start(other.id), headers=bearer(operator))
    assert started.status_code == 202
    # The other tenant's promotion is invisible to this tenant's owner, by id or as "mine".
    assert client.get(started.headers["Location"], headers=bearer(owner)).status_code == 403
    assert client.get(MINE, headers=bearer(owner)).status_code == 404
    assert client.get(MINE, headers=bearer(staff)).status_code == 403
    assert call_as(client, plane.app, "GET", ADMIN_PAGE, staff).status_code == 403
    unknown = client.get(f"/api/v1/operations/promotions/{uuid.uuid4()}",
                         headers=bearer(operator))
    assert unknown.status_code == 404 and unknown.json["field"] == "promotion_id"
