"""Scheduled publishing: beat sends a due publication out within a beat interval, exactly
once however many beats run. Two concurrent runs of the job claim it once; two real
``celery beat`` processes (started by mistake) with real workers make one set of notices."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.messaging.outbox import Envelope
from domain.publications import scheduling
from tests.integration.publications.conftest import (
    PUBLISH,
    PUBLISHED,
    Org,
    Plane,
    add_reader,
    draft,
    messages,
    notices_of,
    publish,
    status_of,
    wait_published,
)
from tests.support import processes
from tests.support.waiting import wait_for

BEAT_JOB = "scheduled-publications"


def test_two_concurrent_runs_claim_a_due_publication_once(plane: Plane, make_org: Callable[..., Org]) -> None:
    org = make_org()
    client = plane.client()
    now = datetime.now(UTC)
    due, later = draft(client, org, title="Due"), draft(client, org, title="Later")
    publish(client, org, due["id"], publish_at=(now + timedelta(minutes=5)).isoformat())
    publish(client, org, later["id"], publish_at=(now + timedelta(hours=5)).isoformat())
    tick = now + timedelta(minutes=6)
    start = threading.Barrier(2)
    found: list[list[Envelope]] = []

    def run() -> None:
        start.wait()
        found.append(scheduling.publish_due(plane.provider, now=tick))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [e for run_found in found for e in run_found if e.payload["publication_id"] == due["id"]]
    assert len(found) == 2 and len(claimed) == 1  # one run claimed it, the other found nothing
    assert [m["handler"] for m in messages(plane, org.id, PUBLISH, due["id"])] == [
        "publications.publish_publication"]
    assert (status_of(plane, org.id, due["id"]), status_of(plane, org.id, later["id"])) == (
        "publishing", "scheduled")
    again = scheduling.publish_due(plane.provider, now=tick)  # a later run: nothing of it left to claim
    assert [e for e in again if e.payload["publication_id"] == due["id"]] == []
    assert messages(plane, org.id, PUBLISH, later["id"]) == []


@pytest.mark.usefixtures("workers")
def test_two_beats_publish_a_scheduled_publication_once(plane: Plane, make_org: Callable[..., Org],
                                                        start_worker: Callable[..., processes.Process],
                                                        tmp_path: Path) -> None:
    org = make_org()
    readers = [add_reader(plane, org) for _ in range(3)]
    client = plane.client()
    title = f"Scheduled {uuid.uuid4().hex[:6]}"
    view = draft(client, org, title=title,
                 audience={"kind": "people", "employee_ids": [str(employee) for _, employee, _ in readers]})
    publish(client, org, view["id"], publish_at=(datetime.now(UTC) + timedelta(seconds=2)).isoformat())
    assert status_of(plane, org.id, view["id"]) == "scheduled"

    beats = []
    for name in ("one", "two"):  # two beats started by mistake, each with its own schedule file
        (tmp_path / name).mkdir()
        beats.append(start_worker(beat=tmp_path / name, PUBLICATION_SCHEDULE_SECONDS="2"))
    wait_published(plane, org.id, view["id"], timeout=90)
    wait_for(lambda: all(beat.log().count(f"Sending due task {BEAT_JOB}") >= 2 for beat in beats), timeout=90,
             message="both beats to have sent the job")
    for beat in beats:
        beat.stop()

    expected = {account.user_id: 1 for account, _, _ in readers}
    wait_for(lambda: notices_of(plane, org.id, title) == expected, timeout=60, message="one notice each")
    assert len(messages(plane, org.id, PUBLISH, view["id"])) == 1
    assert [(m["part"], m["parts"]) for m in messages(plane, org.id, PUBLISHED, view["id"])] == [(1, 1)]
    assert notices_of(plane, org.id, title) == expected
