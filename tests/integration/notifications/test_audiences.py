"""Who an event reaches, and how: the trial-ending reminder (beat, once per tenant) reaches
the tenant's owners and admins; a publication reaches its audience or every active member;
a tenant's event reaches no one who is not its active member (an operator by email only); each
person's choices decide between the notice and the email; the embedded Maildir is a real
mailbox Python's ``mailbox`` reads back."""
from __future__ import annotations

import mailbox
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update

from domain.db.base import utcnow
from domain.iam import services as iam
from domain.messaging.contracts.publications import PublicationPublishedV1
from domain.notifications import preferences
from domain.tenancy import trials
from domain.tenancy.models import Tenant
from domain.translations import services as translations
from tests.integration.notifications.conftest import Plane
from tests.integration.notifications.events import asset_ready, parts, payment_failed
from tests.integration.notifications.smtp_server import SmtpServer
from tests.support import processes, tenants
from tests.support.waiting import wait_for
from workers.publisher import publish


def test_a_trial_ending_soon_reminds_its_owners_and_admins_once(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "admin", "employee"), name="Trial Org")
    fresh = plane.tenant(("owner",))
    created = utcnow() - timedelta(days=25)
    with plane.provider.management() as session:
        session.execute(update(Tenant).where(Tenant.id == org.id).values(created_at=created))
        translations.set_user_locale(session, plane.catalogues(), org.member("admin").user_id, "de")
        session.commit()
    runs = [trials.remind_trials(plane.provider, now=utcnow(), trial_days=30, reminder_days=7)
            for _ in range(2)]
    ours = [e for e in runs[0] if e.tenant_id == str(org.id)]
    assert len(ours) == 1 and not [e for e in runs[1] if e.tenant_id == str(org.id)]
    assert not [e for run in runs for e in run if e.tenant_id == str(fresh.id)]  # 30 days to go: not yet
    workers("trials", **smtp.env())
    publish(plane.app.extensions["allotment.celery"], ours)
    plane.wait_handled(ours[0])
    wait_for(lambda: len(smtp.handler.received) == 2, timeout=30, message="two reminders")
    owner, admin, employee = (org.member(r) for r in ("owner", "admin", "employee"))
    (to_owner,), (to_admin,) = smtp.handler.to(owner.email), smtp.handler.to(admin.email)
    assert to_owner.message["Subject"].startswith("The trial of Trial Org ends on ")
    assert to_admin.message["Subject"].startswith("Die Testphase von Trial Org endet am ")
    assert "/purchases/checkout" in parts(to_owner.message)[0]
    assert [n.category for n in plane.notices(org.id, owner.user_id)] == ["billing"]
    assert plane.notices(org.id, employee.user_id) == [] and smtp.handler.to(employee.email) == []


def test_a_publication_reaches_its_audience_or_every_active_member(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "admin", "employee", "hr_manager"))
    owner, admin, employee, hr = (org.member(r) for r in ("owner", "admin", "employee", "hr_manager"))
    with plane.provider.management() as session:
        iam.set_active(session, org.id, hr.user_id, False, changed_by=None)
        session.commit()
    workers("publications", **smtp.env())
    everyone = plane.announce(PublicationPublishedV1(publication_id=uuid.uuid4(), tenant_id=org.id,
                                                     title="Holiday rota", author_name="Hana HR"))
    chosen = plane.announce(PublicationPublishedV1(publication_id=uuid.uuid4(), tenant_id=org.id,
                                                   title="Board memo", author_name="Olga Owner",
                                                   recipient_ids=[admin.user_id]))
    plane.wait_handled(everyone)
    plane.wait_handled(chosen)
    titles = {a.email: [n.title for n in plane.notices(org.id, a.user_id)]
              for a in (owner, admin, employee, hr)}
    assert titles == {owner.email: ["New publication: Holiday rota"],
                      admin.email: ["New publication: Holiday rota", "New publication: Board memo"],
                      employee.email: ["New publication: Holiday rota"], hr.email: []}
    sent = plane.wait_settled(everyone.event_id) + plane.wait_settled(chosen.event_id)
    assert sorted((d.recipient, d.state) for d in sent) == sorted(
        [(owner.email, "sent"), (admin.email, "sent"), (employee.email, "sent"), (admin.email, "sent")])
    assert len(smtp.handler.to(admin.email)) == 2 and smtp.handler.to(hr.email) == []


def test_a_tenants_event_reaches_only_its_active_members_and_operators(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "admin", "employee"))
    other = plane.tenant(("owner",))
    owner, admin, employee = (org.member(r) for r in ("owner", "admin", "employee"))
    stranger = other.member("owner")  # a real account, of another tenant only
    operator = tenants.create_account(plane.provider, operator=True)
    with plane.provider.management() as session:  # a member no more (the check is at handling)
        iam.set_active(session, org.id, employee.user_id, False, changed_by=None)
        session.commit()
    workers("members", **smtp.env())
    named = [owner, employee, stranger, operator, admin]
    nobody = uuid.uuid4()  # no account at all
    memo = plane.announce(PublicationPublishedV1(publication_id=uuid.uuid4(), tenant_id=org.id,
                                                 title="Board memo", author_name="Olga Owner",
                                                 recipient_ids=[a.user_id for a in named] + [nobody]))
    failed = plane.announce(payment_failed(org.id, stranger.user_id))  # mandatory category: still no one
    plane.wait_handled(memo)
    plane.wait_handled(failed)
    reached = [owner, operator, admin]  # the operator by email only: no page of the tenant is theirs
    assert {a.email: len(plane.notices(org.id, a.user_id)) for a in named} == {
        a.email: 1 if a in (owner, admin) else 0 for a in named}
    assert plane.notices(other.id, stranger.user_id) == [] and plane.notices(org.id, nobody) == []
    assert sorted((d.recipient, d.state) for d in plane.wait_settled(memo.event_id)) == sorted(
        (a.email, "sent") for a in reached)
    assert plane.deliveries(failed.event_id) == []
    assert sorted(r.message["To"] for r in smtp.handler.received) == sorted(a.email for a in reached)


def test_each_persons_choices_decide_between_the_notice_and_the_email(
        plane: Plane, smtp: SmtpServer, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner", "employee"))
    no_email, no_app = org.member("owner"), org.member("employee")
    with plane.provider.management() as session:
        preferences.set_preferences(session, no_email.user_id, {"assets": {"email": False}})
        preferences.set_preferences(session, no_app.user_id, {"assets": {"in_app": False}})
        session.commit()
    workers("choices", **smtp.env())
    events = []
    for account in (no_email, no_app):
        events.append(plane.announce(asset_ready(org.id, account.user_id)))
        events.append(plane.announce(payment_failed(org.id, account.user_id)))  # mandatory: both
    for envelope in events:
        plane.wait_handled(envelope)
    states = [[d.state for d in plane.deliveries(e.event_id)] for e in events]
    assert states[0] == []  # no email wanted: none recorded
    assert all(plane.wait_settled(e.event_id)[0].state == "sent" for e in events[1:])
    assert len(smtp.handler.received) == 3

    def notices_of(account: tenants.Account) -> list[tuple[str, str | None, str | None]]:
        """(category, email status stored, email status shown) of each notice, oldest first."""
        shown = plane.shown(org.id, account.user_id)
        return [(n.category, n.email_status, shown[n.id]) for n in plane.notices(org.id, account.user_id)]

    assert notices_of(no_email) == [("assets", None, None), ("billing", "queued", "sent")]
    assert notices_of(no_app) == [("billing", "queued", "sent")]  # of the asset, only its email
    assert [r.message["Subject"] for r in smtp.handler.to(no_email.email)] == ["Payment failed: Extra seats"]
    assert sorted(r.message["Subject"] for r in smtp.handler.to(no_app.email)) == [
        "Payment failed: Extra seats", "report.pdf is ready"]


def test_the_embedded_maildir_is_a_mailbox_python_reads_back(
        plane: Plane, workers: Callable[..., processes.Process]) -> None:
    org = plane.tenant(("owner",))
    owner = org.member("owner")
    folder = plane.settings.var_dir / "maildir-test"
    workers("maildir", VAR_DIR=str(folder))
    envelope = plane.announce(asset_ready(org.id, owner.user_id, "minutes.md"))
    plane.wait_handled(envelope)
    plane.deliver(envelope)  # a redelivery: the inbox skips it
    box = mailbox.Maildir(folder / "mail", factory=None, create=False)
    wait_for(lambda: len(box) == 1, timeout=10, message="one message in the Maildir")
    (message,) = list(box)
    assert message["To"] == owner.email and message["Subject"] == "minutes.md is ready"
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.get_payload()]
    assert kinds == ["text/plain", "text/html"]
    (delivery,) = plane.wait_settled(envelope.event_id)
    assert (delivery.state, delivery.attempts) == ("sent", 1)
    (notice,) = plane.notices(org.id, owner.user_id)
    assert plane.shown(org.id, owner.user_id) == {notice.id: "sent"}
