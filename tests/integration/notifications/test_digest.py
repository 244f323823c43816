"""Throttling and the daily digest: a burst of events for one person sends at most the hourly
rate of emails (mandatory ones still go) and keeps the rest as notices; the digest job, run
twice at once by the worker and once more, sends each due person exactly one email that day."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from config.celery import queue_for_task
from domain.bootstrap import build_ports
from domain.notifications import digest, preferences
from domain.notifications.models import Notice
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready, parts, payment_failed
from tests.integration.notifications.smtp_server import SmtpServer
from tests.support import processes
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
    assert statuses == {"sent": RATE, "throttled": BURST - RATE}
    billed = [n.email_status for n in notices if n.category == "billing"]
    assert billed == ["sent"]  # mandatory: never throttled
    assert len(smtp.handler.to(bursted.email)) == RATE + 1

    with plane.provider.management() as session:
        preferences.set_preferences(session, subscriber.user_id, {}, digest=True)
        preferences.set_preferences(session, empty.user_id, {}, digest=True)
        session.commit()
    _unread(plane, org.id, subscriber.user_id, ["Q3 plan", "Holiday rota"])
    _unread(plane, org.id, quiet.user_id, ["not asked for a digest"])

    publisher = plane.app.extensions["allotment.celery"]
    # Beat, twice at once: the worker (two children) runs both together.
    runs = [publisher.send_task(DIGEST_TASK, queue=queue_for_task(DIGEST_TASK)) for _ in range(2)]
    outcomes = [run.get(timeout=120) for run in runs]
    assert all(o["day"] == datetime.now(UTC).date().isoformat() for o in outcomes), outcomes

    def digests(address: str) -> list[str]:
        subjects = [r.message["Subject"] for r in smtp.handler.to(address)]
        return [s for s in subjects if DIGEST_SUBJECT in s]

    assert digests(bursted.email) == [f"{DIGEST_SUBJECT}: {BURST + 1} unread notices"]
    assert digests(subscriber.email) == [f"{DIGEST_SUBJECT}: 2 unread notices"]
    assert digests(quiet.email) == [] and digests(empty.email) == []
    (received,) = [r for r in smtp.handler.to(subscriber.email) if DIGEST_SUBJECT in r.message["Subject"]]
    text, html = parts(received.message)
    assert "Q3 plan" in text and "Holiday rota" in html and org.name in text

    # A third run the same day (in this process, through the same SMTP server) sends nothing.
    settings = plane.settings.model_copy(update={"mail_transport": "smtp", "smtp_host": "127.0.0.1",
                                                 "smtp_port": smtp.port, "smtp_starttls": False})
    ports = {**build_ports(settings), "renderer": JinjaEmailRenderer()}
    again = digest.send_digests(plane.provider, ports, now=datetime.now(UTC), hour=0)
    assert again.outcomes.get("sent", 0) == 0
    assert len(digests(bursted.email)) == len(digests(subscriber.email)) == 1
    assert sum(DIGEST_SUBJECT in r.message["Subject"] for r in smtp.handler.received) == 2
