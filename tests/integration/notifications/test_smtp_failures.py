"""Failures of the SMTP server: a refused recipient is recorded on the delivery and shown on
the notice, not retried, and the address gets no more email; a deferral (4xx) is retried
with backoff until it goes through, once, however many attempts a mail outage of minutes
takes; a deferral that lasts past ``GIVE_UP_AFTER`` since the email was recorded is settled
as failed on the attempt that finds it so, once the email spent ``GIVE_UP_MIN_ATTEMPTS``.

The backoff is 10 s, 20 s, ... with jitter: rather than wait for nothing, the tests check
the row's ``due_at`` and then move it to now (``Plane.make_retries_due``) and run beat's
``email-sender`` job, which wakes a sender for due emails as it does every 15 s."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from domain.notifications import sending
from domain.notifications.models import EmailDelivery, UndeliverableAddress
from domain.notifications.smtp import SmtpMailer
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready, payment_failed
from tests.integration.notifications.smtp_server import SmtpServer
from tests.support import processes, refs
from tests.support.waiting import wait_for


def _undeliverable(plane: Plane, address: str) -> UndeliverableAddress | None:
    with plane.provider.management() as session:
        return session.scalar(select(UndeliverableAddress).where(UndeliverableAddress.address == address))


def test_a_refused_recipient_is_recorded_not_retried_and_gets_no_more_email(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    smtp.handler.refuse.add(owner.email)
    workers("refused", **smtp.env())
    first = plane.announce(payment_failed(org.id, owner.user_id))
    (delivery,) = plane.wait_settled(first.event_id)
    assert (delivery.state, delivery.attempts) == ("failed", 1) and "550" in (delivery.error or "")
    plane.wait_handled(first)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "failed"}
    found = _undeliverable(plane, owner.email)
    assert found is not None and found.reason == "refused"

    smtp.handler.refuse.clear()  # even if the server would take it now: the address is marked
    second = plane.announce(asset_ready(org.id, owner.user_id))
    plane.wait_handled(second)
    assert plane.delivery(second.event_id).state == "suppressed"  # recorded so: never queued
    assert plane.notices(org.id, owner.user_id)[-1].email_status == "suppressed"
    assert smtp.handler.to(owner.email) == []


def _deferred(plane: Plane, event_id: str, attempts: int) -> EmailDelivery:
    """The event's delivery once it is back in ``retry`` after ``attempts`` attempts."""

    def back() -> EmailDelivery | None:
        rows = plane.deliveries(event_id)
        if not rows:  # not recorded yet
            return None
        (row,) = rows
        assert row.state in ("queued", "sending", "retry"), (row.state, row.error)
        return row if (row.state, row.attempts) == ("retry", attempts) else None

    found = wait_for(back, timeout=60, message=f"attempt {attempts} to be deferred")
    assert "451" in (found.error or "") and found.payload is not None  # kept for the next attempt
    return found


def _due_in(plane: Plane, row: EmailDelivery) -> timedelta:
    with plane.provider.management() as session:
        now = session.scalar(select(func.now()))
    assert row.due_at is not None and row.attempted_at is not None
    # Settled after the attempt started and before now: the pause lies between these two.
    assert row.due_at - row.attempted_at >= _pause(row.attempts), row
    return row.due_at - now


def _pause(attempts: int) -> timedelta:
    """The backoff after ``attempts`` attempts, before its jitter (up to half as much again)."""
    return timedelta(seconds=10 * 2 ** (attempts - 1))


def test_a_deferral_is_retried_with_backoff_and_sent_once(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    smtp.handler.defer = 2  # 451 twice, then accepted
    workers("deferred", **smtp.env())
    envelope = plane.announce(payment_failed(org.id, owner.user_id))
    for attempts in (1, 2):
        row = _deferred(plane, envelope.event_id, attempts)
        assert _due_in(plane, row) <= _pause(attempts) * 1.5  # 10-15 s, then 20-30 s
        assert plane.make_retries_due(envelope.event_id) == 1
        plane.run_email_sender_job()
    (delivery,) = plane.wait_settled(envelope.event_id)
    assert (delivery.state, delivery.attempts, delivery.error) == ("sent", 3, None)
    assert len(smtp.handler.to(owner.email)) == 1
    plane.wait_handled(envelope)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "sent"}


def test_a_deferral_that_outlasts_the_old_five_attempts_is_still_retried_and_sent_once(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    # 451 six times: 10 + 20 + 40 + 80 + 160 + 320 s of backoff, a ten-minute outage.
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    smtp.handler.defer = 6
    workers("outage", **smtp.env())
    envelope = plane.announce(payment_failed(org.id, owner.user_id))
    for attempts in range(1, 7):
        row = _deferred(plane, envelope.event_id, attempts)
        assert _due_in(plane, row) <= _pause(attempts) * 1.5
        assert plane.make_retries_due(envelope.event_id) == 1
        plane.run_email_sender_job()
    (delivery,) = plane.wait_settled(envelope.event_id)
    assert (delivery.state, delivery.attempts, delivery.error) == ("sent", 7, None)
    assert len(smtp.handler.to(owner.email)) == 1


def _recorded_earlier(plane: Plane, event_id: str, by: timedelta, *, attempts: int | None = None) -> None:
    """Move the delivery's creation back by ``by`` (rather than wait so long), and set the
    attempts it spent meanwhile if given."""
    values: dict[str, Any] = {"created_at": EmailDelivery.created_at - by}
    if attempts is not None:
        values["attempts"] = attempts
    with plane.provider.management() as session:
        session.execute(update(EmailDelivery).where(EmailDelivery.event_id == uuid.UUID(event_id))
                        .values(**values))
        session.commit()


def test_a_deferral_that_outlasts_the_give_up_time_is_settled_failed(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    smtp.handler.defer = 1000
    workers("always-deferred", **smtp.env())
    envelope = plane.announce(payment_failed(org.id, owner.user_id))
    last = sending.GIVE_UP_MIN_ATTEMPTS
    for attempts in (1, 2):
        _deferred(plane, envelope.event_id, attempts)
        if attempts == 2:  # a day of deferrals went by, the next attempt is the last it needs
            _recorded_earlier(plane, envelope.event_id, sending.GIVE_UP_AFTER, attempts=last - 1)
        assert plane.make_retries_due(envelope.event_id) == 1
        plane.run_email_sender_job()
    (delivery,) = plane.wait_settled(envelope.event_id)
    assert (delivery.state, delivery.attempts) == ("failed", last)
    assert (delivery.error or "").startswith(f"gave up after {last} attempts in 24 h: ")
    assert "451" in (delivery.error or "")
    assert delivery.payload is None and delivery.due_at is None
    plane.wait_handled(envelope)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "failed"}
    assert smtp.handler.received == [] and _undeliverable(plane, owner.email) is None


def test_an_email_that_waited_past_the_give_up_time_without_attempts_is_still_retried(
        plane: Plane, smtp: SmtpServer) -> None:
    # A day in a misconfiguration pause or a backlog is not a day of failed attempts: its
    # first deferral (greylisting) is retried, and the retry goes out.
    address = refs.email("waited")
    (event,) = plane.queue_emails([address])
    _recorded_earlier(plane, str(event), sending.GIVE_UP_AFTER + timedelta(hours=1), attempts=0)
    smtp.handler.defer = 1
    mailer = SmtpMailer("127.0.0.1", smtp.port, sender=plane.settings.mail_from, starttls=False)
    try:
        assert sending.drain(plane.provider, mailer, plane.sealer()) == {"retry": 1}
        row = plane.delivery(event)
        assert (row.state, row.attempts) == ("retry", 1) and "451" in (row.error or "")
        assert row.payload is not None and row.due_at is not None
        assert plane.make_retries_due(event) == 1
        assert sending.drain(plane.provider, mailer, plane.sealer()) == {"sent": 1}
    finally:
        mailer.close()
    assert (plane.delivery(event).state, plane.delivery(event).attempts) == ("sent", 2)
    assert len(smtp.handler.to(address)) == 1
