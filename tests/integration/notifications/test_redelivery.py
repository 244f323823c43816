"""One notice and at most one email per (event, recipient), however often the event arrives
and even when the worker dies in the middle of sending.

The kill is deterministic: the SMTP server holds its answer to DATA, so the worker is
SIGKILLed while the server has the whole message but has not acknowledged it. The email may
have gone (here it did); the delivery row says an attempt started and never finished, so the
next delivery does not send it again (at most once) and records it ``unconfirmed``."""
from __future__ import annotations

import mailbox
import uuid
from collections.abc import Callable

from domain.notifications import deliveries
from domain.notifications.deliveries import Request
from domain.notifications.mail import Email, MaildirMailer
from domain.notifications.smtp import SmtpMailer
from tests.integration.notifications.conftest import Plane
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
    smtp.handler.release.set()
    assert not plane.handled(envelope)

    workers("after-the-kill", **smtp.env())
    plane.deliver(envelope)  # the second delivery of the same event ...
    plane.deliver(envelope)  # ... and the third
    plane.wait_handled(envelope)
    wait_for(lambda: plane.notices(org.id, buyer.user_id), timeout=30, message="the notice")

    assert len(smtp.handler.to(buyer.email)) == 1
    (notice,) = plane.notices(org.id, buyer.user_id)
    assert notice.title == "Payment failed: Extra seats" and notice.email_status == "unconfirmed"
    (delivery,) = plane.deliveries(envelope.event_id)
    assert (delivery.state, delivery.attempts) == ("unconfirmed", 1)
    assert delivery.error == deliveries.DIED


def _request(address: str) -> tuple[Email, Request]:
    event = uuid.uuid4()
    email = Email(key=f"{event}:{address}", to=address, subject="Once", text="only once",
                  html="<p>only once</p>")
    return email, Request(event, address, "billing", "Once")


def test_a_delivery_seen_again_after_it_was_sent_sends_nothing(plane: Plane, smtp: SmtpServer) -> None:
    address = refs.email("once")
    mailer = SmtpMailer("127.0.0.1", smtp.port, sender=plane.settings.mail_from, starttls=False)
    email, request = _request(address)
    try:
        with plane.provider.management() as session:
            outcomes = [deliveries.deliver(plane.provider, session, mailer, email, request,
                                           sender=plane.settings.mail_from) for _ in range(3)]
    finally:
        mailer.close()
    assert [o.state for o in outcomes] == ["sent", "sent", "sent"]
    assert len(smtp.handler.to(address)) == 1
    (row,) = plane.deliveries(request.event_id)
    assert (row.state, row.attempts) == ("sent", 1)


def test_an_idempotent_transport_sends_a_dead_attempt_again_and_still_holds_one_message(
        plane: Plane) -> None:
    folder = plane.settings.var_dir / f"mail-{uuid.uuid4().hex[:8]}"
    mailer = MaildirMailer(folder, plane.settings.mail_from)
    address = refs.email("maildir")
    email, request = _request(address)
    with plane.provider.management() as session:
        first = deliveries.deliver(plane.provider, session, mailer, email, request,
                                   sender=plane.settings.mail_from)
    assert first.state == "sent"
    # As if the worker died after writing the file and before settling the row:
    with plane.provider.management() as session:
        (row,) = plane.deliveries(request.event_id)
        session.get(type(row), row.id).state = "sending"  # type: ignore[union-attr]
        session.commit()
    with plane.provider.management() as session:
        again = deliveries.deliver(plane.provider, session, mailer, email, request,
                                   sender=plane.settings.mail_from)
    assert again.state == "sent"
    box = mailbox.Maildir(folder, factory=None, create=False)
    assert len(box) == 1
    (row,) = plane.deliveries(request.event_id)
    assert (row.state, row.attempts) == ("sent", 2)
