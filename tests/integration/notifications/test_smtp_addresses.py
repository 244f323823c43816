"""Addresses beyond ASCII (``jörg@example.de`` passes EmailStr) and errors the SMTP
conversation did not expect, driven in-process with ``sending.drain`` against real SMTP
servers: aiosmtpd as configured by default (no SMTPUTF8) and one that offers SMTPUTF8.

Each test sends the odd email, then ordinary ones through the same mailer (the process's
kept connection): the odd one is settled, and the ones after it still go out, over a
connection that was not left in the middle of a mail transaction."""
from __future__ import annotations

import secrets
import smtplib
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update

from domain.notifications import sending
from domain.notifications.mail import Email, Mailer, SendResult
from domain.notifications.models import EmailDelivery, UndeliverableAddress
from domain.notifications.smtp import SmtpMailer
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.smtp_server import SmtpServer, smtp_server
from tests.support import refs


@pytest.fixture
def utf8_smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server that offers SMTPUTF8."""
    with smtp_server(smtputf8=True) as server:
        yield server


def _mailer(plane: Plane, server: SmtpServer) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", server.port, sender=plane.settings.mail_from, starttls=False)


def _odd_then_ordinary(plane: Plane, mailer: Mailer, odd: str) -> tuple[uuid.UUID, dict[uuid.UUID, str],
                                                                         list[Counter[str]]]:
    """Send an email to ``odd``, then two to ordinary addresses, through the same mailer (the
    process's kept connection): the events and what each drain did."""
    (first,) = plane.queue_emails([odd])
    drained = [sending.drain(plane.provider, mailer, plane.sealer())]
    ordinary = [refs.email("after-odd") for _ in range(2)]
    events = dict(zip(plane.queue_emails(ordinary), ordinary, strict=True))
    drained.append(sending.drain(plane.provider, mailer, plane.sealer()))
    return first, events, drained


def _row(plane: Plane, event: uuid.UUID) -> EmailDelivery:
    return plane.delivery(event)


def _undeliverable(plane: Plane, address: str) -> UndeliverableAddress | None:
    with plane.provider.management() as session:
        return session.scalar(select(UndeliverableAddress).where(UndeliverableAddress.address == address))


def _unicode_address() -> str:
    return f"jörg-{secrets.token_hex(4)}@example.de"


def test_a_recipient_beyond_ascii_fails_before_mail_when_the_server_lacks_smtputf8_and_is_not_blocked(
        plane: Plane, smtp: SmtpServer, utf8_smtp: SmtpServer) -> None:
    address = _unicode_address()
    mailer = _mailer(plane, smtp)
    try:
        odd, ordinary, drained = _odd_then_ordinary(plane, mailer, address)
    finally:
        mailer.close()
    assert drained == [{"failed": 1}, {"sent": 2}]
    row = _row(plane, odd)
    assert (row.state, row.attempts, row.payload) == ("failed", 1, None)
    assert "SMTPUTF8" in (row.error or "")
    for event, to in ordinary.items():
        assert _row(plane, event).state == "sent"
        assert [r.rcpt_tos for r in smtp.handler.to(to)] == [[to]]
    assert len(smtp.handler.received) == 2 and len(smtp.handler.connections()) == 1
    # The relay's shortcoming, not the address's: once the relay offers SMTPUTF8, it gets email.
    assert _undeliverable(plane, address) is None
    (later,) = plane.queue_emails([address])  # queued, not suppressed
    upgraded = _mailer(plane, utf8_smtp)
    try:
        assert sending.drain(plane.provider, upgraded, plane.sealer()) == {"sent": 1}
    finally:
        upgraded.close()
    assert _row(plane, later).state == "sent" and len(utf8_smtp.handler.to(address)) == 1


def test_a_recipient_beyond_ascii_goes_out_with_smtputf8_when_the_server_offers_it(
        plane: Plane, utf8_smtp: SmtpServer) -> None:
    address = _unicode_address()
    mailer = _mailer(plane, utf8_smtp)
    try:
        odd, ordinary, drained = _odd_then_ordinary(plane, mailer, address)
    finally:
        mailer.close()
    assert drained == [{"sent": 1}, {"sent": 2}]
    assert (_row(plane, odd).state, _row(plane, odd).attempts) == ("sent", 1)
    (received,) = utf8_smtp.handler.to(address)
    assert received.rcpt_tos == [address] and "SMTPUTF8" in received.mail_options
    # The header names the address as it is (RFC 6532), not as an encoded word.
    assert f"\r\nTo: {address}\r\n".encode() in received.data
    for to in ordinary.values():
        (plain,) = utf8_smtp.handler.to(to)
        assert plain.mail_options == ()  # an ASCII envelope does not ask for it
    assert len(utf8_smtp.handler.connections()) == 1 and _undeliverable(plane, address) is None


@pytest.mark.parametrize("error", [RuntimeError, SoftTimeLimitExceeded])
def test_an_unexpected_error_before_data_drops_the_connection_and_retries_the_email(
        plane: Plane, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, error: type[Exception]) -> None:
    poisoned = refs.email("poisoned")
    rcpt = smtplib.SMTP.rcpt

    def failing_rcpt(self: smtplib.SMTP, recip: str, options: Any = ()) -> tuple[int, bytes]:
        if recip == poisoned:  # a bug (or the task's soft time limit) between MAIL and RCPT
            raise error("not what the conversation expected")
        return rcpt(self, recip, options)

    monkeypatch.setattr(smtplib.SMTP, "rcpt", failing_rcpt)
    mailer = _mailer(plane, smtp)
    try:
        odd, ordinary, drained = _odd_then_ordinary(plane, mailer, poisoned)
        # Nothing of the email went out: it is retried, not refused, and the address is not blocked.
        # Kept after MAIL with no RSET, the connection would answer the next MAIL with 503.
        assert drained == [{"retry": 1}, {"sent": 2}]
        row = _row(plane, odd)
        assert (row.state, row.attempts) == ("retry", 1) and row.payload is not None
        assert error.__name__ in (row.error or "") and _undeliverable(plane, poisoned) is None
        assert sorted(t for r in smtp.handler.received for t in r.rcpt_tos) == sorted(ordinary.values())
        monkeypatch.undo()  # the cause passed: the retry goes out, once
        assert plane.make_retries_due(odd) == 1
        assert sending.drain(plane.provider, mailer, plane.sealer()) == {"sent": 1}
    finally:
        mailer.close()
    assert (_row(plane, odd).state, _row(plane, odd).attempts) == ("sent", 2)
    assert len(smtp.handler.to(poisoned)) == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_mid_conversation_propagates_and_drops_the_connection(
        plane: Plane, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]) -> None:
    rcpt = smtplib.SMTP.rcpt
    interrupted = refs.email("interrupted")

    def failing_rcpt(self: smtplib.SMTP, recip: str, options: Any = ()) -> tuple[int, bytes]:
        if recip == interrupted:
            raise error
        return rcpt(self, recip, options)

    monkeypatch.setattr(smtplib.SMTP, "rcpt", failing_rcpt)
    mailer = _mailer(plane, smtp)
    ordinary = refs.email("after-interrupt")
    try:
        with pytest.raises(error):
            mailer.send(Email(key="interrupted", to=interrupted, subject="s", text="t", html="<p>t</p>"))
        # Left after MAIL, the kept connection would answer the next MAIL with 503.
        mailer.send(Email(key="after", to=ordinary, subject="s", text="t", html="<p>t</p>"))
    finally:
        mailer.close()
    assert [r.rcpt_tos for r in smtp.handler.received] == [[ordinary]]


class FlakyMailer:
    """A transport that fails in a way the sending stage does not know for one address."""

    def __init__(self, failing: str, *, idempotent: bool) -> None:
        self.failing, self.idempotent = failing, idempotent
        self.sent: list[str] = []

    def send(self, email: Email) -> SendResult:
        """Raise for the failing address, keep the others."""
        if email.to == self.failing:
            raise RuntimeError("a bug in the transport")
        self.sent.append(email.to)
        return SendResult(f"<{email.key}>")


@pytest.mark.parametrize(("idempotent", "state"), [(False, "unconfirmed"), (True, "retry")])
def test_an_error_no_transport_names_settles_the_email_as_a_dead_attempt_and_the_batch_goes_on(
        plane: Plane, idempotent: bool, state: str) -> None:
    # As sending.sweep settles an attempt that died: it may have gone, so it is not sent
    # again, unless sending twice delivers once (the Maildir).
    failing = refs.email("flaky")
    mailer = FlakyMailer(failing, idempotent=idempotent)
    odd, ordinary, drained = _odd_then_ordinary(plane, mailer, failing)
    assert drained == [{state: 1}, {"sent": 2}]
    row = _row(plane, odd)
    assert (row.state, row.attempts) == (state, 1) and "RuntimeError" in (row.error or "")
    assert (row.payload is not None) is idempotent and (row.due_at is not None) is idempotent
    assert sorted(mailer.sent) == sorted(ordinary.values())


@pytest.mark.parametrize(("spent", "state"), [(sending.GIVE_UP_MIN_ATTEMPTS - 1, "failed"), (0, "retry")])
def test_an_error_no_transport_names_on_an_idempotent_transport_is_not_retried_past_the_give_up_time(
        plane: Plane, spent: int, state: str) -> None:
    # Past the give-up time only once it spent its attempts: a day of waiting is not a day of failures.
    failing = refs.email("flaky-old")
    (event,) = plane.queue_emails([failing])
    with plane.provider.management() as session:  # recorded a day ago (moved back, not waited for)
        session.execute(update(EmailDelivery).where(EmailDelivery.event_id == event)
                        .values(created_at=EmailDelivery.created_at - sending.GIVE_UP_AFTER, attempts=spent))
        session.commit()
    mailer = FlakyMailer(failing, idempotent=True)
    assert sending.drain(plane.provider, mailer, plane.sealer()) == {state: 1}
    row = _row(plane, event)
    assert (row.state, row.attempts) == (state, spent + 1)
    if state == "failed":
        assert row.payload is None and "gave up" in (row.error or "")
    else:
        assert row.payload is not None and row.due_at is not None
