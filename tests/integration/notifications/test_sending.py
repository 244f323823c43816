"""The sending stage (``domain.notifications.sending``): queued emails claimed in batches and
sent over one kept connection, each started once whatever the number of senders, a transient
failure that holds its batch, a payload sealed under another key, what the notices API
shows of a queued email, and a sender killed mid-batch.

Most tests drive the stage in-process (``sending.drain`` and its parts) against a real SMTP
server and the package's PostgreSQL; the last two use real workers, woken by beat's
``email-sender`` job sent through the broker."""
from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from domain.db.provider import MANAGEMENT
from domain.identity.services import PasswordSealer
from domain.notifications import sending
from domain.notifications.models import EmailDelivery, UndeliverableAddress
from domain.notifications.smtp import SmtpMailer
from tests.integration.notifications.conftest import Plane, group_gone
from tests.integration.notifications.events import payment_failed
from tests.integration.notifications.smtp_server import USERNAME, Certificate, SmtpServer
from tests.support import pages, processes, refs, tenants
from tests.support.waiting import wait_for

NOTICES = "/api/v1/notifications/notices"


@pytest.fixture
def mailers(plane: Plane, smtp: SmtpServer) -> Iterator[Callable[[], SmtpMailer]]:
    """SMTP mailers on the test's server (one connection each), closed when the test ends."""
    made: list[SmtpMailer] = []

    def make() -> SmtpMailer:
        mailer = SmtpMailer("127.0.0.1", smtp.port, sender=plane.settings.mail_from, starttls=False)
        made.append(mailer)
        return mailer

    yield make
    for mailer in made:
        mailer.close()


def _rows(plane: Plane, events: list[uuid.UUID]) -> list[EmailDelivery]:
    with plane.provider.management() as session:
        return list(session.scalars(select(EmailDelivery).where(EmailDelivery.event_id.in_(events))))


def _autocommit(plane: Plane) -> Connection:
    """A connection to the management database as a sender holds one (each statement commits)."""
    engine = plane.provider.engine(plane.provider.url_of(MANAGEMENT))
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _addresses(count: int, prefix: str) -> list[str]:
    return [refs.email(f"{prefix}{i:03d}") for i in range(count)]


def _received_once_each(smtp: SmtpServer, addresses: list[str]) -> None:
    counts = Counter(a for r in smtp.handler.received for a in r.rcpt_tos)
    assert counts == Counter(addresses), {a: n for a, n in counts.items() if n != 1}


def test_a_batch_goes_out_over_the_kept_connection_each_row_sent_once(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    addresses = _addresses(2 * sending.BATCH + 7, "batch")  # three batches
    events = plane.queue_emails(addresses)
    woken: list[int] = []
    outcomes = sending.drain(plane.provider, mailers(), plane.sealer(), more=lambda: woken.append(1))
    assert outcomes == {"sent": len(addresses)}
    assert len(woken) == 2  # each full batch wakes another sender to share the rest
    rows = _rows(plane, events)
    assert Counter((r.state, r.attempts) for r in rows) == {("sent", 1): len(addresses)}
    assert all(r.payload is None and r.claimed_until is None and r.finished_at for r in rows)
    _received_once_each(smtp, addresses)
    assert len(smtp.handler.connections()) == 1  # one connection for every batch


def test_two_senders_draining_at_once_never_send_an_email_twice(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    addresses = _addresses(120, "race")
    events = plane.queue_emails(addresses)
    start = threading.Barrier(2)
    results: list[Counter[str] | BaseException] = [Counter(), Counter()]

    def sender(i: int, mailer: SmtpMailer) -> None:
        try:
            start.wait(timeout=30)
            results[i] = sending.drain(plane.provider, mailer, plane.sealer(), batch=5)  # many claims each
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=sender, args=(i, mailers())) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    assert sum((r for r in results if isinstance(r, Counter)), Counter()) == {"sent": len(addresses)}
    _received_once_each(smtp, addresses)
    assert Counter((r.state, r.attempts) for r in _rows(plane, events)) == {("sent", 1): len(addresses)}


def test_a_sender_whose_lease_ran_out_does_not_start_what_another_sender_took(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    addresses = _addresses(8, "lease")
    events = plane.queue_emails(addresses)
    slow, fast = (_autocommit(plane) for _ in range(2))
    with slow, fast:
        held = sending.claim(slow)
        assert sorted(r.recipient for r in held) == sorted(addresses)
        assert sending.claim(fast) == []  # leased: not claimable
        # The slow sender's lease runs out (shortened here rather than waited for).
        with plane.provider.management() as session:
            session.execute(update(EmailDelivery).where(EmailDelivery.event_id.in_(events))
                            .values(claimed_until=func.now() - timedelta(seconds=1)))
            session.commit()
        taken = sending.claim(fast)
        assert sorted(r.id for r in taken) == sorted(r.id for r in held)
        sent = sending.send_batch(plane.provider, fast, mailers(), plane.sealer(), taken)
        assert sent == ({"sent": 8}, False)
        # The slow sender wakes up with its stale batch: every row is started already.
        assert sending.send_batch(plane.provider, slow, mailers(), plane.sealer(), held) == ({}, False)
    _received_once_each(smtp, addresses)
    assert Counter((r.state, r.attempts) for r in _rows(plane, events)) == {("sent", 1): 8}


def test_a_sender_whose_lease_ran_out_does_not_start_an_email_another_sender_put_back_to_retry(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    addresses = _addresses(3, "not-due")
    events = plane.queue_emails(addresses)
    slow, fast = (_autocommit(plane) for _ in range(2))
    with slow, fast:
        held = sending.claim(slow)
        with plane.provider.management() as session:  # the slow sender's lease runs out
            session.execute(update(EmailDelivery).where(EmailDelivery.event_id.in_(events))
                            .values(claimed_until=func.now() - timedelta(seconds=1)))
            session.commit()
        taken = sending.claim(fast)
        smtp.handler.defer = 1  # the fast sender's first email is deferred: retry, due in 10-15 s
        assert sending.send_batch(plane.provider, fast, mailers(), plane.sealer(), taken) == (
            {"retry": 1, "sent": 2}, False)
        # The slow sender's stale batch holds a row in "retry" that is not due: it is not started.
        assert sending.send_batch(plane.provider, slow, mailers(), plane.sealer(), held) == ({}, False)
    rows = _rows(plane, events)
    assert Counter((r.state, r.attempts) for r in rows) == {("retry", 1): 1, ("sent", 1): 2}
    (deferred,) = [r for r in rows if r.state == "retry"]
    assert smtp.handler.to(deferred.recipient) == []


def test_a_transient_failure_of_the_server_holds_the_rest_of_the_batch_without_spending_their_attempts(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    addresses = _addresses(5, "hold")
    events = plane.queue_emails(addresses)
    smtp.handler.defer_mail = 1  # the server is busy for the first email (451 to MAIL), then takes mail
    mailer = mailers()
    assert sending.drain(plane.provider, mailer, plane.sealer()) == {"retry": 1}
    rows = _rows(plane, events)
    (deferred,) = [r for r in rows if r.state == "retry"]
    held = [r for r in rows if r is not deferred]
    assert deferred.attempts == 1 and "451" in (deferred.error or "") and deferred.due_at is not None
    assert {(r.state, r.attempts) for r in held} == {("queued", 0)}
    # Held for the same pause (not for the rest of the batch's lease, sending.LEASE): released
    # when the deferred email is due again, give or take the time between the two statements.
    with plane.provider.management() as session:
        now = session.scalar(select(func.now()))
    for row in held:
        assert row.claimed_until is not None
        assert deferred.due_at <= row.claimed_until <= now + timedelta(seconds=15), (row.claimed_until, now)
    assert smtp.handler.received == [] and not sending.anything_due(plane.provider)

    # The pause passes (moved to now here rather than waited for): all five go, once.
    with plane.provider.management() as session:
        session.execute(update(EmailDelivery).where(EmailDelivery.event_id.in_(events))
                        .values(due_at=func.now(), claimed_until=None))
        session.commit()
    assert sending.drain(plane.provider, mailer, plane.sealer()) == {"sent": 5}
    attempts = {r.recipient: (r.state, r.attempts) for r in _rows(plane, events)}
    assert attempts == {a: ("sent", 2 if a == deferred.recipient else 1) for a in addresses}
    _received_once_each(smtp, addresses)


def test_a_deferred_recipient_is_retried_alone_and_the_batch_goes_on(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    addresses = _addresses(4, "greylisted")
    events = plane.queue_emails(addresses)
    smtp.handler.defer = 1  # the first recipient is deferred (451 to RCPT: greylisting)
    assert sending.drain(plane.provider, mailers(), plane.sealer()) == {"retry": 1, "sent": 3}
    rows = {r.recipient: r for r in _rows(plane, events)}
    (deferred,) = [r for r in rows.values() if r.state == "retry"]
    assert deferred.attempts == 1 and "451" in (deferred.error or "") and deferred.due_at is not None
    assert {(r.state, r.attempts) for r in rows.values() if r is not deferred} == {("sent", 1)}
    assert sorted(t for m in smtp.handler.received for t in m.rcpt_tos) == sorted(
        a for a in addresses if a != deferred.recipient)


def test_a_message_refused_after_its_data_is_settled_failed_and_the_batch_goes_on(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    events = plane.queue_emails(_addresses(3, "filtered"))
    smtp.handler.refuse_data = 1  # 554 to the end of the first message's data (a content filter)
    assert sending.drain(plane.provider, mailers(), plane.sealer()) == {"failed": 1, "sent": 2}
    rows = _rows(plane, events)
    (refused,) = [r for r in rows if r.state == "failed"]
    assert (refused.attempts, refused.payload) == (1, None) and "554" in (refused.error or "")
    assert _undeliverable_count(plane, refused.recipient) == 0  # the message was refused, not the address
    assert sorted(t for r in smtp.handler.received for t in r.rcpt_tos) == sorted(
        r.recipient for r in rows if r is not refused)
    assert len(smtp.handler.connections()) == 1


def _undeliverable_count(plane: Plane, address: str) -> int:
    with plane.provider.management() as session:
        return int(session.scalar(select(func.count()).select_from(UndeliverableAddress)
                                  .where(UndeliverableAddress.address == address)) or 0)


def test_a_misconfigured_transport_spends_no_attempt_and_the_emails_wait(
        plane: Plane, secure_smtp: SmtpServer, certificate: Certificate) -> None:
    addresses = _addresses(3, "misconfigured")
    events = plane.queue_emails(addresses)
    wrong = SmtpMailer("127.0.0.1", secure_smtp.port, sender=plane.settings.mail_from, username=USERNAME,
                       password="not-the-password", starttls=True, ca_file=str(certificate.cert))
    try:
        assert sending.drain(plane.provider, wrong, plane.sealer()) == {"retry": 1}
    finally:
        wrong.close()
    rows = _rows(plane, events)
    assert {(r.state, r.attempts) for r in rows} <= {("retry", 0), ("queued", 0)}
    (tried,) = [r for r in rows if r.state == "retry"]
    assert "login" in (tried.error or "")
    with plane.provider.management() as session:
        now = session.scalar(select(func.now()))
    assert tried.due_at is not None
    assert tried.due_at >= now + sending.MISCONFIGURED_PAUSE - timedelta(seconds=5)
    assert secure_smtp.handler.received == [] and not sending.anything_due(plane.provider)


def test_a_payload_sealed_under_another_key_is_settled_failed(
        plane: Plane, smtp: SmtpServer, mailers: Callable[[], SmtpMailer]) -> None:
    other = PasswordSealer("another-secret-key-than-the-workers-0123456789")  # SECRET_KEY rotated
    (event,) = plane.queue_emails([refs.email("rotated")], sealer=other)
    assert sending.drain(plane.provider, mailers(), plane.sealer()) == {"failed": 1}
    row = plane.delivery(event)
    assert (row.state, row.attempts, row.payload) == ("failed", 1, None)
    assert "cannot be unsealed" in (row.error or "")
    assert smtp.handler.received == []


def test_the_notices_api_and_page_show_what_became_of_a_queued_email(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "employee"))
    owner, employee = org.member("owner"), org.member("employee")
    client: FlaskClient = plane.app.test_client()
    smtp.handler.holding = True  # the owner's email stays "sending" until released
    smtp.handler.refuse.add(employee.email)
    workers("notices-api", **smtp.env())
    browsers = {role: pages.signed_in_browser(plane.app, pages.Member(
        org.member(role).email, org.member(role).user_id, org.id, org.slug))
        for role in ("owner", "employee")}

    def listed(role: str) -> list[str]:
        """What the API says of the role's emails, as the page (in German) shows it."""
        response = client.get(NOTICES, headers=tenants.sign_in(client, org.member(role), org.slug).bearer)
        assert response.status_code == 200, response.get_data(as_text=True)
        states = [item["email_status"] for item in response.json["items"]]
        page = browsers[role].get("/notifications", headers={"Accept-Language": "de"}).get_data(as_text=True)
        shown = re.findall(r'data-email="(\w+)"><small>([^<]+)</small>', page)
        assert [state for state, _ in shown] == states  # the page says what the API says
        return [f"{state}: {label}" for state, label in shown]

    to_owner = plane.announce(payment_failed(org.id, owner.user_id))
    wait_for(lambda: smtp.handler.to(owner.email), timeout=60, message="the owner's email at the server")
    plane.wait_handled(to_owner)
    assert plane.delivery(to_owner.event_id).state == "sending"
    assert listed("owner") == ["queued: E-Mail ist unterwegs"]  # in the sending stage's hands
    smtp.handler.holding = False
    smtp.handler.release.set()
    plane.wait_settled(to_owner.event_id)
    assert listed("owner") == ["sent: E-Mail gesendet"]

    to_employee = plane.announce(payment_failed(org.id, employee.user_id))
    plane.wait_settled(to_employee.event_id)
    plane.wait_handled(to_employee)
    assert listed("employee") == ["failed: Die E-Mail konnte nicht gesendet werden"]
    # What is stored is what the notice knew when it was written.
    stored = [n.email_status for a in (owner, employee) for n in plane.notices(org.id, a.user_id)]
    assert stored == ["queued", "queued"]


def test_a_sender_killed_mid_batch_leaves_one_row_sending_and_the_next_sender_sends_the_rest(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    addresses = _addresses(6, "killed")
    events = plane.queue_emails(addresses)
    smtp.handler.holding = True
    first = workers("killed-mid-batch", **smtp.env())
    assert plane.run_email_sender_job() == {"died": 0, "due": True}  # wakes a sender
    wait_for(lambda: smtp.handler.received, timeout=60, message="the first email at the server")
    first.kill()  # the server holds its answer to DATA: mid-send, with five more claimed
    wait_for(lambda: group_gone(first), timeout=30, message="the killed worker and its children to be gone")
    smtp.handler.holding = False
    smtp.handler.release.set()
    (in_flight,) = smtp.handler.received

    rows = {r.recipient: r for r in _rows(plane, events)}
    assert (rows[in_flight.rcpt_tos[0]].state, rows[in_flight.rcpt_tos[0]].attempts) == ("sending", 1)
    unstarted = [r for a, r in rows.items() if a != in_flight.rcpt_tos[0]]
    assert {(r.state, r.attempts) for r in unstarted} == {("queued", 0)}
    assert all(r.claimed_until is not None for r in unstarted)  # still the dead sender's lease
    workers("next-sender", **smtp.env())
    assert plane.run_email_sender_job() == {"died": 0, "due": False}  # nothing due while leased

    # The lease ends (shortened here: it is sending.LEASE, five minutes).
    with plane.provider.management() as session:
        session.execute(update(EmailDelivery).where(EmailDelivery.event_id.in_(events),
                                                    EmailDelivery.state == "queued")
                        .values(claimed_until=func.now()))
        session.commit()
    assert plane.run_email_sender_job()["due"] is True

    def rest_sent() -> Counter[tuple[str, int]]:
        found = Counter((r.state, r.attempts) for r in _rows(plane, events))
        return found if found[("sent", 1)] == len(unstarted) else Counter()

    states = wait_for(rest_sent, timeout=60, message="the unstarted emails sent by the next sender")
    assert states == {("sent", 1): len(unstarted), ("sending", 1): 1}  # the killed attempt stays put
    _received_once_each(smtp, addresses)
