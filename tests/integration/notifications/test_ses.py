"""Email through Amazon SES: moto's server mode over real HTTP on 127.0.0.1, reached by the
workers through boto3's endpoint URL. A sent email is the raw message we built; a sender SES
refuses is a permanent failure (recorded, not retried); a bounce SES reports through SNS to
our feedback endpoint (a real gunicorn) marks the address undeliverable."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends
from sqlalchemy import func, select, update

from domain.identity.models import User
from domain.notifications import sending
from domain.notifications.deliveries import is_undeliverable
from domain.notifications.mail import sender_address
from domain.notifications.ses import SesMailer
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready, parts
from tests.support import processes, refs, tenants
from tests.support.waiting import wait_for
from workers.embedded import free_port

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto-test-access-key", "AWS_SECRET_ACCESS_KEY": "moto-test-secret-key",
               "AWS_DEFAULT_REGION": REGION}
FEEDBACK_TOKEN = "sns-feedback-token-0123456789"
# moto's canned permanent bounce names this recipient as failed (moto/ses/feedback.py).
BOUNCED = "recipient1@example.com"


@dataclass(frozen=True)
class Ses:
    """moto on a free port, and clients of it."""

    endpoint_url: str

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on the moto server."""
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def env(self, **extra: str) -> dict[str, str]:
        """A worker's settings to send through this server."""
        return {"MAIL_TRANSPORT": "ses", "SES_ENDPOINT_URL": self.endpoint_url, "SES_REGION": REGION,
                **CREDENTIALS, **extra}

    @staticmethod
    def sent() -> list[Any]:
        """Every raw message moto's SES accepted (the server runs in this process)."""
        return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


@pytest.fixture(scope="module")
def ses(plane: Plane) -> Iterator[Ses]:
    """moto in server mode, with the platform's sender verified."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        found = Ses(f"http://127.0.0.1:{port}")
        found.client("ses").verify_email_identity(EmailAddress=sender_address(plane.settings.mail_from))
        yield found
    finally:
        server.stop()


def _sent_to(address: str) -> list[Any]:
    return [m for m in Ses.sent() if address in m.destinations]


def test_an_email_goes_through_ses_as_the_message_we_built(
        plane: Plane, ses: Ses, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    workers("ses", **ses.env())
    envelope = plane.announce(asset_ready(org.id, owner.user_id, "budget.xlsx"))
    (delivery,) = plane.wait_settled(envelope.event_id)
    (raw,) = _sent_to(owner.email)
    message = message_from_bytes(raw.raw_data.encode(), policy=policy.default)
    text, html = parts(message)  # type: ignore[arg-type]
    assert message["Subject"] == "budget.xlsx is ready" and message["Content-Language"] == "en"
    assert "budget.xlsx was processed" in text and "budget.xlsx was processed" in html
    assert (delivery.state, delivery.provider_id) == ("sent", raw.id)
    plane.wait_handled(envelope)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "sent"}


def test_a_sender_ses_refuses_is_a_permanent_failure_not_retried(
        plane: Plane, ses: Ses, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    workers("ses-unverified", **ses.env(MAIL_FROM="Nobody <nobody@unverified.example>"))
    envelope = plane.announce(asset_ready(org.id, owner.user_id))
    (delivery,) = plane.wait_settled(envelope.event_id)
    # One attempt, settled for good (a transient error would have left it "retry").
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    assert "MessageRejected" in (delivery.error or "") and delivery.due_at is None
    plane.wait_handled(envelope)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "failed"}
    assert _sent_to(owner.email) == []
    with plane.provider.management() as session:
        assert not is_undeliverable(session, owner.email)  # the sender was refused, not the address


@pytest.mark.parametrize("credentials", ["missing", "unobtainable"])
def test_credentials_boto_cannot_find_or_fetch_spend_no_attempt_and_the_emails_wait(
        plane: Plane, ses: Ses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credentials: str) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"  # "unobtainable": a credential process that fails
    config.write_text(f"[default]\ncredential_process = {shutil.which('false')}\n"
                      if credentials == "unobtainable" else "")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    events = plane.queue_emails([refs.email("no-aws") for _ in range(3)])
    mailer = SesMailer(REGION, sender=plane.settings.mail_from, endpoint_url=ses.endpoint_url)
    assert sending.drain(plane.provider, mailer, plane.sealer()) == {"retry": 1}
    rows = [plane.delivery(event) for event in events]
    assert {(r.state, r.attempts) for r in rows} <= {("retry", 0), ("queued", 0)}  # no attempt spent
    (tried,) = [r for r in rows if r.state == "retry"]
    assert "credentials" in (tried.error or "")
    with plane.provider.management() as session:
        now = session.scalar(select(func.now()))
    assert tried.due_at is not None
    assert tried.due_at >= now + sending.MISCONFIGURED_PAUSE - timedelta(seconds=5)
    assert not sending.anything_due(plane.provider)  # the rest of the batch waits as long


@contextlib.contextmanager
def _feedback_server(plane: Plane) -> Iterator[str]:
    server, url = processes.gunicorn("ses-feedback-web", {**plane.env, "SES_FEEDBACK_TOKEN": FEEDBACK_TOKEN},
                                     plane.logs)
    try:
        yield url
    finally:
        server.stop()


def test_a_bounce_reported_through_sns_marks_the_address_undeliverable(
        plane: Plane, ses: Ses, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    bouncing = tenants.add_member(plane.provider, org.id, "employee", account=tenants.create_account(
        plane.provider, prefix="bounce"))
    with plane.provider.management() as session:  # SES's simulator address for a bounce
        session.execute(_set_email(bouncing.user_id, "bounce@simulator.amazonses.com"))
        session.commit()
    bounced = tenants.add_member(plane.provider, org.id, "employee")
    with plane.provider.management() as session:
        session.execute(_set_email(bounced.user_id, BOUNCED))
        session.commit()
    domain = sender_address(plane.settings.mail_from).rpartition("@")[2]
    with _feedback_server(plane) as url:
        sns = ses.client("sns")
        topic = sns.create_topic(Name="ses-bounces")["TopicArn"]
        host = url.removeprefix("http://")
        sns.subscribe(TopicArn=topic, Protocol="http",
                      Endpoint=f"http://sns:{FEEDBACK_TOKEN}@{host}/api/v1/notifications/ses-feedback")
        ses.client("ses").set_identity_notification_topic(Identity=domain, NotificationType="Bounce",
                                                          SnsTopic=topic)
        workers("ses-bounce", **ses.env())
        first = plane.announce(asset_ready(org.id, bouncing.user_id))
        plane.wait_handled(first)

        def marked() -> bool:
            with plane.provider.management() as session:
                return is_undeliverable(session, BOUNCED)

        wait_for(marked, timeout=30, message="the bounce to reach the feedback endpoint")
        second = plane.announce(asset_ready(org.id, bounced.user_id))
        plane.wait_handled(second)
    assert _sent_to(BOUNCED) == []
    assert plane.delivery(second.event_id).state == "suppressed"  # recorded so: never queued
    assert plane.notices(org.id, bounced.user_id)[0].email_status == "suppressed"


def _set_email(user_id: Any, email: str) -> Any:
    """An account's address changed to one SES's simulator and moto's canned bounce use."""
    return update(User).where(User.id == user_id).values(email=email)
