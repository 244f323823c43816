"""Throttling and the daily digest: a burst of events for one person sends at most the hourly
rate of emails (mandatory ones still go) and keeps the rest as notices; the digest job, run
twice at once by the worker and once more, records each due person exactly one email that
day, and the sending stage sends it once."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from config.celery import queue_for_task
from domain.bootstrap import build_ports
from domain.notifications import deliveries, digest, preferences
from domain.notifications.categories import DIGEST
from domain.notifications.mail import Email
from domain.notifications.models import EmailDelivery, Notice
from tests.integration.notifications.conftest import FINAL, Plane
from tests.integration.notifications.events import asset_ready, parts, payment_failed
from tests.integration.notifications.smtp_server import SmtpServer
from tests.support import processes
from tests.support.waiting import wait_for
from workers.mail_rendering import JinjaEmailRenderer

BURST = 200
RATE = 5
DIGEST_SUBJECT = "Your Allotment summary"
DIGEST_TASK = "tasks.notifications.send_digests"  # what beat sends


def _unread(plane: Plane, tenant_id: uuid.UUID, user_id: uuid.UUID, titles: list[str]) -> None:
    with plane.provider.tenant(tenant_id) as session:
        session.add_all(Notice(user_id=user_id, event_id=uuid.uuid4(), category="publications", title=title,
                               body="") for title in titles)
        session.commit()


def test_a_burst_is_throttled_and_the_digest_goes_once_per_person_and_day(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "admin", "employee", "hr_manager"))
    bursted, subscriber = org.member("owner"), org.member("admin")
    quiet, empty = org.member("employee"), org.member("hr_manager")
    workers("digest", concurrency=2, MAIL_THROTTLE_PER_HOUR=str(RATE), DIGEST_HOUR="0", **smtp.env())

    burst = [plane.announce(asset_ready(org.id, bursted.user_id, f"scan-{i:03d}.png")) for i in range(BURST)]
    billing = plane.announce(payment_failed(org.id, bursted.user_id))
    for envelope in [*burst, billing]:
        plane.wait_handled(envelope, timeout=120)
    notices = plane.notices(org.id, bursted.user_id)
    assert len(notices) == BURST + 1
    statuses = Counter(n.email_status for n in notices if n.category == "assets")
    assert statuses == {"queued": RATE, "throttled": BURST - RATE}  # as stored when recorded
    billed = [n.email_status for n in notices if n.category == "billing"]
    assert billed == ["queued"]  # mandatory: never throttled
    rows = wait_for(lambda: _settled(plane, bursted.email), timeout=60, message="the burst's emails settled")
    assert Counter((d.category, d.state) for d in rows) == {
        ("assets", "sent"): RATE, ("assets", "throttled"): BURST - RATE, ("billing", "sent"): 1}
    assert len(smtp.handler.to(bursted.email)) == RATE + 1
    shown = plane.shown(org.id, bursted.user_id)
    assert Counter(shown[n.id] for n in notices) == {"sent": RATE + 1, "throttled": BURST - RATE}

    with plane.provider.management() as session:
        preferences.set_preferences(session, subscriber.user_id, {}, digest=True)
        preferences.set_preferences(session, empty.user_id, {}, digest=True)
        session.commit()
    _unread(plane, org.id, subscriber.user_id, ["Q3 plan", "Holiday rota"])
    _unread(plane, org.id, quiet.user_id, ["not asked for a digest"])
    # A digest lists notices written at the latest its grace before it began (their handlers'
    # transactions are over): the notices are moved back by as much rather than waited for.
    for account in (bursted, subscriber, quiet):
        _notices_earlier(plane, org.id, account.user_id, digest.grace_for(plane.settings.task_time_limit))

    publisher = plane.app.extensions["allotment.celery"]
    # Beat, twice at once: the worker (two children) runs both together.
    runs = [publisher.send_task(DIGEST_TASK, queue=queue_for_task(DIGEST_TASK)) for _ in range(2)]
    outcomes = [run.get(timeout=120) for run in runs]
    assert all(o["day"] == datetime.now(UTC).date().isoformat() for o in outcomes), outcomes
    # Recorded for the sending stage, not sent by the job (a run that finds a digest already
    # recorded reports what became of it, which may be "sent" by then).
    assert sum(o.get("queued", 0) for o in outcomes) >= 2, outcomes

    def digests(address: str) -> list[str]:
        subjects = [r.message["Subject"] for r in smtp.handler.to(address)]
        return [s for s in subjects if DIGEST_SUBJECT in s]

    # One row per due person and day, however many runs: the sending stage sends each once.
    people = [a.email for a in (bursted, subscriber, quiet, empty)]
    recorded = wait_for(lambda: _digests_settled(plane, people), timeout=60, message="the digests settled")
    assert sorted((d.recipient, d.state, d.attempts) for d in recorded) == sorted(
        [(bursted.email, "sent", 1), (subscriber.email, "sent", 1)])
    assert digests(bursted.email) == [f"{DIGEST_SUBJECT}: {BURST + 1} unread notices"]
    assert digests(subscriber.email) == [f"{DIGEST_SUBJECT}: 2 unread notices"]
    assert digests(quiet.email) == [] and digests(empty.email) == []
    (received,) = [r for r in smtp.handler.to(subscriber.email) if DIGEST_SUBJECT in r.message["Subject"]]
    text, html = parts(received.message)
    assert "Q3 plan" in text and "Holiday rota" in html and org.name in text

    # A third run the same day (in this process) records nothing: nothing more to send.
    ports = {**build_ports(plane.settings), "renderer": JinjaEmailRenderer()}
    again = digest.send_digests(plane.provider, ports, now=datetime.now(UTC), hour=0)
    assert again.outcomes.get("queued", 0) == 0
    assert sorted(d.id for d in _digests_settled(plane, people)) == sorted(d.id for d in recorded)
    assert sum(DIGEST_SUBJECT in r.message["Subject"] for r in smtp.handler.received) == 2


def _settled(plane: Plane, address: str) -> list[EmailDelivery]:
    """Every email to ``address``, once none waits for (or is in) the sending stage."""
    with plane.provider.management() as session:
        rows = list(session.scalars(select(EmailDelivery).where(EmailDelivery.recipient == address.lower())))
    return rows if rows and all(row.state in FINAL for row in rows) else []


def _digests_settled(plane: Plane, addresses: list[str]) -> list[EmailDelivery]:
    """Every digest recorded for ``addresses``, once each is settled."""
    with plane.provider.management() as session:
        rows = list(session.scalars(select(EmailDelivery).where(
            EmailDelivery.category == DIGEST, EmailDelivery.recipient.in_([a.lower() for a in addresses]))))
    return rows if rows and all(row.state in FINAL for row in rows) else []


def _ports(plane: Plane) -> dict[str, Any]:
    return {**build_ports(plane.settings), "renderer": JinjaEmailRenderer()}


def _notices_earlier(plane: Plane, tenant_id: uuid.UUID, user_id: uuid.UUID, by: timedelta) -> None:
    """Move the user's notices back by ``by`` (rather than wait so long)."""
    with plane.provider.tenant(tenant_id) as session:
        session.execute(update(Notice).where(Notice.user_id == user_id)
                        .values(created_at=Notice.created_at - by))
        session.commit()


def _recorded_digest(plane: Plane, user_id: uuid.UUID, day: date) -> tuple[EmailDelivery, Email]:
    """The user's digest of ``day`` as recorded for the sending stage, and its email."""
    row = plane.delivery(digest.digest_event_id(user_id, day))
    assert row.payload is not None, row.state
    email = deliveries.unseal_email(plane.sealer(), row.payload)
    assert email is not None
    return row, email


def test_a_notice_committed_after_a_digest_read_though_stamped_before_it_is_in_the_next_digest_once(
        plane: Plane) -> None:
    org = plane.tenant(("owner",))
    reader = org.member("owner")
    with plane.provider.management() as session:
        preferences.set_preferences(session, reader.user_id, {}, digest=True)
        session.commit()
    _unread(plane, org.id, reader.user_id, ["Seen by the first digest"])
    _notices_earlier(plane, org.id, reader.user_id, digest.NOTICE_GRACE)  # well before the digest
    today = datetime.now(UTC).date()
    with plane.provider.tenant(org.id) as handler:  # a handler's transaction, open meanwhile
        handler.add(Notice(user_id=reader.user_id, event_id=uuid.uuid4(), category="publications",
                           title="Committed after the first digest read", body=""))
        handler.flush()  # stamped with its transaction's start: before the digest's own time
        assert digest.send_digest(plane.provider, _ports(plane), reader.user_id, today) == "queued"
        handler.commit()
    first, email = _recorded_digest(plane, reader.user_id, today)
    (late,) = [n for n in plane.notices(org.id, reader.user_id) if n.title.startswith("Committed after")]
    assert late.created_at < first.created_at
    assert "Seen by the first digest" in email.text and "Committed after" not in email.text

    # A day goes by (moved back here rather than waited for): the first digest becomes
    # yesterday's, and every notice is a day older.
    yesterday = today - timedelta(days=1)
    with plane.provider.management() as session:
        session.execute(update(EmailDelivery).where(EmailDelivery.id == first.id).values(
            event_id=digest.digest_event_id(reader.user_id, yesterday),
            created_at=EmailDelivery.created_at - timedelta(days=1)))
        session.commit()
    _notices_earlier(plane, org.id, reader.user_id, timedelta(days=1))
    assert digest.send_digest(plane.provider, _ports(plane), reader.user_id, today) == "queued"
    _, email = _recorded_digest(plane, reader.user_id, today)
    assert "Committed after the first digest read" in email.text
    assert "Seen by the first digest" not in email.text  # in one digest only
    assert email.subject == f"{DIGEST_SUBJECT}: 1 unread notices"
