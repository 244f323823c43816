"""Isolation: tenant A cannot obtain a download URL for (or see, confirm, delete) tenant B's
asset, through the API or the pages; what A uploads (as the request body, through an upload
link, through the page's form) belongs to A alone, its files under A's folder; A's usage
counts A's assets only and A's policy is A's own; a member sees only their own assets while
an admin sees the tenant's; and a guessed storage key does not work: not as a local link,
not as an unsigned S3 URL, not as a rendition name.

"B unchanged" is a fingerprint of B (``b_state``): every row of B's in both databases and
its people's, its stored files by content, its usage and policy. Uploads are compared once
A's asset is processed and its notice written by the real workers."""
from __future__ import annotations

import hashlib
import io
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from html import unescape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from domain.assets import policies, services
from domain.assets.storage import DOWNLOAD_PATH, LocalStorage
from domain.db.provider import MANAGEMENT
from domain.notifications.deliveries import IN_PROGRESS
from tests.integration.assets import samples
from tests.integration.assets.conftest import World
from tests.support import tenants
from tests.support.tenants import TenantWithMembers, bearer
from tests.support.waiting import wait_for

SECRET_NAME = "b-only-secret-photo.png"  # B's asset's file name: it must show nowhere A looks
B_BLOCKED = ["executable", "video"]      # B's policy (not the default: a row of its own)


# --- fixtures and what B holds ------------------------------------------------------------

def _settled(world: World, tenant_id: uuid.UUID) -> bool:
    """Nothing of the tenant is still moving: no delivery open in its database or the
    management one (processing, notices), no email of its still being sent."""
    open_sql = text("SELECT count(*) FROM outbox WHERE tenant_id = :t AND completed_at IS NULL "
                    "AND dead_at IS NULL")
    moving = 0
    for db_key in {MANAGEMENT, world.provider.route(tenant_id).db_key}:
        with world.provider.unscoped(db_key) as session:
            moving += session.scalar(open_sql, {"t": tenant_id}) or 0
    with world.provider.unscoped(MANAGEMENT) as session:
        moving += session.scalar(text("SELECT count(*) FROM email_deliveries WHERE tenant_id = :t "
                                      "AND state = ANY(:states)"),
                                 {"t": tenant_id, "states": list(IN_PROGRESS)}) or 0
    return moving == 0


def settle(world: World, tenant_id: uuid.UUID) -> None:
    """Wait until nothing of the tenant is moving (see ``_settled``)."""
    wait_for(lambda: _settled(world, tenant_id), timeout=60, message=f"tenant {tenant_id} to settle")


def b_state(world: World, tenant: TenantWithMembers) -> dict[str, str]:
    """Everything of B a request could change: its rows in both databases and its people's
    (tenants.tenant_fingerprint), its stored files by content, its usage and its policy as
    the assets context reads them."""
    prints = tenants.tenant_fingerprint(world.provider, tenant.id, user_ids=tenant.user_ids)
    for key in world.files(tenant.id):
        body = world.storage.get(key)
        try:
            prints[f"storage.{key}"] = hashlib.sha256(body.read()).hexdigest()
        finally:
            body.close()
    with world.provider.tenant(tenant.id) as db:
        prints["assets.usage"] = repr(services.tenant_usage(db))
    with world.provider.management() as session:
        policy = policies.policy_of(session, tenant.id, world.settings.asset_quota_bytes)
    prints["assets.policy"] = repr(policy)
    return prints


def stored_anywhere(world: World, asset_id: str) -> list[str]:
    """Every stored key of the asset, whichever tenant's folder it is in."""
    return sorted(o.key for o in world.storage.listing("tenants/") if f"/assets/{asset_id}/" in o.key)


@pytest.fixture(scope="module")
def b_tenant(local_world: World) -> TenantWithMembers:
    """Tenant B, with an employee's ready asset."""
    return local_world.tenant("owner", "admin", "employee")


@pytest.fixture(scope="module")
def b_asset(local_world: World, b_tenant: TenantWithMembers) -> str:
    """A ready image of B's employee, B's own policy; B settled (its asset's notice written)."""
    admin = local_world.token(b_tenant, "admin")
    policy = local_world.client.put("/api/v1/assets/policy", json={"blocked_kinds": B_BLOCKED},
                                    headers=bearer(admin))
    assert policy.status_code == 200, policy.get_data(as_text=True)
    token = local_world.token(b_tenant, "employee")
    accepted = local_world.upload(token, samples.png(), SECRET_NAME, "image/png")
    doc = local_world.processed(token, accepted.json["id"])
    assert doc["status"] == "ready"
    assert len(local_world.files(b_tenant.id, doc["id"])) == 4  # the original and 3 renditions
    settle(local_world, b_tenant.id)
    return str(doc["id"])


@pytest.fixture(scope="module")
def a_tenant(local_world: World) -> TenantWithMembers:
    """Tenant A, whose owner (every permission: never the reason) probes."""
    return local_world.tenant("owner")


@pytest.fixture(scope="module")
def a_owner(local_world: World, a_tenant: TenantWithMembers) -> str:
    """An access token of A's owner."""
    return local_world.token(a_tenant, "owner")


@pytest.fixture(scope="module")
def a_asset(local_world: World, a_tenant: TenantWithMembers, a_owner: str) -> str:
    """A ready file of A's own (what A's lists must show)."""
    accepted = local_world.upload(a_owner, b"A's own words\n", "a-own.txt", "text/plain")
    assert local_world.processed(a_owner, accepted.json["id"])["status"] == "ready"
    return str(accepted.json["id"])


# --- B's asset, named by A: not found, nothing of B changed -------------------------------

# (method, path of B's asset, the field a 404 of the API names)
CASES: dict[str, tuple[str, str, str | None]] = {
    "get": ("GET", "/api/v1/assets/{b}", "asset_id"),
    "download": ("GET", "/api/v1/assets/{b}/download", "asset_id"),
    "download-rendition": ("GET", "/api/v1/assets/{b}/download?rendition=64", "asset_id"),
    "confirm": ("POST", "/api/v1/assets/{b}/confirm", "asset_id"),
    "delete": ("DELETE", "/api/v1/assets/{b}", "asset_id"),
    "page": ("GET", "/assets/{b}", None),
    "page-delete": ("POST", "/assets/{b}/delete", None),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_another_tenants_asset_is_not_found_and_unchanged(local_world: World, b_tenant: TenantWithMembers,
                                                          b_asset: str, a_owner: str, case: str) -> None:
    method, path, field = CASES[case]
    url = path.format(b=b_asset)
    before = b_state(local_world, b_tenant)
    response = tenants.call_as(local_world.client, local_world.app, method, url, a_owner)
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    if field is not None:
        assert response.json["field"] == field
    said = response.get_data(as_text=True)
    assert SECRET_NAME not in said and DOWNLOAD_PATH not in said
    assert tenants.changed(before, b_state(local_world, b_tenant)) == []


def test_lists_and_usage_show_only_the_callers_tenant(local_world: World, b_tenant: TenantWithMembers,
                                                     b_asset: str, a_owner: str, a_asset: str) -> None:
    client = local_world.client
    listed = client.get("/api/v1/assets", headers=bearer(a_owner))
    assert listed.status_code == 200
    ids = {item["id"] for item in listed.json["items"]}
    assert a_asset in ids and b_asset not in ids
    page = tenants.call_as(client, local_world.app, "GET", "/assets", a_owner)
    assert page.status_code == 200
    html = unescape(page.get_data(as_text=True))
    assert f'data-asset="{a_asset}"' in html and "a-own.txt" in html
    assert set(re.findall(r'data-asset="([0-9a-f-]+)"', html)) == ids
    for text_ in (html, listed.get_data(as_text=True)):
        assert b_asset not in text_ and SECRET_NAME not in text_
    usage = client.get("/api/v1/assets/usage", headers=bearer(a_owner)).json
    assert usage["blocked_kinds"] == ["executable"]  # A's default, not B's policy
    assert html.count('id="usage"') == 1


def test_usage_counts_the_callers_assets_only(local_world: World, b_tenant: TenantWithMembers,
                                              b_asset: str) -> None:
    # A tenant of its own, with one file of known size, beside B's image (and the package's).
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    empty = local_world.client.get("/api/v1/assets/usage", headers=bearer(token)).json
    assert (empty["used_bytes"], empty["assets"]) == (0, 0)
    data = b"twelve bytes"
    accepted = local_world.upload(token, data, "twelve.txt", "text/plain")
    assert local_world.processed(token, accepted.json["id"])["status"] == "ready"
    usage = local_world.client.get("/api/v1/assets/usage", headers=bearer(token))
    assert usage.status_code == 200
    assert usage.json == {"used_bytes": len(data), "quota_bytes": local_world.settings.asset_quota_bytes,
                          "assets": 1, "blocked_kinds": ["executable"]}
    page = tenants.call_as(local_world.client, local_world.app, "GET", "/assets", token)
    assert f'data-used="{len(data)}"' in page.get_data(as_text=True)


def test_setting_the_policy_changes_the_callers_tenant_alone(local_world: World, b_tenant: TenantWithMembers,
                                                            b_asset: str) -> None:
    tenant = local_world.tenant("owner")  # its own: the kinds it refuses would refuse later uploads
    token = local_world.token(tenant)
    before = b_state(local_world, b_tenant)
    response = local_world.client.put("/api/v1/assets/policy", json={"blocked_kinds": ["archive", "audio"]},
                                      headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (response.json["blocked_kinds"], response.json["assets"]) == (["archive", "audio"], 0)
    with local_world.provider.management() as session:
        mine = policies.policy_of(session, tenant.id, local_world.settings.asset_quota_bytes)
        theirs = policies.policy_of(session, b_tenant.id, local_world.settings.asset_quota_bytes)
    assert (mine.blocked_kinds, theirs.blocked_kinds) == (("archive", "audio"), tuple(B_BLOCKED))
    assert tenants.changed(before, b_state(local_world, b_tenant)) == []


# --- what A uploads is A's alone ----------------------------------------------------------

def _via_body(world: World, tenant: TenantWithMembers, token: str) -> str:
    response = world.upload(token, samples.png(90, 60), "a-body.png", "image/png")
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.json["id"])


def _via_link(world: World, tenant: TenantWithMembers, token: str) -> str:
    data = samples.png(80, 50)
    started = world.client.post("/api/v1/assets/uploads", headers=bearer(token),
                                json={"filename": "a-link.png", "content_type": "image/png",
                                      "size": len(data)})
    assert started.status_code == 201, started.get_data(as_text=True)
    link = started.json
    store = world.storage
    assert isinstance(store, LocalStorage)
    granted = store.resolve_upload(urlsplit(link["url"]).path.rsplit("/", 1)[1])
    assert granted.key == f"tenants/{tenant.id}/assets/{link['id']}/upload"  # signed for A's folder
    put = world.client.open(urlsplit(link["url"]).path, method=link["method"], data=data,
                            headers=link["headers"])
    assert put.status_code == 200, put.get_data(as_text=True)
    confirmed = world.client.post(link["confirm_url"], headers=bearer(token))
    assert confirmed.status_code == 202, confirmed.get_data(as_text=True)
    return str(link["id"])


def _via_form(world: World, tenant: TenantWithMembers, token: str) -> str:
    client = world.client
    client.set_cookie(world.app.config["JWT_ACCESS_COOKIE_NAME"], token)
    photo = FileStorage(io.BytesIO(samples.png(70, 40)), "a-form.png", content_type="image/png")
    boundary, body = encode_multipart({"csrf_token": tenants.page_csrf(client, "/assets"), "file": photo})
    response = client.post("/assets", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[1]


UPLOADS: dict[str, Callable[[World, TenantWithMembers, str], str]] = {
    "api-body": _via_body, "api-upload-link": _via_link, "page-form": _via_form}


@pytest.mark.usefixtures("b_asset")  # B holds a ready asset, its files and its own policy
@pytest.mark.parametrize("via", list(UPLOADS), ids=list(UPLOADS))
def test_an_upload_is_the_callers_alone(local_world: World, b_tenant: TenantWithMembers,
                                        a_tenant: TenantWithMembers, a_owner: str, via: str) -> None:
    before = b_state(local_world, b_tenant)
    asset_id = UPLOADS[via](local_world, a_tenant, a_owner)
    # Compared once the workers are done with it: processed, its notice written.
    assert local_world.processed(a_owner, asset_id)["status"] == "ready"
    settle(local_world, a_tenant.id)
    assert tenants.owners_of(local_world.provider, "assets", asset_id, (a_tenant.id, b_tenant.id)) == {
        a_tenant.id}
    stored = stored_anywhere(local_world, asset_id)
    assert f"tenants/{a_tenant.id}/assets/{asset_id}/original" in stored
    assert all(key.startswith(f"tenants/{a_tenant.id}/assets/{asset_id}/") for key in stored), stored
    assert tenants.changed(before, b_state(local_world, b_tenant)) == []
    b_owner = local_world.token(b_tenant, "owner")  # after the comparison: it opens a session of B's
    seen = local_world.client.get(f"/api/v1/assets/{asset_id}", headers=bearer(b_owner))
    assert (seen.status_code, seen.json["field"]) == (404, "asset_id")


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
