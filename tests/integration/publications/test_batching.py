"""A publication to 5,000 people is announced in parts of at most 500 recipients: the outbox
holds eleven ``PublicationPublished`` deliveries for 5,004 accounts (each account in exactly
one), each handled by the notifications worker in a transaction of its own, which together
write exactly one notice per recipient. Counted from the outbox and inbox, not timed."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from domain.messaging.tables import inbox, outbox
from domain.publications.handlers import BATCH
from tests.integration.publications.conftest import (
    PUBLISHED,
    Org,
    Plane,
    crowd,
    deliveries,
    draft,
    messages,
    notices_of,
    publish,
    wait_published,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("workers")
CROWD = 5_000


def test_five_thousand_recipients_are_notified_in_parts_of_five_hundred(
        plane: Plane, make_org: Callable[..., Org]) -> None:
    org = make_org()
    people = crowd(plane, org.id, CROWD, emails_off=True)  # notices only: the mail is not what is counted
    accounts = set(people.values()) | {org.user(role) for role in org.employees}
    client = plane.client()
    view = draft(client, org, title=f"All hands {uuid.uuid4().hex[:6]}")
    publish(client, org, view["id"])
    wait_published(plane, org.id, view["id"], timeout=180)

    reached = deliveries(plane, org.id, view["id"])
    assert len(reached) == CROWD + len(org.employees)
    assert {user for user, _ in reached.values()} == accounts

    parts = sorted(messages(plane, org.id, PUBLISHED, view["id"]), key=lambda m: m["part"])
    expected_parts = -(-len(accounts) // BATCH)
    assert expected_parts == 11
    numbers = [(m["part"], m["parts"]) for m in parts]
    assert numbers == [(n, expected_parts) for n in range(1, expected_parts + 1)]
    assert all(len(m["recipient_ids"]) <= BATCH for m in parts)
    named = [uuid.UUID(u) for m in parts for u in m["recipient_ids"]]
    assert len(named) == len(set(named)) and set(named) == accounts  # each account in exactly one part
    assert len({m["event_id"] for m in parts}) == expected_parts  # a delivery (a task) per part

    wait_for(lambda: sum(notices_of(plane, org.id, view["title"]).values()) >= len(accounts), timeout=300,
             interval=1, message="every recipient's notice")
    assert notices_of(plane, org.id, view["title"]) == dict.fromkeys(accounts, 1)
    ids = [m["event_id"] for m in parts]
    with plane.provider.tenant(org.id) as db:
        delivery_ids = list(db.scalars(select(outbox.c.id).where(outbox.c.event_id.in_(ids))))
        handled = db.scalar(select(func.count()).select_from(inbox)
                            .where(inbox.c.message_id.in_(delivery_ids)))
        done = db.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.id.in_(delivery_ids), outbox.c.completed_at.is_not(None)))
    assert (len(delivery_ids), handled, done) == (expected_parts, expected_parts, expected_parts)
