"""Redelivery: processing the same asset twice leaves one set of renditions and one notice.

Twice in two ways: a run that did its work and died before its commit (run here in the test
process, its transaction rolled back after the files were written, with a stale rendition
of an older configuration beside them), then the real delivery on a worker; and the same
delivery sent again after it was handled (the inbox skips it).
"""
from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
import redis
from celery import Celery

from domain.assets import cleanup, handlers, keys, kinds, policies, services
from domain.messaging import handling, outbox
from domain.messaging.contracts.assets import ProcessAssetV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from tests.integration.assets import samples
from tests.integration.assets.conftest import World
from tests.support.tenants import TenantWithMembers, bearer
from tests.support.waiting import wait_for
from workers.publisher import publish, web_publisher


class WorkerKilled(Exception):
    """Stands for the worker dying after its work, before its commit."""


@pytest.fixture(scope="module")
def publisher(local_world: World) -> Celery:
    """A sending-only Celery app on the world's broker."""
    app = web_publisher(local_world.settings.broker_url, local_world.settings.result_backend)
    yield app
    app.close()


def _record_unsent(world: World, tenant: TenantWithMembers, data: bytes,
                   via: str) -> tuple[uuid.UUID, Envelope]:
    """An upload recorded as the API records it (streamed, or sent to its link and confirmed),
    its message kept back (not published)."""
    policy = policies.Policy(10**9, kinds.DEFAULT_BLOCKED, True)
    uploader = services.Uploader(tenant.id, tenant.member("owner").user_id, policy, 10**7)
    upload = services.Upload("beach.jpg", "image/jpeg", len(data))
    with world.provider.tenant(tenant.id) as session:
        if via == "stream":
            asset_id = services.receive_upload(session, world.storage, io.BytesIO(data), upload, uploader).id
        else:
            started = services.start_upload(session, world.storage, upload, uploader, link_seconds=600)
            asset_id = started.asset_id
            session.commit()
            world.storage.put(keys.upload(tenant.id, asset_id), io.BytesIO(data))
            services.confirm_upload(session, world.storage, asset_id, uploader)
        (envelope,) = outbox.take_pending(session)
        session.commit()
    return asset_id, envelope


def _idle(world: World) -> bool:
    client = redis.Redis.from_url(world.settings.broker_url)
    try:
        queued = client.llen("assets") + client.llen("notifications")
        return queued == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


@pytest.mark.parametrize("via", ["stream", "presigned"])
def test_a_second_run_leaves_one_set_of_renditions_and_one_notice(local_world: World, publisher: Celery,
                                                                   via: str) -> None:
    # The photo has metadata: the first run replaces the original with its cleaned copy before
    # it dies, so a presigned upload's second run must still find the file it was confirmed
    # with (it reads the upload, kept until the clean-up after the asset is settled).
    tenant = local_world.tenant("owner")
    token = local_world.token(tenant)
    photo = samples.jpeg(500, 400, gps=True)
    asset_id, envelope = _record_unsent(local_world, tenant, photo, via)
    received = [keys.upload(tenant.id, asset_id)] if via == "presigned" else []
    expected = sorted([keys.original(tenant.id, asset_id), *received]
                      + [keys.rendition(tenant.id, asset_id, n, "webp") for n in ("128", "64", "32")])

    def dies_before_commit(ctx: HandlerContext, msg: ProcessAssetV1) -> None:
        handlers.process_asset(ctx, msg)
        raise WorkerKilled()

    with pytest.raises(WorkerKilled):
        handling.handle(local_world.provider, envelope, ProcessAssetV1, "tenant", dies_before_commit,
                        ports={"storage": local_world.storage})
    half_done = local_world.asset(token, str(asset_id))
    assert (half_done["status"], half_done["renditions"]) == ("processing", [])  # its outcome rolled back
    assert local_world.files(tenant.id, asset_id) == expected  # its files were written
    stale = keys.rendition(tenant.id, asset_id, "999", "webp")  # as an older configuration left one
    local_world.storage.put(stale, io.BytesIO(b"old rendition"))

    assert publish(publisher, [envelope]) == 1
    doc = local_world.processed(token, str(asset_id))
    assert doc["status"] == "ready"
    assert local_world.files(tenant.id, asset_id) == expected
    assert [r["name"] for r in doc["renditions"]] == ["128", "64", "32"]

    assert publish(publisher, [envelope]) == 1  # the same delivery once more, after it was handled
    wait_for(lambda: _idle(local_world), message="the broker to be idle")
    assert local_world.files(tenant.id, asset_id) == expected
    notices = local_world.client.get("/api/v1/notifications/notices", headers=bearer(token)).json["items"]
    assert [n["title"] for n in notices] == ["beach.jpg is ready"]
    assert local_world.asset(token, str(asset_id))["finished_at"] == doc["finished_at"]
    if via == "presigned":  # it read the file as received (a stream's second run reads the clean copy)
        assert doc["meta"]["metadata_removed"] is True
    with local_world.storage.get(keys.original(tenant.id, asset_id)) as stored:
        assert stored.read() != photo  # the original kept is the cleaned copy

    # Settled: the clean-up removes the received upload, and only that.
    report = cleanup.clean_up(local_world.provider, local_world.storage, unconfirmed_after=timedelta(hours=1),
                              orphan_after=timedelta(0))
    assert report.orphan_files >= len(received) and report.failed == []
    assert local_world.files(tenant.id, asset_id) == sorted(set(expected) - set(received))

