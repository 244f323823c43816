"""Email through a real SMTP server (aiosmtpd on 127.0.0.1): both parts, the headers, the
recipient's language and the tenant's branding; STARTTLS with a login; an invitation whose
link travels in the body only (never in a header or a log)."""
from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select

from domain.notifications import branding, deliveries
from domain.notifications.mail import message_id
from domain.notifications.models import EmailDelivery
from domain.translations import services as translations
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready, parts
from tests.integration.notifications.smtp_server import PASSWORD, USERNAME, SmtpServer
from tests.support import processes, refs, tenants
from tests.support.waiting import wait_for

LINK = re.compile(r"/identity/invitations/([A-Za-z0-9_-]{20,100})")


def test_an_event_reaches_each_recipient_in_both_parts_in_their_language_with_the_branding(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "employee"), name="Acme Org")
    german, english = org.member("employee"), org.member("owner")
    with plane.provider.management() as session:
        translations.set_user_locale(session, plane.catalogues(), german.user_id, "de")
        branding.set_branding(session, org.id, display_name="Acme Notices",
                              sender_address="help@acme.example", logo_url="https://acme.example/logo.png")
        session.commit()
    workers("smtp", **smtp.env())
    sent = {account.email: plane.announce(asset_ready(org.id, account.user_id, "q3 <report>.pdf"))
            for account in (german, english)}
    wait_for(lambda: len(smtp.handler.received) == 2, timeout=60, message="two emails")

    (de,) = smtp.handler.to(german.email)
    message = de.message
    text, html = parts(message)
    assert message["Subject"] == "q3 <report>.pdf ist bereit"
    assert message["Content-Language"] == "de" and '<html lang="de">' in html
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Acme Notices", "no-reply@allotment.localhost")
    assert message["Reply-To"] == "help@acme.example" and message["To"] == german.email
    assert message["Message-ID"] == message_id(f"{sent[german.email].event_id}:{german.email}",
                                               plane.settings.mail_from)
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Hallo " in text and "q3 <report>.pdf wurde verarbeitet" in text
    assert "q3 &lt;report&gt;.pdf wurde verarbeitet" in html and "<report>" not in html  # escaped
    assert 'src="https://acme.example/logo.png"' in html
    assert de.mail_from == "no-reply@allotment.localhost" and de.rcpt_tos == [german.email]

    (en,) = smtp.handler.to(english.email)
    assert en.message["Subject"] == "q3 <report>.pdf is ready" and en.message["Content-Language"] == "en"
    assert "was processed and can be downloaded" in parts(en.message)[0]

    for account in (german, english):
        plane.wait_handled(sent[account.email])
        (delivery,) = plane.wait_settled(sent[account.email].event_id)
        assert (delivery.state, delivery.attempts, delivery.recipient) == ("sent", 1, account.email)
        (notice,) = plane.notices(org.id, account.user_id)
        # Stored when the email was handed to the sending stage; shown as what became of it.
        assert (notice.category, notice.email_status, notice.email_error) == ("assets", "queued", None)
        assert plane.shown(org.id, account.user_id) == {notice.id: "sent"}
    assert plane.notices(org.id, german.user_id)[0].title == "q3 <report>.pdf ist bereit"


def test_starttls_and_a_login_are_used_when_configured(
        plane: Plane, secure_smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    workers("smtp-tls", **secure_smtp.env())
    envelope = plane.announce(asset_ready(org.id, owner.user_id))
    wait_for(lambda: secure_smtp.handler.to(owner.email), timeout=60, message="the email over TLS")
    (received,) = secure_smtp.handler.to(owner.email)
    assert received.tls and received.login == USERNAME
    plane.wait_handled(envelope)
    assert plane.wait_settled(envelope.event_id)[0].state == "sent"
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "sent"}


def test_an_invitation_carries_its_link_in_the_body_only_and_no_log_holds_a_secret(
        plane: Plane, secure_smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "admin"))
    worker = workers("smtp-invite", **secure_smtp.env())
    client: FlaskClient = plane.app.test_client()
    admin = tenants.sign_in(client, org.member("admin"), org.slug)
    email = refs.email("invitee")
    response = client.post("/api/v1/iam/invitations", headers=admin.bearer,
                           json={"email": email, "role": "employee"})
    assert response.status_code == 202, response.get_data(as_text=True)
    wait_for(lambda: secure_smtp.handler.to(email), timeout=60, message="the invitation email")
    (received,) = secure_smtp.handler.to(email)
    message = received.message
    text, html = parts(message)
    match = LINK.search(text)
    assert match, text
    token = match.group(1)
    assert token in html and message["Subject"] == f"You are invited to {org.name}"
    head = received.data.split(b"\r\n\r\n", 1)[0].decode()
    assert token not in head and "invitations" not in head
    log = worker.log()
    assert "invitation" in log.lower()  # the worker did log its work ...
    assert token not in log and PASSWORD not in log  # ... and no secret
    # The email waited for the sender sealed, and is not kept once sent.
    (delivery,) = wait_for(lambda: _settled_to(plane, email), timeout=30, message="the delivery settled")
    assert (delivery.state, delivery.payload) == ("sent", None)


def _settled_to(plane: Plane, address: str) -> list[EmailDelivery]:
    with plane.provider.management() as session:
        rows = list(session.scalars(select(EmailDelivery).where(EmailDelivery.recipient == address)))
    return rows if rows and all(row.state != "sending" for row in rows) else []


def test_a_queued_email_is_sealed_in_its_row(plane: Plane) -> None:
    address = refs.email("sealed")
    (event,) = plane.queue_emails([address], subject="Secret link inside")
    row = plane.delivery(event)
    assert row.state == "queued" and row.payload is not None
    assert address not in row.payload and "Secret link inside" not in row.payload  # not readable as is
    email = deliveries.unseal_email(plane.sealer(), row.payload)
    assert email is not None and (email.to, email.subject, email.text) == (address, "Secret link inside",
                                                                         f"to {address}")
