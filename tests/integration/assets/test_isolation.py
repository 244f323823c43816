"""Isolation: tenant A cannot obtain a download URL for (or see, confirm, delete) tenant B's
asset, a member sees only their own assets while an admin sees the tenant's, and a guessed
storage key does not work: not as a local link, not as an unsigned S3 URL, not as a
rendition name."""
from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from domain.assets.storage import DOWNLOAD_PATH, LocalStorage
from tests.integration.assets import samples
from tests.integration.assets.conftest import World
from tests.support import tenants
from tests.support.tenants import TenantWithMembers, bearer


@pytest.fixture(scope="module")
def b_tenant(local_world: World) -> TenantWithMembers:
    """Tenant B, with an employee's ready asset."""
    return local_world.tenant("owner", "admin", "employee")


@pytest.fixture(scope="module")
def b_asset(local_world: World, b_tenant: TenantWithMembers) -> str:
    """A ready image of B's employee."""
    token = local_world.token(b_tenant, "employee")
    accepted = local_world.upload(token, samples.png(), "b.png", "image/png")
    doc = local_world.processed(token, accepted.json["id"])
    assert doc["status"] == "ready"
    return str(doc["id"])


def test_another_tenant_gets_not_found_for_everything(local_world: World, b_tenant: TenantWithMembers,
                                                       b_asset: str) -> None:
    a_tenant = local_world.tenant("owner")
    a_owner = local_world.token(a_tenant, "owner")  # every permission: never the reason
    calls = [("GET", f"/api/v1/assets/{b_asset}"), ("GET", f"/api/v1/assets/{b_asset}/download"),
             ("GET", f"/api/v1/assets/{b_asset}/download?rendition=64"),
             ("POST", f"/api/v1/assets/{b_asset}/confirm"), ("DELETE", f"/api/v1/assets/{b_asset}")]
    for method, path in calls:
        response = local_world.client.open(path, method=method, headers=bearer(a_owner))
        assert (response.status_code, response.json["field"]) == (404, "asset_id"), (method, path)
    listed = local_world.client.get("/api/v1/assets", headers=bearer(a_owner)).json["items"]
    assert b_asset not in {item["id"] for item in listed}
    b_token = local_world.token(b_tenant, "employee")
    assert local_world.asset(b_token, b_asset)["status"] == "ready"  # nothing of B changed


def test_a_member_sees_their_own_assets_and_an_admin_every_one(local_world: World,
                                                                b_tenant: TenantWithMembers,
                                                                b_asset: str) -> None:
    owner = local_world.token(b_tenant, "owner")
    admin = local_world.token(b_tenant, "admin")
    colleague = local_world.tenant("owner")  # someone of another tenant
    for token in (owner, admin):
        link = local_world.client.get(f"/api/v1/assets/{b_asset}/download", headers=bearer(token))
        assert link.status_code == 200
    other_member = local_world.token(colleague)
    response = local_world.client.get(f"/api/v1/assets/{b_asset}", headers=bearer(other_member))
    assert response.status_code == 404
    employee2 = _second_employee(local_world, b_tenant)
    response = local_world.client.get(f"/api/v1/assets/{b_asset}/download", headers=bearer(employee2))
    assert (response.status_code, response.json["field"]) == (404, "asset_id")
    assert local_world.client.get("/api/v1/assets", headers=bearer(employee2)).json["items"] == []


def _second_employee(world: World, tenant: TenantWithMembers) -> str:
    account = tenants.add_member(world.provider, tenant.id, "employee")
    return tenants.access_token(world.client, account, tenant.slug)


def test_a_guessed_local_key_does_not_download(local_world: World, b_tenant: TenantWithMembers,
                                                b_asset: str) -> None:
    store = local_world.storage
    assert isinstance(store, LocalStorage)
    key = f"tenants/{b_tenant.id}/assets/{b_asset}/original"
    assert store.exists(key)
    for guess in (key, key.replace("/", "%2F"), "tenants", f"../storage/{key}"):
        response = local_world.client.get(f"{DOWNLOAD_PATH}{guess}")
        assert response.status_code == 404 and b"PNG" not in response.get_data()
    token = local_world.token(b_tenant, "employee")
    for rendition in ("../original", "original/../../x", "64.webp", "upload"):
        response = local_world.client.get(f"/api/v1/assets/{b_asset}/download",
                                          query_string={"rendition": rendition}, headers=bearer(token))
        assert response.status_code in (404, 422) and response.json["field"] == "rendition"


def test_a_guessed_s3_key_without_a_signature_is_refused(s3_world: World) -> None:
    tenant = s3_world.tenant("owner")
    token = s3_world.token(tenant)
    doc = s3_world.processed(token, s3_world.upload(token, samples.png(), "p.png", "image/png").json["id"])
    signed = s3_world.client.get(f"/api/v1/assets/{doc['id']}/download", headers=bearer(token)).json["url"]
    parts = urlsplit(signed)
    unsigned = f"{parts.scheme}://{parts.netloc}{parts.path}"  # the key, without the signature
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=30)  # noqa: S310 - our moto server
    refused.value.close()
    assert refused.value.code == 403
    with urllib.request.urlopen(signed, timeout=30) as response:  # noqa: S310 - our moto server
        assert response.status == 200
