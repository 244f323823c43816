"""Invitations end to end with real workers: the email written into the Maildir, its link
accepted once, expiry, and an invitation whose inviter was cut off before the email went
out (the worker must not act for a revoked session)."""
from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from config.settings import Settings
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.iam.models import Invitation, TenantUser
from domain.identity import services as identity
from domain.identity.models import User
from domain.messaging.tables import inbox, outbox
from domain.notifications.models import EmailDelivery
from tests.integration.identity.conftest import ME, Org
from tests.integration.web.helpers import assert_refused
from tests.support import processes, refs, tenants
from tests.support.apps import web_app
from tests.support.locks import backend_pid, blocked_by
from tests.support.mailbox import link_secret, mail_to, maildir_of
from tests.support.services import REDIS_DB_OFFLINE, Services
from tests.support.tenants import Account, Tokens, sign_in, tokens_of
from tests.support.waiting import wait_for

INVITATIONS = "/api/v1/iam/invitations"
ACCEPT = "/api/v1/identity/invitations/accept"
NEW_PASSWORD = "invited person password 0123"
_LINK = re.compile(r"/identity/invitations/([A-Za-z0-9_-]{20,100})\b")
OFFLINE_DB = REDIS_DB_OFFLINE


# --- the Maildir a worker writes ---------------------------------------------------------

def invitation_token(message: EmailMessage) -> str:
    """The token in the accept link of an invitation email (in its bodies only)."""
    return link_secret(message, _LINK)


def wait_for_mail(maildir: Path, address: str) -> EmailMessage:
    """The one email to ``address``, once the worker has written it."""
    wait_for(lambda: mail_to(maildir, address), timeout=60, message=f"an email to {address}")
    (message,) = mail_to(maildir, address)
    return message


# --- the database's side -------------------------------------------------------------------

def delivery_of(provider: DataProvider, invitation_id: str) -> dict[str, Any]:
    """The outbox row of an invitation's email."""
    with provider.unscoped("management") as session:
        rows = session.execute(select(outbox).where(
            outbox.c.type == "iam.UserInvited",
            outbox.c.payload["invitation_id"].astext == invitation_id)).mappings().all()
    assert len(rows) == 1, rows
    return dict(rows[0])


def email_deliveries_to(provider: DataProvider, address: str) -> list[EmailDelivery]:
    """The sending stage's rows of emails to ``address``, settled (waits for a sender that is
    still at it: the Maildir may hold the file before its row says ``sent``)."""

    def settled() -> tuple[list[EmailDelivery]] | None:
        with provider.management() as session:
            rows = list(session.scalars(select(EmailDelivery).where(EmailDelivery.recipient == address)))
        return None if any(row.state in ("queued", "retry", "sending") for row in rows) else (rows,)

    (rows,) = wait_for(settled, timeout=30, message=f"the emails to {address} to be settled")
    return rows


def handled(provider: DataProvider, delivery_id: uuid.UUID) -> bool:
    """True once the management inbox recorded the delivery."""
    with provider.unscoped("management") as session:
        return session.scalar(select(inbox.c.message_id).where(inbox.c.message_id == delivery_id)) is not None


def invite(client: FlaskClient, inviter: Tokens, email: str, role: str = "hr_manager") -> dict[str, Any]:
    """POST an invitation; its 202 body."""
    response = client.post(INVITATIONS, headers=inviter.bearer, json={"email": email, "role": role})
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    assert response.json["status_url"] == f"{INVITATIONS}/{response.json['id']}"
    return response.json  # type: ignore[no-any-return]


def status_of(client: FlaskClient, tokens: Tokens, invitation_id: str) -> dict[str, Any]:
    """The invitation's status as its tenant's admins see it."""
    response = client.get(f"{INVITATIONS}/{invitation_id}", headers=tokens.bearer)
    assert response.status_code == 200
    return response.json  # type: ignore[no-any-return]


# --- end to end ------------------------------------------------------------------------------

def test_an_invitation_is_emailed_once_and_its_link_joins_the_tenant(
        client: FlaskClient, provider: DataProvider, org: Org, maildir: Path) -> None:
    admin, email = sign_in(client, org.admin), refs.email("invited")
    invitation = invite(client, admin, email)
    assert status_of(client, admin, invitation["id"])["status"] == "pending"
    message = wait_for_mail(maildir, email)
    assert message["Subject"] == f"You are invited to {org.name}"
    token = invitation_token(message)

    response = client.post(ACCEPT, json={"token": token, "name": "Ines Invited", "password": NEW_PASSWORD})
    joined = tokens_of(response)
    me = client.get(ME, headers=joined.bearer).json
    assert me["tenant_id"] == str(org.tenant_id)
    assert set(me["permissions"]) == iam.BUILTIN_ROLES["hr_manager"]
    status = status_of(client, admin, invitation["id"])
    assert status["status"] == "accepted" and status["accepted_at"] is not None
    # The new account signs in with the password it chose, straight into the tenant.
    again = sign_in(client, Account(uuid.UUID(me["user_id"]), email, NEW_PASSWORD))
    assert client.get(ME, headers=again.bearer).json["tenant_id"] == str(org.tenant_id)

    # The link works once: a second use is refused and changes nothing.
    second = client.post(ACCEPT, json={"token": token, "name": "Mallory", "password": "another password 99"})
    assert_refused(second, 404, "token")
    sign_in(client, Account(uuid.UUID(me["user_id"]), email, NEW_PASSWORD))
    # One email, and its delivery is done (recorded in the inbox, completed in the outbox).
    assert len(mail_to(maildir, email)) == 1
    row = delivery_of(provider, invitation["id"])
    assert handled(provider, row["id"]) and row["completed_at"] is not None and row["last_error"] is None


def test_an_existing_account_joins_with_its_own_password(client: FlaskClient, provider: DataProvider,
                                                         org: Org, maildir: Path) -> None:
    outsider = tenants.create_account(provider, prefix="outsider")
    admin = sign_in(client, org.admin)
    invitation = invite(client, admin, outsider.email, role="employee")
    token = invitation_token(wait_for_mail(maildir, outsider.email))
    wrong = client.post(ACCEPT, json={"token": token, "password": "not their password 1"})
    assert_refused(wrong, 401, "password")
    assert status_of(client, admin, invitation["id"])["status"] == "pending"
    joined = tokens_of(client.post(ACCEPT, json={"token": token, "password": outsider.password}))
    me = client.get(ME, headers=joined.bearer).json
    assert me["user_id"] == str(outsider.user_id) and me["tenant_id"] == str(org.tenant_id)
    assert set(me["permissions"]) == iam.BUILTIN_ROLES["employee"]


def test_an_expired_invitation_is_not_found(client: FlaskClient, provider: DataProvider, org: Org,
                                            maildir: Path) -> None:
    admin, email = sign_in(client, org.admin), refs.email("late")
    invitation = invite(client, admin, email)
    token = invitation_token(wait_for_mail(maildir, email))
    with provider.management() as session:
        session.execute(update(Invitation).where(Invitation.id == uuid.UUID(invitation["id"]))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    response = client.post(ACCEPT, json={"token": token, "name": "Too Late", "password": NEW_PASSWORD})
    assert_refused(response, 404, "token")
    assert status_of(client, admin, invitation["id"])["status"] == "expired"
    with provider.management() as session:
        assert identity.user_by_email(session, email) is None


def test_a_bad_accept_creates_nothing(client: FlaskClient, provider: DataProvider, org: Org) -> None:
    # No worker needed: the token comes from the use case itself.
    email = refs.email("nameless")
    with provider.management() as session:
        view, token = iam.invite(session, org.tenant_id, email=email, role_name="employee",
                                 invited_by=org.admin.user_id, lifetime=timedelta(days=1))
        session.commit()
    assert_refused(client.post(ACCEPT, json={"token": "x" * 43, "name": "Guess", "password": NEW_PASSWORD}),
                   404, "token")
    assert_refused(client.post(ACCEPT, json={"token": token, "password": NEW_PASSWORD}), 422, "name")
    with provider.management() as session:
        assert identity.user_by_email(session, email) is None
        assert iam.invitation(session, token).id == view.id  # still usable
    tokens_of(client.post(ACCEPT, json={"token": token, "name": "Named", "password": NEW_PASSWORD}))


def _demote_admin_to(role: str) -> Callable[[Session, Org], None]:
    def demote(session: Session, org: Org) -> None:
        iam.set_roles(session, org.tenant_id, org.admin.user_id, [role], granted_by=None)
    return demote


def _deactivate_admin(session: Session, org: Org) -> None:
    iam.set_active(session, org.tenant_id, org.admin.user_id, False, changed_by=None)


def _owner_steps_down(session: Session, org: Org) -> None:
    iam.grant_role(session, org.employee.user_id, org.tenant_id, "owner")
    iam.set_roles(session, org.tenant_id, org.owner.user_id, ["admin"], granted_by=None)


# (role offered, inviter, what happens to the inviter before the invitation is used)
INVITER_CHANGES: dict[str, tuple[str, str, Callable[[Session, Org], None]]] = {
    "the inviter lost the role's permissions": ("admin", "admin", _demote_admin_to("hr_manager")),
    "the inviter no longer manages users": ("employee", "admin", _demote_admin_to("hr_manager")),
    "the inviter was deactivated": ("employee", "admin", _deactivate_admin),
    "the inviting owner is no longer one": ("owner", "owner", _owner_steps_down),
}


@pytest.mark.parametrize("change", list(INVITER_CHANGES))
def test_an_invitation_dies_with_its_inviters_authority(client: FlaskClient, provider: DataProvider,
                                                        org: Org, change: str) -> None:
    # An invitation was a grant made at acceptance by whoever sent it, checked only when sent.
    role, inviter, undo_authority = INVITER_CHANGES[change]
    email = refs.email("orphaned")
    with provider.management() as session:
        _, token = iam.invite(session, org.tenant_id, email=email, role_name=role,
                              invited_by=getattr(org, inviter).user_id, lifetime=timedelta(days=1))
        undo_authority(session, org)
        session.commit()
    refused = client.post(ACCEPT, json={"token": token, "name": "Orphan", "password": NEW_PASSWORD})
    assert "whoever invited you" in assert_refused(refused, 403, "token")["reason"]
    with provider.management() as session:
        assert identity.user_by_email(session, email) is None
        assert iam.invitation(session, token).email == email  # not spent


def test_an_invitation_does_not_reactivate_a_member_deactivated_since(
        client: FlaskClient, provider: DataProvider, org: Org) -> None:
    with provider.management() as session:
        _, token = iam.invite(session, org.tenant_id, email=org.employee.email, role_name="hr_manager",
                              invited_by=org.admin.user_id, lifetime=timedelta(days=1))
        iam.set_active(session, org.tenant_id, org.employee.user_id, False, changed_by=org.admin.user_id)
        session.commit()
    refused = client.post(ACCEPT, json={"token": token, "password": org.employee.password})
    assert "deactivated" in assert_refused(refused, 409, "token")["reason"]
    with provider.management() as session:
        assert iam.member(session, org.tenant_id, org.employee.user_id) == iam.MemberRow(
            org.employee.user_id, False, ["employee"])
    # Reactivated by an admin, they may use it.
    with provider.management() as session:
        iam.set_active(session, org.tenant_id, org.employee.user_id, True, changed_by=org.admin.user_id)
        session.commit()
    joined = tokens_of(client.post(ACCEPT, json={"token": token, "password": org.employee.password}))
    assert set(client.get(ME, headers=joined.bearer).json["permissions"]) == (
        iam.BUILTIN_ROLES["employee"] | iam.BUILTIN_ROLES["hr_manager"])


def test_concurrent_accepts_of_one_invitation_let_exactly_one_through(
        app: Flask, other_app: Flask, provider: DataProvider, org: Org) -> None:
    email = refs.email("racer")
    with provider.management() as session:
        _, token = iam.invite(session, org.tenant_id, email=email, role_name="employee",
                              invited_by=org.admin.user_id, lifetime=timedelta(days=1))
        session.commit()
    body = {"token": token, "name": "Racer", "password": NEW_PASSWORD}
    clients = [app.test_client(), other_app.test_client(), app.test_client()]
    start = threading.Barrier(len(clients))
    answers: list[Any] = [None] * len(clients)

    def attempt(i: int) -> None:
        start.wait(timeout=30)
        answers[i] = clients[i].post(ACCEPT, json=body)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = Counter(a.status_code for a in answers)
    # The losers are told the invitation is used (404), never an internal error.
    assert statuses == Counter({200: 1, 404: len(clients) - 1}), [
        a.get_data(as_text=True)[:200] for a in answers]
    with provider.management() as session:
        assert identity.user_by_email(session, email) is not None


def test_only_a_user_manager_may_invite(client: FlaskClient, provider: DataProvider, org: Org) -> None:
    employee, email = sign_in(client, org.employee), refs.email("uninvited")
    response = client.post(INVITATIONS, headers=employee.bearer, json={"email": email, "role": "owner"})
    assert_refused(response, 403, None)
    with provider.management() as session:
        assert session.scalar(select(Invitation.id).where(Invitation.email == email)) is None
    with provider.unscoped("management") as session:
        assert session.scalar(select(outbox.c.id).where(outbox.c.payload["email"].astext == email)) is None


def test_an_admin_whose_address_is_unverified_invites_no_one(
        client: FlaskClient, provider: DataProvider, org: Org) -> None:
    unverified = tenants.add_member(provider, org.tenant_id, "admin",
                                    account=tenants.create_account(provider, email_verified=False))
    admin, email = sign_in(client, unverified), refs.email("spammed")
    response = client.post(INVITATIONS, headers=admin.bearer, json={"email": email, "role": "employee"})
    body = assert_refused(response, 403, None)
    assert "verify your own email address" in body["reason"]
    with provider.management() as session:
        assert session.scalar(select(Invitation.id).where(Invitation.email == email)) is None
    with provider.unscoped("management") as session:
        assert session.scalar(select(outbox.c.id).where(outbox.c.payload["email"].astext == email)) is None

    with provider.management() as session:  # as the link in the welcome email does
        user = session.get(User, unverified.user_id)
        assert user is not None
        identity.mark_verified(user)
        session.commit()
    invite(client, admin, email, role="employee")


# --- a task acting for a user who was cut off ---------------------------------------------

@pytest.fixture
def offline_broker(services: Services) -> Iterator[str]:
    """A broker database nobody consumes: what the web app sends waits there."""
    url = f"{services.redis_url}/{OFFLINE_DB}"
    client = Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def offline_app(settings: Settings, offline_broker: str) -> Iterator[Flask]:
    """The web app sending to (and keeping revocations in) the offline broker database."""
    offline = settings.model_copy(update={"broker_url": offline_broker, "result_backend": offline_broker,
                                          "rate_limit_storage_url": settings.broker_url})
    with web_app(offline) as flask_app:
        yield flask_app


def test_an_invitation_is_not_emailed_once_its_inviter_is_cut_off(
        offline_app: Flask, offline_broker: str, provider: DataProvider, org: Org, *, tmp_path: Path,
        start_worker: Callable[..., processes.Process]) -> None:
    client = offline_app.test_client()
    owner, admin = sign_in(client, org.owner), sign_in(client, org.admin)
    cut_email, kept_email = refs.email("from-cut-off"), refs.email("from-owner")
    cut_invitation, kept_invitation = invite(client, admin, cut_email), invite(client, owner, kept_email)
    # Recorded and queued, but no worker has taken them yet; now the inviter is cut off.
    assert delivery_of(provider, cut_invitation["id"])["completed_at"] is None
    assert client.post(f"/api/v1/iam/members/{org.admin.user_id}/cut-off", headers=owner.bearer).json == {
        "revoked": 1}

    worker = start_worker("identity-offline", "notifications", BROKER_URL=offline_broker,
                          RESULT_BACKEND=offline_broker, VAR_DIR=str(tmp_path / "var"))
    maildir = maildir_of(worker)
    cut_row = delivery_of(provider, cut_invitation["id"])
    kept_row = delivery_of(provider, kept_invitation["id"])
    wait_for(lambda: handled(provider, cut_row["id"]) and handled(provider, kept_row["id"]),
             timeout=60, message="the worker to take both invitations")
    # The owner's invitation went out; the cut-off admin's did not, and never will: no email
    # was even recorded for the sending stage.
    wait_for_mail(maildir, kept_email)
    assert email_deliveries_to(provider, cut_email) == []
    assert [d.state for d in email_deliveries_to(provider, kept_email)] == ["sent"]
    assert mail_to(maildir, cut_email) == []
    assert len(list(maildir.iterdir())) == 1
    done = delivery_of(provider, cut_invitation["id"])
    assert done["completed_at"] is not None, "a refused delivery left for the relay to re-send"
    assert done["dead_at"] is None and done["last_error"] is None
    assert status_of(client, owner, cut_invitation["id"])["status"] == "pending"


def test_a_member_deactivated_while_accepting_an_invitation_is_deactivated_after_it(
        client: FlaskClient, provider: DataProvider, org: Org) -> None:
    # The acceptance holds the account's row (its password was checked) and is about to read
    # the member's standing; the deactivation holds the standing and wanted the account's row
    # to cut off its sessions: a deadlock, one of them a 500. Both now queue at the account.
    with provider.management() as session:
        _, token = iam.invite(session, org.tenant_id, email=org.employee.email, role_name="hr_manager",
                              invited_by=org.admin.user_id, lifetime=timedelta(days=1))
        session.commit()
    owner = sign_in(client, org.owner)
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as accepting:
            identity.authenticate(accepting, org.employee.email, org.employee.password, writes_user=True)
            pid, management = backend_pid(accepting), provider.url_of("management")
            deactivating = pool.submit(lambda: client.post(
                f"/api/v1/iam/members/{org.employee.user_id}/deactivate", headers=owner.bearer))
            wait_for(lambda: deactivating.done() or blocked_by(management, pid) >= 1, timeout=30,
                     message="the deactivation to wait for the account")
            iam.accept(accepting, token, org.employee.user_id)
            accepting.commit()
        answer = deactivating.result(timeout=60)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert (answer.json["active"], answer.json["roles"]) == (False, ["employee", "hr_manager"])


def _blocked_by(provider: DataProvider, pid: int) -> int | None:
    """The backend waiting for a lock that backend ``pid`` holds, if one is."""
    with provider.unscoped("management") as session:
        return session.scalar(text("SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)) "
                                   "LIMIT 1"), {"pid": pid})


@pytest.mark.parametrize("first", ["owner", "admin"])
def test_two_members_accepting_each_others_invitations_at_once_both_join(
        app: Flask, provider: DataProvider, org: Org, first: str) -> None:
    # Each acceptance locked its inviter's standing (FOR SHARE) and then its own (FOR NO KEY
    # UPDATE): the first held the second's inviter and waited for its own row, which the
    # second held as its inviter's, a deadlock and a 500. Someone else reading the first
    # acceptor's row (held below) keeps the first waiting until the second has taken its locks;
    # whichever member's id comes first, both must now queue and join.
    x, y = (org.owner, org.admin) if first == "owner" else (org.admin, org.owner)
    with provider.management() as session:
        _, to_x = iam.invite(session, org.tenant_id, email=x.email, role_name="hr_manager",
                             invited_by=y.user_id, lifetime=timedelta(days=1))
        _, to_y = iam.invite(session, org.tenant_id, email=y.email, role_name="hr_manager",
                             invited_by=x.user_id, lifetime=timedelta(days=1))
        session.commit()

    def accepting(token: str, account: Account) -> Any:
        return app.test_client().post(ACCEPT, json={"token": token, "password": account.password})

    with ThreadPoolExecutor(2) as pool:
        with provider.management() as reading:
            reading.execute(select(TenantUser.user_id).where(TenantUser.tenant_id == org.tenant_id,
                                                             TenantUser.user_id == x.user_id)
                            .with_for_update(read=True))
            reader = reading.scalar(text("SELECT pg_backend_pid()"))
            by_x = pool.submit(accepting, to_x, x)
            x_pid = wait_for(lambda: _blocked_by(provider, reader), timeout=30,
                             message="the first acceptance to wait for the reader")
            by_y = pool.submit(accepting, to_y, y)
            wait_for(lambda: by_y.done() or _blocked_by(provider, x_pid), timeout=30,
                     message="the second acceptance to take its locks or wait for the first")
            reading.commit()
        answers = [by_x.result(timeout=60), by_y.result(timeout=60)]
    for answer in answers:
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    with provider.management() as session:
        assert iam.member(session, org.tenant_id, x.user_id).roles == sorted([first, "hr_manager"])
        assert iam.member(session, org.tenant_id, y.user_id).roles == sorted(
            ["admin" if first == "owner" else "owner", "hr_manager"])
