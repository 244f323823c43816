"""The sending stage's pure parts: the backoff between attempts (10 s, 20 s, 40 s ... at most
an hour, plus up to half as much jitter) and the sealed payload of a queued email."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from domain.identity.services import PasswordSealer
from domain.notifications import deliveries, sending
from domain.notifications.mail import Email

EMAIL = Email(key="event-1:ada@example.com", to="ada@example.com", subject="Grüße",
              text="Your link: https://x.example/identity/invitations/secret-token-123",
              html="<p>secret-token-123</p>", language="de", sender_name="Acme", reply_to="help@acme.example")


@pytest.mark.parametrize(("attempts", "base"), [(1, 10), (2, 20), (3, 40), (4, 80), (9, 2560), (10, 3600),
                                                (30, 3600)])
def test_the_backoff_doubles_from_ten_seconds_to_an_hour_with_jitter(attempts: int, base: int) -> None:
    pauses = {sending.backoff(attempts) for _ in range(200)}
    assert all(timedelta(seconds=base) <= p <= timedelta(seconds=base * 1.5) for p in pauses), sorted(pauses)
    assert len(pauses) > 1  # jittered: senders that failed together do not retry together


def test_a_sealed_email_unseals_to_the_same_email_and_hides_its_content() -> None:
    sealer = PasswordSealer("unit-test-secret-key-0123456789abcdef")
    sealed = deliveries.seal_email(sealer, EMAIL)
    assert "secret-token-123" not in sealed and "ada@example.com" not in sealed
    assert deliveries.unseal_email(sealer, sealed) == EMAIL
    other = replace(EMAIL, sender_name=None, reply_to=None)
    assert deliveries.unseal_email(sealer, deliveries.seal_email(sealer, other)) == other


def test_a_payload_sealed_under_another_key_unseals_to_nothing() -> None:
    sealed = deliveries.seal_email(PasswordSealer("the-old-secret-key-0123456789abcdef"), EMAIL)
    assert deliveries.unseal_email(PasswordSealer("the-new-secret-key-0123456789abcdef"), sealed) is None
