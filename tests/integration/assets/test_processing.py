"""Uploads streamed through the API and processed by real ``assets`` workers: images get
renditions and lose their metadata, videos get a poster frame, every file its size and
SHA-256; the owner is notified; progress and outcome are on the status URL."""
from __future__ import annotations

import hashlib
import io
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.integration.assets import samples
from tests.integration.assets.conftest import World
from tests.support.tenants import TenantWithMembers, bearer
from tests.support.waiting import wait_for

SIZES = ["128", "64", "32"]


@pytest.fixture(scope="module")
def tenant(local_world: World) -> TenantWithMembers:
    """A tenant for this module's uploads."""
    return local_world.tenant("owner", "employee")


def _download(world: World, token: str, asset_id: str, rendition: str = "original") -> bytes:
    link = world.client.get(f"/api/v1/assets/{asset_id}/download", query_string={"rendition": rendition},
                            headers=bearer(token))
    assert link.status_code == 200, link.get_data(as_text=True)
    response = world.client.get(urlsplit(link.json["url"]).path)
    try:
        assert response.status_code == 200
        return response.get_data()
    finally:
        response.close()


def _notices(world: World, token: str) -> list[dict[str, str]]:
    response = world.client.get("/api/v1/notifications/notices", headers=bearer(token))
    assert response.status_code == 200
    return response.json["items"]  # type: ignore[no-any-return]


def test_a_photo_is_upright_without_its_gps_and_has_three_renditions(local_world: World,
                                                                      tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant, "employee")
    photo = samples.jpeg(400, 300, orientation=6, gps=True)  # rotated 90° by its EXIF
    accepted = local_world.upload(token, photo, "holiday.jpg", "image/jpeg")
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    assert accepted.headers["Location"] == accepted.json["status_url"]
    doc = local_world.processed(token, accepted.json["id"])
    assert (doc["status"], doc["progress"], doc["reason"]) == ("ready", 100, None)
    assert (doc["sniffed_type"], doc["kind"], doc["filename"]) == ("image/jpeg", "image", "holiday.jpg")
    assert (doc["meta"]["width"], doc["meta"]["height"]) == (300, 400)  # orientation applied
    assert [(r["name"], r["width"], r["height"]) for r in doc["renditions"]] == [
        ("128", 96, 128), ("64", 48, 64), ("32", 24, 32)]
    original = _download(local_world, token, doc["id"])
    assert hashlib.sha256(original).hexdigest() == doc["sha256"] and len(original) == doc["size"]
    with Image.open(io.BytesIO(original)) as cleaned:
        assert cleaned.size == (300, 400)
        assert not cleaned.getexif() and "exif" not in cleaned.info  # no camera, no GPS position
    for name in SIZES:
        with Image.open(io.BytesIO(_download(local_world, token, doc["id"], name))) as rendition:
            assert rendition.format == "WEBP" and max(rendition.size) == int(name)
    assert local_world.files(tenant.id, doc["id"]) == sorted(
        [f"tenants/{tenant.id}/assets/{doc['id']}/original"]
        + [f"tenants/{tenant.id}/assets/{doc['id']}/renditions/{n}.webp" for n in SIZES])
    notices = wait_for(lambda: [n for n in _notices(local_world, token) if "holiday.jpg" in n["title"]],
                       message="the owner's notice")
    assert [n["title"] for n in notices] == ["holiday.jpg is ready"]


@pytest.mark.parametrize("case", [
    ("drawing.png", samples.png, "image/png", (300, 200)),
    ("photo.webp", samples.webp, "image/webp", (320, 240)),
    ("anim.gif", samples.gif, "image/gif", (120, 90)),
], ids=["png", "webp", "gif"])
def test_each_image_format_gets_renditions(local_world: World, tenant: TenantWithMembers,
                                           case: tuple[str, object, str, tuple[int, int]]) -> None:
    name, make, mime, size = case
    token = local_world.token(tenant)
    data = make()  # type: ignore[operator]
    doc = local_world.processed(token, local_world.upload(token, data, name, mime).json["id"])
    assert (doc["status"], doc["sniffed_type"]) == ("ready", mime)
    assert (doc["meta"]["width"], doc["meta"]["height"]) == size
    assert [r["name"] for r in doc["renditions"]] == SIZES
    assert hashlib.sha256(_download(local_world, token, doc["id"])).hexdigest() == doc["sha256"]
    if mime == "image/gif":
        assert doc["meta"]["frames"] == 3 and _download(local_world, token, doc["id"]) == data


@pytest.mark.parametrize(("container", "mime", "codec"), [
    ("mp4", "video/mp4", "h264"), ("webm", "video/webm", "vp8"), ("mov", "video/quicktime", "h264"),
], ids=["mp4", "webm", "mov"])
def test_a_video_gets_its_facts_and_a_poster(local_world: World, tenant: TenantWithMembers, container: str,
                                              mime: str, codec: str) -> None:
    token = local_world.token(tenant)
    clip = samples.video(container, seconds=1.0, width=160, height=120)
    doc = local_world.processed(token, local_world.upload(token, clip, f"clip.{container}", mime).json["id"])
    assert (doc["status"], doc["kind"], doc["sniffed_type"]) == ("ready", "video", mime)
    meta = doc["meta"]
    assert (meta["width"], meta["height"], meta["codec"]) == (160, 120, codec)
    assert meta["duration_seconds"] == pytest.approx(1.0, abs=0.15)
    assert [(r["name"], r["content_type"], r["width"]) for r in doc["renditions"]] == [
        ("poster", "image/jpeg", 128)]
    with Image.open(io.BytesIO(_download(local_world, token, doc["id"], "poster"))) as poster:
        assert poster.format == "JPEG" and poster.size == (128, 96)
    assert doc["size"] == len(clip) and doc["sha256"] == hashlib.sha256(clip).hexdigest()


def test_any_other_file_gets_its_size_and_hash(local_world: World, tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    data = b"name,team\nAda,engineering\n" * 1000
    doc = local_world.processed(token, local_world.upload(token, data, "people.csv", "text/csv").json["id"])
    assert (doc["status"], doc["kind"], doc["renditions"]) == ("ready", "text", [])
    assert (doc["size"], doc["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert _download(local_world, token, doc["id"]) == data
    missing = local_world.client.get(f"/api/v1/assets/{doc['id']}/download", query_string={"rendition": "64"},
                                     headers=bearer(token))
    assert (missing.status_code, missing.json["field"]) == (404, "rendition")


def test_progress_and_start_are_recorded(local_world: World, tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    accepted = local_world.upload(token, samples.jpeg(), "a.jpg", "image/jpeg")
    doc = local_world.processed(token, accepted.json["id"])
    assert doc["created_at"] <= doc["started_at"] <= doc["finished_at"]
    listed = local_world.client.get("/api/v1/assets", headers=bearer(token)).json["items"]
    assert doc["id"] in [item["id"] for item in listed]
