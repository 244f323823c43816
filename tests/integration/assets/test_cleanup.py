"""Beat's clean-up: uploads never confirmed, files of deleted assets, and orphan files are
removed; live assets are left alone; a second run at the same time skips."""
from __future__ import annotations

import io
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from celery import Celery
from sqlalchemy import text

from config.celery import BEAT_JOBS
from domain.assets import cleanup, keys
from tests.integration.assets import samples
from tests.integration.assets.conftest import World
from tests.support.tenants import bearer
from workers.publisher import web_publisher

NOW = timedelta(0)


@pytest.fixture(scope="module")
def publisher(local_world: World) -> Celery:
    """A Celery client on the world's broker and result backend."""
    app = web_publisher(local_world.settings.broker_url, local_world.settings.result_backend)
    yield app
    app.close()


def _ready(world: World, token: str, data: bytes, name: str, mime: str) -> str:
    doc = world.processed(token, world.upload(token, data, name, mime).json["id"])
    assert doc["status"] == "ready"
    return str(doc["id"])


def _put_through_link(world: World, token: str, data: bytes, *, confirm: bool) -> str:
    link = world.client.post("/api/v1/assets/uploads", headers=bearer(token), json={
        "filename": "later.txt", "content_type": "text/plain", "size": len(data)}).json
    assert world.client.put(urlsplit(link["url"]).path, data=data, headers=link["headers"]).status_code == 200
    if confirm:
        assert world.client.post(link["confirm_url"], headers=bearer(token)).status_code == 202
        assert world.processed(token, link["id"])["status"] == "ready"
    return str(link["id"])


def test_the_beat_job_removes_the_files_of_deleted_assets(local_world: World, publisher: Celery) -> None:
    assert BEAT_JOBS["clean-up-assets"] == ("tasks.assets.clean_up_assets", "asset_cleanup_seconds")
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    kept = _ready(local_world, token, samples.png(), "kept.png", "image/png")
    doomed = _ready(local_world, token, samples.jpeg(), "doomed.jpg", "image/jpeg")
    # Deleted while the storage could not remove its files at once (the delete's own removal
    # failed): its files wait for the job.
    with local_world.provider.tenant(tenant.id) as session:
        session.execute(text("UPDATE assets SET status = 'deleted', deleted_at = now() WHERE id = :id"),
                        {"id": doomed})
        session.commit()
    assert local_world.client.get(f"/api/v1/assets/{doomed}", headers=bearer(token)).status_code == 404
    assert len(local_world.files(tenant.id, doomed)) == 4  # still there until the job runs
    usage = local_world.client.get("/api/v1/assets/usage", headers=bearer(token)).json
    assert usage["assets"] == 1  # its bytes stopped counting at once
    result = publisher.send_task("tasks.assets.clean_up_assets", queue="assets").get(timeout=60)
    assert result["purged"] >= 1 and result["failed"] == []
    assert local_world.files(tenant.id, doomed) == []
    assert len(local_world.files(tenant.id, kept)) == 4


def test_deleting_an_asset_removes_its_files_and_ends_its_download_links(local_world: World) -> None:
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    doomed = _ready(local_world, token, samples.jpeg(), "doomed.jpg", "image/jpeg")
    link = local_world.client.get(f"/api/v1/assets/{doomed}/download", headers=bearer(token)).json["url"]
    handed_out = local_world.client.get(urlsplit(link).path)  # a link handed out works
    handed_out.close()
    assert handed_out.status_code == 200
    assert local_world.client.delete(f"/api/v1/assets/{doomed}", headers=bearer(token)).status_code == 204
    assert local_world.files(tenant.id, doomed) == []  # at once, not at the next clean-up
    assert local_world.client.get(urlsplit(link).path).status_code == 404


def test_never_confirmed_uploads_and_orphans_are_removed(local_world: World) -> None:
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    live = _ready(local_world, token, samples.png(), "live.png", "image/png")
    unconfirmed = _put_through_link(local_world, token, b"never confirmed", confirm=False)
    confirmed = _put_through_link(local_world, token, b"confirmed once", confirm=True)
    late = local_world.client.post("/api/v1/assets/uploads", headers=bearer(token), json={
        "filename": "x.txt", "content_type": "text/plain", "size": 3}).json  # will be confirmed: no
    orphan_id = uuid.uuid4()  # a streamed upload whose request died before its commit
    local_world.storage.put(keys.original(tenant.id, orphan_id), io.BytesIO(b"orphan"))
    second_upload = keys.upload(tenant.id, uuid.UUID(confirmed))  # sent again after its confirm
    local_world.storage.put(second_upload, io.BytesIO(b"sneaky"))

    young = cleanup.clean_up(local_world.provider, local_world.storage, unconfirmed_after=timedelta(hours=1),
                             orphan_after=timedelta(hours=1))
    assert (young.unconfirmed, young.orphan_files) == (0, 0)  # nothing old enough yet
    assert local_world.storage.exists(keys.original(tenant.id, orphan_id))

    report = cleanup.clean_up(local_world.provider, local_world.storage, unconfirmed_after=NOW,
                              orphan_after=NOW)
    assert report.unconfirmed >= 2 and report.orphan_files >= 2 and not report.skipped
    assert local_world.files(tenant.id, unconfirmed) == []
    gone = local_world.client.get(f"/api/v1/assets/{unconfirmed}", headers=bearer(token))
    assert gone.status_code == 404
    assert local_world.client.get(f"/api/v1/assets/{late['id']}", headers=bearer(token)).status_code == 404
    assert local_world.files(tenant.id, orphan_id) == []
    assert not local_world.storage.exists(second_upload)
    assert local_world.files(tenant.id, confirmed) == [keys.original(tenant.id, uuid.UUID(confirmed))]
    assert len(local_world.files(tenant.id, live)) == 4
    assert local_world.asset(token, live)["status"] == "ready"


@pytest.mark.parametrize("status", ["uploaded", "processing"])
def test_a_confirmed_upload_waiting_to_be_processed_keeps_its_file(local_world: World, status: str) -> None:
    # Confirmed, and its processing not started or not finished after more than the clean-up's
    # age (its command parked behind the tenant's others, the assets pool backlogged or down):
    # the upload file is still the asset's content, whatever its age.
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    waiting = _put_through_link(local_world, token, b"confirmed, not yet processed", confirm=False)
    with local_world.provider.tenant(tenant.id) as session:  # as confirm_upload leaves it
        session.execute(text("UPDATE assets SET status = :status WHERE id = :id"),
                        {"status": status, "id": waiting})
        session.commit()
    upload = keys.upload(tenant.id, uuid.UUID(waiting))
    assert local_world.storage.exists(upload)

    report = cleanup.clean_up(local_world.provider, local_world.storage, unconfirmed_after=NOW,
                              orphan_after=NOW)
    assert not report.skipped and report.failed == []
    assert local_world.storage.exists(upload)
    assert local_world.asset(token, waiting)["status"] == status


def test_a_second_run_at_the_same_time_skips(local_world: World) -> None:
    with local_world.provider.management() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": cleanup.LOCK_KEY})
        report = cleanup.clean_up(local_world.provider, local_world.storage, unconfirmed_after=NOW,
                                  orphan_after=NOW)
        holder.rollback()
    assert report.skipped and (report.unconfirmed, report.purged, report.orphan_files) == (0, 0, 0)


def test_the_files_of_more_assets_than_a_statement_has_parameters_are_checked_at_once(
        local_world: World) -> None:
    # PostgreSQL takes at most 65,535 parameters a statement: the clean-up looked a tenant's
    # files' assets up in one IN list, so a tenant with more files was skipped by every run.
    tenant = local_world.tenant("owner")
    live = uuid.UUID(_ready(local_world, local_world.token(tenant), samples.png(), "live.png", "image/png"))
    ids = {uuid.uuid4() for _ in range(70_000)} | {live}
    assert cleanup._statuses(local_world.provider, tenant.id, ids) == {live: "ready"}
