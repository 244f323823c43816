"""The relay re-sends what was lost, with backoff, buries what keeps failing, never sends a row twice."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

from celery import Celery
from sqlalchemy import text

from domain.db.provider import DataProvider
from domain.messaging import relay
from domain.messaging.outbox import Envelope
from domain.tenancy import queries
from tests.integration.messaging.helpers import (
    bury,
    clear_last_error,
    harmless,
    inbox_has,
    is_overdue,
    outbox_row,
    record,
    resent_ids,
    sign_up,
    sweep_once,
    trial_tenant,
    wait_for_failure,
    welcome,
)
from tests.support.processes import Process
from tests.support.waiting import wait_for
from workers.publisher import publish

BIG_LEASE = 3600.0  # a re-sent row is not due again within the test


def test_a_lost_publish_is_resent_by_the_relay_job_and_completed(
        provider: DataProvider, fast_provider: DataProvider, publisher: Celery,
        all_queues_worker: Process) -> None:
    signup_id, (envelope,) = sign_up(fast_provider)  # committed; the publish never happens
    wait_for(lambda: is_overdue(provider, envelope.id), timeout=30, message="the lease to run out")

    report = publisher.send_task("tasks.relay.sweep_outboxes", queue="relay").get(timeout=120)

    assert report["resent"] >= 1 and report["failed"] == 0
    row = wait_for(lambda: (r := outbox_row(provider, envelope.id)) and r["completed_at"] and r,
                   timeout=90, message="the re-sent message to complete")
    assert row["attempts"] == 1 and row["dead_at"] is None
    assert queries.signup_status(provider, signup_id).status == "provisioned"


def test_a_failing_handler_is_retried_with_growing_backoff_then_dead(
        provider: DataProvider, fast_provider: DataProvider, publisher: Celery,
        all_queues_worker: Process) -> None:
    tenant_id = trial_tenant(provider)
    # Routed to this tenant, its payload then made to name another one (as a bug or a
    # tampered row would): handling refuses it on every run, a failure no retry can fix.
    (recorded,) = record(fast_provider, welcome(tenant_id), tenant_id=tenant_id)
    forged = {**recorded.payload, "tenant_id": str(uuid.uuid4())}
    with provider.unscoped("management") as session:
        session.execute(text("UPDATE outbox SET payload = CAST(:payload AS jsonb) WHERE id = :id"),
                        {"payload": json.dumps(forged), "id": uuid.UUID(recorded.id)})
        session.commit()
    envelope = Envelope.from_dict({**recorded.as_dict(), "payload": forged})
    publish(publisher, [envelope])
    wait_for_failure(provider, envelope.id, "the first run")
    assert not inbox_has(provider, "trial", envelope.id)  # rolled back with the effect

    settings = fast_provider.settings
    for attempt in range(1, settings.message_max_attempts + 1):
        clear_last_error(provider, envelope.id)
        sweep = wait_for(lambda: (s := sweep_once(fast_provider, publisher)) and envelope.id in resent_ids(s)
                         and s, timeout=60, message=f"re-send {attempt}")
        row = outbox_row(provider, envelope.id)
        delay = relay.backoff(settings.message_lease_seconds, attempt)
        assert row["attempts"] == attempt  # type: ignore[index]
        assert sweep[1] + delay <= row["next_attempt_at"] <= sweep[2] + delay  # type: ignore[index]
        wait_for_failure(provider, envelope.id, f"re-send {attempt}")

    row = wait_for(lambda: sweep_once(fast_provider, publisher) and (r := outbox_row(provider, envelope.id))
                   and r["dead_at"] and r, timeout=60, message="the message to be dead")
    assert row["attempts"] == settings.message_max_attempts and row["completed_at"] is None
    assert "PermissionError" in row["last_error"]
    assert envelope.id not in resent_ids(sweep_once(fast_provider, publisher))
    assert outbox_row(provider, envelope.id)["attempts"] == settings.message_max_attempts  # type: ignore[index]


def test_a_completed_message_is_not_resent(provider: DataProvider, fast_provider: DataProvider,
                                           publisher: Celery, all_queues_worker: Process) -> None:
    (envelope,) = record(fast_provider, harmless())
    publish(publisher, [envelope])
    wait_for(lambda: (r := outbox_row(provider, envelope.id)) and r["completed_at"], timeout=90,
             message="the message to complete")
    assert envelope.id not in resent_ids(sweep_once(fast_provider, publisher))
    assert outbox_row(provider, envelope.id)["attempts"] == 0  # type: ignore[index]


def test_concurrent_sweeps_never_claim_the_same_row(provider: DataProvider, fast_provider: DataProvider,
                                                   publisher: Celery) -> None:
    ids = {record(fast_provider, harmless())[0].id
           for _ in range(5)}
    wait_for(lambda: all(is_overdue(provider, i) for i in ids), timeout=30, message="the leases to run out")

    with provider.unscoped("management") as first, provider.unscoped("management") as second:
        claimed_first = relay.sweep(first, lease_seconds=BIG_LEASE, max_attempts=8, batch=10_000)
        # The first sweep holds its rows; the second must skip them, not wait (nor send them).
        second.execute(text("SET LOCAL lock_timeout = '10s'"))
        claimed_second = relay.sweep(second, lease_seconds=BIG_LEASE, max_attempts=8, batch=10_000)
        first.commit()
        second.commit()
    with provider.unscoped("management") as third:  # the next round, after the first committed
        claimed_third = relay.sweep(third, lease_seconds=BIG_LEASE, max_attempts=8, batch=10_000)
        third.commit()

    first_ids, second_ids = {e.id for e in claimed_first.resent}, {e.id for e in claimed_second.resent}
    assert ids <= first_ids
    assert not first_ids & second_ids
    assert not ids & {e.id for e in claimed_third.resent}
    assert all(outbox_row(provider, i)["attempts"] == 1 for i in ids)  # type: ignore[index]
    # Send what was claimed, as the relay does after its commit.
    publish(publisher, [*claimed_first.resent, *claimed_second.resent, *claimed_third.resent])


def test_a_late_delivery_of_a_dead_message_completes_it(provider: DataProvider, publisher: Celery,
                                                        all_queues_worker: Process) -> None:
    (envelope,) = record(provider, harmless())
    bury(provider, publisher, envelope.id)
    # A copy that waited in a queue whose pool was down longer than every backoff.
    publish(publisher, [envelope])
    row = wait_for(lambda: (r := outbox_row(provider, envelope.id)) and r["completed_at"] and r,
                   timeout=90, message="the late copy to complete")
    assert row["dead_at"] is None
    assert envelope.id not in {str(r.id) for r in relay.list_all(provider, "dead", limit=10_000).rows}


def test_a_message_within_its_lease_is_left_alone(provider: DataProvider, publisher: Celery) -> None:
    # The session's lease is a minute: a message just written may still be on its way.
    (envelope,) = record(provider, harmless())
    assert envelope.id not in resent_ids(sweep_once(provider, publisher))
    assert outbox_row(provider, envelope.id)["attempts"] == 0  # type: ignore[index]
    publish(publisher, [envelope])  # deliver it after all, so it leaves nothing overdue behind


def test_a_tenant_on_a_server_no_longer_configured_does_not_stop_the_relay(
        provider: DataProvider, fast_provider: DataProvider) -> None:
    # An operator retired a placement server (PLACEMENT_SERVERS no longer names it) while a
    # tenant still points at it: its database cannot be reached, the others must be swept.
    stranded = trial_tenant(provider)
    placed = text("UPDATE tenants SET placement_server = :server, database_name = :name WHERE id = :id")
    with provider.management() as session:
        session.execute(placed, {"server": "retired", "name": "allot_gone", "id": stranded})
        session.commit()
    for each in (provider, fast_provider):
        each.invalidate()
    sent: list[Envelope] = []
    try:
        (theirs,) = record(fast_provider, welcome(stranded), tenant_id=stranded)  # its consumer: unroutable
        (other,) = record(fast_provider, harmless())
        wait_for(lambda: is_overdue(fast_provider, other.id) and is_overdue(fast_provider, theirs.id),
                 timeout=30, message="both deliveries to be overdue")
        settings = fast_provider.settings
        report = relay.sweep_all(fast_provider, lease_seconds=settings.message_lease_seconds,
                                 max_attempts=settings.message_max_attempts, batch=settings.relay_batch_size,
                                 publish=lambda envelopes: len(sent.extend(envelopes) or envelopes))
        # The management database was swept whole (both re-sent: nothing says the stranded one
        # was handled); the retired server's database is counted as failed, not fatal.
        assert {other.id, theirs.id} <= {envelope.id for envelope in sent}
        assert report["failed"] == 1
        assert report["databases"] == len(fast_provider.all_databases()) - 1
        # Pruning and the operators' listing go on past it too.
        assert relay.prune_all(fast_provider, retention=timedelta(days=7))["failed"] == 1
        assert "dedicated:allot_gone@retired" in relay.list_all(fast_provider, "overdue").unreachable
    finally:
        with provider.management() as session:
            session.execute(placed, {"server": None, "name": None, "id": stranded})
            session.execute(text("UPDATE outbox SET completed_at = now() WHERE id = ANY(:ids)"),
                            {"ids": [uuid.UUID(e.id) for e in sent]})
            session.commit()
        for each in (provider, fast_provider):
            each.invalidate()
