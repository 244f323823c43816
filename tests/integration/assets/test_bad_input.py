"""Every bad upload of the issue, each answered with a clear 4xx naming the field (refused
before anything is kept) or a ``rejected`` asset with the reason - and nothing of it left
on the storage either way."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from domain.assets.services import quota_lock_key
from tests.integration.assets import samples
from tests.integration.assets.conftest import MAX_UPLOAD_BYTES, World
from tests.support import tenants
from tests.support.tenants import TenantWithMembers, bearer


@pytest.fixture(scope="module")
def tenant(local_world: World) -> TenantWithMembers:
    """A tenant for this module's uploads."""
    return local_world.tenant("owner", "admin", "employee")


def _refused(response: object, status: int, field: str, words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)  # type: ignore[attr-defined]
    body = response.json  # type: ignore[attr-defined]
    assert body["field"] == field and words in body["reason"], body


# --- refused by the request: 4xx, nothing recorded, nothing stored --------------------------

def test_over_the_size_limit_is_refused_before_a_byte_is_stored(local_world: World,
                                                                tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    before = local_world.files(tenant.id)
    response = local_world.upload(token, b"x" * (MAX_UPLOAD_BYTES + 1), "big.bin")
    _refused(response, 413, "file", f"{MAX_UPLOAD_BYTES:,}-byte limit")
    assert response.json["error"] == "file_too_large"
    assert local_world.files(tenant.id) == before


def test_over_the_size_limit_without_a_length_stops_at_the_limit(local_world: World,
                                                                 tenant: TenantWithMembers) -> None:
    """A chunked body (no Content-Length) is counted as it streams and cut at the limit."""
    token = local_world.token(tenant)
    before = local_world.files(tenant.id)

    response = local_world.upload_unsized(token, b"y" * (MAX_UPLOAD_BYTES + 65536), "stream.bin")
    _refused(response, 413, "file", "limit")
    assert local_world.files(tenant.id) == before


def test_over_the_quota_is_refused_and_nothing_kept(local_world: World) -> None:
    tenant = local_world.tenant("owner")
    operator = _operator_token(local_world)
    quota = 20_000
    set_quota = local_world.client.put(f"/api/v1/operations/tenants/{tenant.id}/asset-quota",
                                       json={"quota_bytes": quota}, headers=bearer(operator))
    assert set_quota.status_code == 204, set_quota.get_data(as_text=True)
    token = local_world.token(tenant)
    first = local_world.upload(token, b"a" * 15_000, "first.txt", "text/plain")
    assert first.status_code == 202
    with_length = local_world.upload(token, b"b" * 6_000, "second.txt", "text/plain")
    _refused(with_length, 413, "file", "quota")
    assert with_length.json["error"] == "quota_exceeded"
    # No Content-Length: refused once counted, and removed again.
    _refused(local_world.upload_unsized(token, b"c" * 6_000, "third.txt", "text/plain"), 413, "file", "quota")
    assert local_world.files(tenant.id) == [f"tenants/{tenant.id}/assets/{first.json['id']}/original"]
    usage = local_world.client.get("/api/v1/assets/usage", headers=bearer(token)).json
    assert (usage["used_bytes"], usage["quota_bytes"], usage["assets"]) == (15_000, quota, 1)


def _operator_token(world: World) -> str:
    operator = tenants.create_account(world.provider, operator=True)
    return tenants.access_token(world.client, operator)


BAD_NAMES = {
    "parent-path": ("../../etc/passwd", "a plain file name"),
    "nested-path": ("photos/../../x.jpg", "a plain file name"),
    "backslash": ("..\\..\\boot.ini", "a plain file name"),
    "newline": ("report\n.pdf", "control characters"),
    "nul": ("a\x00.png", "control characters"),
    "escape": ("\x1b[31mred.txt", "control characters"),
    "bidi-override": ("invoice\u202egnp.exe", "control characters"),
    "empty": ("", "required"),
    "too-long": ("x" * 300 + ".txt", "at most 255"),
}


@pytest.mark.parametrize(("filename", "words"), list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_a_file_name_that_is_a_path_or_has_control_characters_is_refused(
        local_world: World, tenant: TenantWithMembers, filename: str, words: str) -> None:
    token = local_world.token(tenant)
    before = local_world.files(tenant.id)
    _refused(local_world.upload(token, samples.png(), filename, "image/png"), 422, "filename", words)
    presigned = local_world.client.post("/api/v1/assets/uploads", headers=bearer(token), json={
        "filename": filename, "content_type": "image/png", "size": 10})
    _refused(presigned, 422, "filename", words)
    assert local_world.files(tenant.id) == before


def test_a_missing_name_or_a_broken_content_type_is_refused(local_world: World,
                                                            tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    response = local_world.client.post("/api/v1/assets", data=b"abc", headers={
        **bearer(token), "Content-Type": "text/plain"})
    _refused(response, 422, "filename", "required")
    _refused(local_world.upload(token, b"abc", "a.txt", "nonsense"), 422, "content_type", "type/subtype")
    # 136 characters that lower-case to 266 ("İ" becomes two), past the column's 255: was a 500
    _refused(local_world.upload(token, b"abc", "a.txt", "image/" + "\u0130" * 130), 422, "content_type",
             "not a content type")
    # Sent on as a header, to S3 and in a signed upload link: S3 refuses it, or it cannot be sent
    for odd in ("image/png\u00e9", "image/p ng", "image/png/x", "image/(png)"):
        _refused(local_world.upload(token, b"abc", "a.png", odd), 422, "content_type", "not a content type")


def test_a_confirm_for_someone_elses_upload_is_not_found(local_world: World,
                                                         tenant: TenantWithMembers) -> None:
    other_tenant = local_world.tenant("owner")
    owner, employee = local_world.token(tenant, "owner"), local_world.token(tenant, "employee")
    started = local_world.client.post("/api/v1/assets/uploads", headers=bearer(employee), json={
        "filename": "mine.png", "content_type": "image/png", "size": 100})
    assert started.status_code == 201, started.get_data(as_text=True)
    confirm = started.json["confirm_url"]
    for stranger in (owner, local_world.token(other_tenant)):  # the tenant's owner too: not theirs
        _refused(local_world.client.post(confirm, headers=bearer(stranger)), 404, "asset_id", "no such asset")
    _refused(local_world.client.post(f"/api/v1/assets/{uuid.uuid4()}/confirm", headers=bearer(employee)),
             404, "asset_id", "no such asset")
    _refused(local_world.client.post(confirm, headers=bearer(employee)), 409, "file", "nothing was uploaded")


# --- refused by the content: the asset ends rejected, with the reason, and is removed ------

Case = tuple[Callable[[], bytes], str, str, str]  # content, file name, declared type, reason
REJECTED: dict[str, Case] = {
    "png-named-jpg": (samples.png, "photo.jpg", "image/jpeg", "the content is image/png, not image/jpeg"),
    "png-named-jpg-typed-png": (samples.png, "photo.jpg", "image/png",
                                "not image/jpeg as the file name says"),
    "exe-renamed-png": (samples.windows_executable, "cute-cat.png", "image/png",
                        "executable files are not allowed"),
    "elf-renamed-png": (samples.elf_executable, "cat.png", "application/octet-stream",
                        "executable files are not allowed"),
    "script": (lambda: b"#!/bin/sh\nrm -rf /\n", "notes.txt", "text/plain",
               "executable files are not allowed"),
    "decompression-bomb": (samples.bomb_png, "huge.png", "image/png", "decompression bomb"),
    "flat-bomb": (lambda: samples.flat_png(2500, 2500), "flat.png", "image/png", "decompression bomb"),
    "truncated-image": (samples.truncated_jpeg, "half.jpg", "image/jpeg", "truncated or corrupt"),
    # Pillow reads a PNG's EXIF by decoding it: the first step to fail, before the decode.
    "truncated-png": (samples.truncated_png, "half.png", "image/png", "truncated or corrupt"),
    "truncated-video": (lambda: samples.video("mp4")[:2000], "half.mp4", "video/mp4", "cannot be read"),
    "text-claiming-png": (lambda: b"just some words", "words.png", "image/png",
                          "the content is not image/png"),
}


@pytest.mark.parametrize("case", list(REJECTED.values()), ids=list(REJECTED))
def test_bad_content_is_rejected_with_the_reason_and_nothing_kept(
        local_world: World, tenant: TenantWithMembers, case: Case) -> None:
    make, filename, content_type, reason = case
    token = local_world.token(tenant, "employee")
    accepted = local_world.upload(token, make(), filename, content_type)
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    doc = local_world.processed(token, accepted.json["id"])
    assert doc["status"] == "rejected" and reason in doc["reason"], doc
    assert doc["renditions"] == []
    assert local_world.files(tenant.id, doc["id"]) == []
    link = local_world.client.get(f"/api/v1/assets/{doc['id']}/download", headers=bearer(token))
    assert (link.status_code, link.json["field"]) == (409, "asset_id")


def test_a_tenant_may_refuse_more_kinds(local_world: World) -> None:
    tenant = local_world.tenant("owner", "employee")
    owner, employee = local_world.token(tenant, "owner"), local_world.token(tenant, "employee")
    refused = local_world.client.put("/api/v1/assets/policy", json={"blocked_kinds": ["executable", "video"]},
                                     headers=bearer(employee))
    assert refused.status_code == 403
    policy = local_world.client.put("/api/v1/assets/policy", json={"blocked_kinds": ["executable", "video"]},
                                    headers=bearer(owner))
    assert policy.status_code == 200 and policy.json["blocked_kinds"] == ["executable", "video"]
    unknown = local_world.client.put("/api/v1/assets/policy", json={"blocked_kinds": ["spreadsheets"]},
                                     headers=bearer(owner))
    assert (unknown.status_code, unknown.json["field"]) == (422, "blocked_kinds.0")
    doc = local_world.processed(employee, local_world.upload(employee, samples.video("mp4"), "v.mp4",
                                                             "video/mp4").json["id"])
    assert doc["status"] == "rejected" and "video files are not allowed" in doc["reason"]


def test_quota_lock_keys_differ_per_tenant() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert quota_lock_key(a) == quota_lock_key(a) != quota_lock_key(b)
