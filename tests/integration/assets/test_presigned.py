"""Uploads that do not pass through the web tier: an upload link, the file sent there by a
plain HTTP client (``urllib``), then a confirm. On S3 (moto in server mode, over real HTTP)
the link is a presigned PUT and downloads are presigned GETs; on the local folder both are
signed links served by the web tier. Streamed uploads work on S3 as well."""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from domain.assets import policies
from tests.integration.assets import samples
from tests.integration.assets.conftest import World
from tests.support.tenants import TenantWithMembers, bearer


@dataclass(frozen=True)
class Fetched:
    """What a plain HTTP request got."""

    status: int
    body: bytes


@dataclass(frozen=True)
class Backend:
    """A world and how a plain client sends requests to the links it hands out."""

    world: World
    send: Callable[[str, str, bytes | None, dict[str, str]], Fetched]


def _urllib(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Fetched:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - local
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our moto server
            return Fetched(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Fetched(exc.code, exc.read())


def _through_app(world: World) -> Callable[[str, str, bytes | None, dict[str, str]], Fetched]:
    def send(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Fetched:
        response = world.client.open(urlsplit(url).path, method=method, data=body, headers=headers)
        try:
            return Fetched(response.status_code, response.get_data())
        finally:
            response.close()

    return send


@pytest.fixture(params=["s3", "local"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each storage in turn: S3 links followed with urllib, local links through the web app."""
    if request.param == "s3":
        return Backend(request.getfixturevalue("s3_world"), _urllib)
    world = request.getfixturevalue("local_world")
    return Backend(world, _through_app(world))


@pytest.fixture
def tenant(backend: Backend) -> TenantWithMembers:
    """A fresh tenant in the backend's world."""
    return backend.world.tenant("owner", "employee")


def _start(world: World, token: str, filename: str, content_type: str, size: int) -> dict[str, str]:
    response = world.client.post("/api/v1/assets/uploads", headers=bearer(token),
                                 json={"filename": filename, "content_type": content_type, "size": size})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


def test_upload_link_then_confirm_then_download(backend: Backend, tenant: TenantWithMembers) -> None:
    world = backend.world
    token = world.token(tenant, "employee")
    photo = samples.jpeg(640, 480)
    link = _start(world, token, "team.jpg", "image/jpeg", len(photo))
    assert world.asset(token, link["id"])["status"] == "awaiting_upload"
    put = backend.send(link["method"], link["url"], photo, link["headers"])
    assert put.status == 200, put.body[:300]
    confirmed = world.client.post(link["confirm_url"], headers=bearer(token))
    assert confirmed.status_code == 202 and confirmed.json["status_url"] == link["status_url"]
    again = world.client.post(link["confirm_url"], headers=bearer(token))
    assert again.status_code == 202  # a second confirm is harmless
    doc = world.processed(token, link["id"])
    assert (doc["status"], doc["via"], doc["size"]) == ("ready", "presigned", len(photo))
    assert doc["sha256"] == hashlib.sha256(photo).hexdigest()
    assert world.files(tenant.id, link["id"]) == sorted(  # the upload stays until the clean-up
        [f"tenants/{tenant.id}/assets/{link['id']}/{name}" for name in ("original", "upload")]
        + [f"tenants/{tenant.id}/assets/{link['id']}/renditions/{n}.webp" for n in ("128", "64", "32")])
    for rendition, check in (("original", lambda body: body == photo),
                             ("64", lambda body: body[:4] == b"RIFF" and body[8:12] == b"WEBP")):
        signed = world.client.get(f"/api/v1/assets/{link['id']}/download",
                                  query_string={"rendition": rendition}, headers=bearer(token)).json
        fetched = backend.send("GET", signed["url"], None, {})
        assert fetched.status == 200 and check(fetched.body)


def test_a_streamed_upload_lands_in_the_bucket_too(s3_world: World) -> None:
    tenant = s3_world.tenant("owner")
    token = s3_world.token(tenant)
    data = samples.png(200, 100)
    doc = s3_world.processed(token, s3_world.upload(token, data, "logo.png", "image/png").json["id"])
    assert doc["status"] == "ready" and doc["sha256"] == hashlib.sha256(data).hexdigest()
    assert f"tenants/{tenant.id}/assets/{doc['id']}/original" in s3_world.files(tenant.id)


def test_a_streamed_upload_over_the_limit_leaves_nothing_in_the_bucket(s3_world: World) -> None:
    tenant = s3_world.tenant("owner")
    token = s3_world.token(tenant)
    too_big = b"z" * (s3_world.settings.asset_max_upload_bytes + 10)
    response = s3_world.upload_unsized(token, too_big, "big.bin")
    assert (response.status_code, response.json["field"]) == (413, "file")
    assert s3_world.files(tenant.id) == []


def test_a_file_bigger_than_announced_is_refused_at_confirm(backend: Backend,
                                                            tenant: TenantWithMembers) -> None:
    """Moto does not enforce the signed length, and the local link allows up to it: the
    confirm measures the file, refuses it past the limit and deletes it."""
    world = backend.world
    token = world.token(tenant)
    link = _start(world, token, "small.bin", "application/octet-stream", 10)
    limit = world.settings.asset_max_upload_bytes
    backend.send("PUT", link["url"], b"q" * (limit + 1), link["headers"])
    confirmed = world.client.post(link["confirm_url"], headers=bearer(token))
    if confirmed.status_code == 409:  # the local link refused more than it was signed for
        assert world.files(tenant.id, link["id"]) == []
        return
    assert (confirmed.status_code, confirmed.json["field"]) == (413, "file")
    assert world.files(tenant.id, link["id"]) == []


def test_a_confirm_over_the_quota_is_refused_and_the_file_removed(backend: Backend) -> None:
    world = backend.world
    tenant = world.tenant("owner")
    token = world.token(tenant)
    with world.provider.management() as session:  # the operator's service, called directly
        policies.set_quota(session, tenant.id, 1_000, changed_by=None)
        session.commit()
    link = _start(world, token, "a.bin", "application/octet-stream", 900)
    backend.send("PUT", link["url"], b"a" * 900, link["headers"])
    second = world.client.post("/api/v1/assets/uploads", headers=bearer(token),
                               json={"filename": "b.bin", "content_type": "text/plain", "size": 200})
    assert (second.status_code, second.json["error"]) == (413, "quota_exceeded")  # 900 reserved
    assert world.client.post(link["confirm_url"], headers=bearer(token)).status_code == 202
    doc = world.processed(token, link["id"])
    assert doc["status"] == "ready", doc["reason"]


def test_a_second_upload_through_a_confirmed_link_changes_nothing(backend: Backend,
                                                                  tenant: TenantWithMembers) -> None:
    world = backend.world
    token = world.token(tenant)
    data = b"the checked content\n"
    link = _start(world, token, "notes.txt", "text/plain", len(data))
    backend.send("PUT", link["url"], data, link["headers"])
    assert world.client.post(link["confirm_url"], headers=bearer(token)).status_code == 202
    assert world.processed(token, link["id"])["status"] == "ready"
    backend.send("PUT", link["url"], samples.windows_executable()[: len(data)], link["headers"])
    signed = world.client.get(f"/api/v1/assets/{link['id']}/download", headers=bearer(token)).json
    assert backend.send("GET", signed["url"], None, {}).body == data  # the original is what was checked


def test_a_local_upload_link_is_refused_when_forged_or_late(local_world: World) -> None:
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    link = _start(local_world, token, "a.txt", "text/plain", 3)
    path = urlsplit(link["url"]).path
    headers = {**link["headers"], "Accept": "application/json"}
    forged = local_world.client.put(path[:-4] + "AAAA", data=b"abc", headers=headers)
    assert (forged.status_code, forged.json["field"]) == (404, "token")
    too_much = local_world.client.put(path, data=b"abcd", headers=headers)
    assert (too_much.status_code, too_much.json["field"]) == (413, "file")
    assert local_world.files(tenant.id) == []
    assert local_world.client.put(path, data=b"abc", headers=link["headers"]).status_code == 200
