"""Failures of the SMTP server: a refused recipient is recorded on the notice, not retried,
and the address gets no more email; a deferral (4xx) is retried with backoff until it goes
through, once; a deferral that outlasts every retry is settled as failed on the last one."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from domain.notifications.models import UndeliverableAddress
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready, payment_failed
from tests.integration.notifications.smtp_server import SmtpServer
from tests.support import processes
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
    plane.wait_handled(first)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert notice.email_status == "failed" and "550" in (notice.email_error or "")
    (delivery,) = plane.deliveries(first.event_id)
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    found = _undeliverable(plane, owner.email)
    assert found is not None and found.reason == "refused"

    smtp.handler.refuse.clear()  # even if the server would take it now: the address is marked
    second = plane.announce(asset_ready(org.id, owner.user_id))
    plane.wait_handled(second)
    assert smtp.handler.to(owner.email) == []
    assert plane.notices(org.id, owner.user_id)[-1].email_status == "suppressed"
    assert plane.deliveries(second.event_id)[0].state == "suppressed"


def test_a_deferral_is_retried_with_backoff_and_sent_once(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    smtp.handler.defer = 2  # 451 twice, then accepted
    workers("deferred", **smtp.env())
    envelope = plane.announce(payment_failed(org.id, owner.user_id))
    plane.wait_handled(envelope, timeout=90)
    assert len(smtp.handler.to(owner.email)) == 1
    (delivery,) = plane.deliveries(envelope.event_id)
    assert (delivery.state, delivery.attempts) == ("sent", 3)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert notice.email_status == "sent"


def test_a_deferral_that_outlasts_every_retry_is_settled_failed_on_the_last_one(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    smtp.handler.defer = 1000
    worker = workers("always-deferred", **smtp.env())
    envelope = plane.announce(payment_failed(org.id, owner.user_id))
    plane.wait_handled(envelope, timeout=120)  # 1 + 2 + 4 + 8 s of backoff, with jitter
    wait_for(lambda: plane.notices(org.id, owner.user_id), timeout=10, message="the notice")
    (notice,) = plane.notices(org.id, owner.user_id)
    assert notice.email_status == "failed" and "gave up after 5 attempts" in (notice.email_error or "")
    (delivery,) = plane.deliveries(envelope.event_id)
    assert (delivery.state, delivery.attempts) == ("failed", 5)
    assert smtp.handler.received == [] and _undeliverable(plane, owner.email) is None
    assert worker.log().count("Retry in") == 4
