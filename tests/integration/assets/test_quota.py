"""The per-tenant quota: counted from the tenant's live assets in its database, checked under
a lock so concurrent uploads cannot both take the last bytes; usage and policy for the
tenant's admins only; the quota itself for platform operators only."""
from __future__ import annotations

import threading
import uuid

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.integration.assets.conftest import World
from tests.support import tenants
from tests.support.tenants import bearer

QUOTA = 10_000


def _operator(world: World) -> str:
    return tenants.access_token(world.client, tenants.create_account(world.provider, operator=True))


def _set_quota(world: World, tenant_id: uuid.UUID, quota: int | None) -> TestResponse:
    return world.client.put(f"/api/v1/operations/tenants/{tenant_id}/asset-quota",
                            json={"quota_bytes": quota}, headers=bearer(_operator(world)))


def test_concurrent_uploads_cannot_both_take_the_last_bytes(local_world: World) -> None:
    tenant = local_world.tenant("owner")
    assert _set_quota(local_world, tenant.id, QUOTA).status_code == 204
    token = local_world.token(tenant)
    start = threading.Barrier(4)
    answers: list[TestResponse] = []

    def upload(client: FlaskClient, index: int) -> None:
        start.wait()
        headers = {**bearer(token), "Content-Type": "text/plain"}
        answers.append(client.post("/api/v1/assets", query_string={"filename": f"f{index}.txt"},
                                   data=b"x" * 4_000, headers=headers))

    threads = [threading.Thread(target=upload, args=(local_world.app.test_client(), i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202, 202, 413, 413], [a.get_data(as_text=True) for a in answers]
    usage = local_world.client.get("/api/v1/assets/usage", headers=bearer(token)).json
    assert (usage["used_bytes"], usage["assets"], usage["quota_bytes"]) == (8_000, 2, QUOTA)
    assert len(local_world.files(tenant.id)) == 2


def test_a_reservation_counts_until_it_is_confirmed_or_cleaned(local_world: World) -> None:
    tenant = local_world.tenant("owner")
    assert _set_quota(local_world, tenant.id, QUOTA).status_code == 204
    token = local_world.token(tenant)
    body = {"filename": "big.bin", "content_type": "application/octet-stream", "size": 7_000}
    started = local_world.client.post("/api/v1/assets/uploads", json=body, headers=bearer(token))
    assert started.status_code == 201
    refused = local_world.upload(token, b"y" * 4_000, "more.txt", "text/plain")
    assert (refused.status_code, refused.json["error"]) == (413, "quota_exceeded")
    assert "7,000 of 10,000 bytes used" in refused.json["reason"]


def test_usage_and_policy_are_for_admins_and_the_quota_for_operators(local_world: World) -> None:
    tenant = local_world.tenant("owner", "admin", "employee")
    employee, admin = local_world.token(tenant, "employee"), local_world.token(tenant, "admin")
    assert local_world.client.get("/api/v1/assets/usage", headers=bearer(employee)).status_code == 403
    usage = local_world.client.get("/api/v1/assets/usage", headers=bearer(admin))
    assert usage.status_code == 200
    assert usage.json == {"used_bytes": 0, "quota_bytes": local_world.settings.asset_quota_bytes,
                          "assets": 0, "blocked_kinds": ["executable"]}
    own_quota = local_world.client.put(f"/api/v1/operations/tenants/{tenant.id}/asset-quota",
                                       json={"quota_bytes": 10**12}, headers=bearer(admin))
    assert own_quota.status_code == 403
    assert _set_quota(local_world, uuid.uuid4(), 5).status_code == 404
    bad = _set_quota(local_world, tenant.id, -1)
    assert (bad.status_code, bad.json["field"]) == (422, "quota_bytes")
    assert _set_quota(local_world, tenant.id, 123).status_code == 204
    assert local_world.client.get("/api/v1/assets/usage", headers=bearer(admin)).json["quota_bytes"] == 123
    assert _set_quota(local_world, tenant.id, None).status_code == 204  # back to the default
    reset = local_world.client.get("/api/v1/assets/usage", headers=bearer(admin)).json
    assert reset["quota_bytes"] == local_world.settings.asset_quota_bytes
