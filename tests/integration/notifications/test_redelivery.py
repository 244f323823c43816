"""One notice and at most one email per (event, recipient), however often the event arrives
and even when the sender dies in the middle of sending.

The kill is deterministic: the SMTP server holds its answer to DATA, so the worker is
SIGKILLed while the server has the whole message but has not acknowledged it. The email may
have gone (here it did); its delivery row is left ``sending``. No sender starts a row that
is ``sending``; once the killed process is gone, the sweep (beat's, after ``STALE_AFTER``, or
an operator's at once) settles it ``unconfirmed``, and it is never sent again (at most once).
Only an idempotent transport (the Maildir) sends such an email again."""
from __future__ import annotations

import mailbox
import uuid
from collections.abc import Callable
from datetime import timedelta

from psycopg import pq
from sqlalchemy import update

from domain.notifications import deliveries, sending
from domain.notifications.deliveries import Request
from domain.notifications.mail import Email, MaildirMailer
from domain.notifications.models import EmailDelivery
from domain.notifications.smtp import SmtpMailer
from tests.integration.notifications.conftest import Plane, group_gone
from tests.integration.notifications.events import payment_failed
from tests.integration.notifications.smtp_server import SmtpServer
from tests.support import processes, refs
from tests.support.waiting import wait_for


def test_three_deliveries_and_a_kill_mid_send_make_one_email_and_one_notice(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    buyer = org.member("owner")
    smtp.handler.holding = True
    first = workers("kill-me", **smtp.env())
    envelope = plane.announce(payment_failed(org.id, buyer.user_id))
    wait_for(lambda: smtp.handler.to(buyer.email), timeout=60, message="the server to have the message")
    first.kill()  # mid-send: the server holds its answer to DATA
    wait_for(lambda: group_gone(first), timeout=30, message="the killed worker and its children to be gone")
    smtp.handler.holding = False
    smtp.handler.release.set()
    assert plane.handled(envelope)  # the handler had committed: the email was recorded, then sent
    assert plane.delivery(envelope.event_id).state == "sending"

    workers("after-the-kill", **smtp.env())
    plane.deliver(envelope)  # the second delivery of the same event ...
    plane.deliver(envelope)  # ... and the third
    # A sender finds nothing to start: the row is "sending", never started twice.
    assert plane.run_email_sender_job() == {"died": 0, "due": False}

    # The killed process is gone, so the attempt is dead: settle it as beat does after
    # STALE_AFTER (or an operator at once, as here).
    assert sending.sweep(plane.provider, idempotent=False, stale_after=timedelta(0)) == 1
    delivery = plane.delivery(envelope.event_id)
    assert (delivery.state, delivery.attempts, delivery.error) == ("unconfirmed", 1, sending.DIED)
    assert delivery.payload is None  # the sealed email is not kept once settled

    # Another email to the same person goes out after it: the sender ran, and did not send
    # the first one again.
    later = plane.announce(payment_failed(org.id, buyer.user_id, product="Storage"))
    plane.wait_handled(later)
    # The killed sender's "awake" flag may still stand (FLAG_SECONDS): beat's job wakes one anyway.
    assert plane.run_email_sender_job()["died"] == 0
    plane.wait_settled(later.event_id)
    subjects = [r.message["Subject"] for r in smtp.handler.to(buyer.email)]
    assert subjects == ["Payment failed: Extra seats", "Payment failed: Storage"]

    first_event = uuid.UUID(envelope.event_id)
    (notice,) = [n for n in plane.notices(org.id, buyer.user_id) if n.event_id == first_event]
    assert notice.title == "Payment failed: Extra seats"
    assert notice.email_status == "queued"  # as stored; what it shows is the delivery's state
    assert plane.shown(org.id, buyer.user_id)[notice.id] == "unconfirmed"
    assert len(plane.deliveries(envelope.event_id)) == 1


def test_a_recorded_email_is_recorded_and_sent_once_however_often_its_event_comes(
        plane: Plane, smtp: SmtpServer) -> None:
    address = refs.email("once")
    (event,) = plane.queue_emails([address], subject="Once")
    request, email = _again(event, address, "Once")
    mailer = SmtpMailer("127.0.0.1", smtp.port, sender=plane.settings.mail_from, starttls=False)
    try:
        with plane.provider.management() as session:  # the event handled again before it went
            again = deliveries.record(session, plane.sealer(), plane.settings.mail_from, [(request, email)])
            session.commit()
        assert [o.state for o in again] == ["queued"]
        assert sending.drain(plane.provider, mailer, plane.sealer()) == {"sent": 1}
        with plane.provider.management() as session:  # ... and after it went
            after = deliveries.record(session, plane.sealer(), plane.settings.mail_from, [(request, email)])
            session.commit()
        assert [o.state for o in after] == ["sent"]
        assert sending.drain(plane.provider, mailer, plane.sealer()) == {}
    finally:
        mailer.close()
    assert len(smtp.handler.to(address)) == 1
    row = plane.delivery(event)
    assert (row.state, row.attempts) == ("sent", 1)


def test_a_record_in_autocommit_is_its_own_transaction_and_leaves_the_connection_as_it_was(
        plane: Plane) -> None:
    # As notify() records: a management session in autocommit, the rate's locks and the rows
    # one transaction committed in one round trip, with generic plans for that transaction only.
    address = refs.email("alone")
    throttled = Request(uuid.uuid4(), address, "assets", "Alone", throttle_per_hour=5)
    email = Email(key=f"{throttled.event_id}:{address}", to=address, subject="Alone", text="t",
                  html="<p>t</p>")
    with plane.provider.management() as session:
        connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        first = deliveries.record(session, plane.sealer(), plane.settings.mail_from, [(throttled, email)])
        again = deliveries.record(session, plane.sealer(), plane.settings.mail_from, [(throttled, email)])
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"
        driver = connection.connection.driver_connection
        assert driver is not None and driver.info.transaction_status == pq.TransactionStatus.IDLE
    assert [o.state for o in first] == [o.state for o in again] == ["queued"]
    assert plane.delivery(throttled.event_id).state == "queued"  # committed without a commit


def test_an_idempotent_transport_sends_a_dead_attempt_again_and_still_holds_one_message(
        plane: Plane) -> None:
    folder = plane.settings.var_dir / f"mail-{uuid.uuid4().hex[:8]}"
    mailer = MaildirMailer(folder, plane.settings.mail_from)
    (event,) = plane.queue_emails([refs.email("maildir")])
    assert sending.drain(plane.provider, mailer, plane.sealer()) == {"sent": 1}
    # As if the sender died after writing the file and before settling the row (the sealed
    # email is still there, as it is while a row is "sending"):
    with plane.provider.management() as session:
        session.execute(update(EmailDelivery).where(EmailDelivery.event_id == event).values(
            state="sending", payload=_sealed(plane, event), finished_at=None))
        session.commit()
    assert sending.sweep(plane.provider, idempotent=True, stale_after=timedelta(0)) == 1
    assert plane.delivery(event).state == "retry"  # not "unconfirmed": sending again is harmless here
    assert sending.drain(plane.provider, mailer, plane.sealer()) == {"sent": 1}
    box = mailbox.Maildir(folder, factory=None, create=False)
    assert len(box) == 1
    row = plane.delivery(event)
    assert (row.state, row.attempts) == ("sent", 2)


def _again(event: uuid.UUID, address: str, subject: str = "Queued") -> tuple[Request, Email]:
    """The email ``Plane.queue_emails`` recorded, as a second run of its handler renders it."""
    return (Request(event, address, "billing", subject),
            Email(key=f"{event}:{address}", to=address, subject=subject, text=f"to {address}",
                  html=f"<p>to {address}</p>"))


def _sealed(plane: Plane, event: uuid.UUID) -> str:
    _, email = _again(event, plane.delivery(event).recipient)
    return deliveries.seal_email(plane.sealer(), email)
