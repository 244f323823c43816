"""A signed-in user whose address is not verified asks for a new verification link (the
welcome email's expired, or the account predates verification): through the API and the
sessions page, limited per user, emailed by a real ``notifications`` worker (read back from
its Maildir), sealed on the way; the link verifies the address, after which an OIDC sign-in
with it is linked. Used and expired links are pruned by the hourly prune job.
"""
from __future__ import annotations

import json
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from config.settings import Settings
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.identity import services as identity
from domain.identity.models import EmailVerification
from domain.identity.services import PasswordSealer
from domain.messaging.tables import outbox
from tests.integration.identity.test_email_verification import (
    REFUSAL,
    at_provider,
    links_of,
    me,
    sign_up,
    verification_rows,
    verification_token,
    verified_at,
    verify_page,
)
from tests.integration.identity.test_oidc import NONCE, sign_in_api
from tests.integration.web.helpers import assert_refused
from tests.support import mailbox, pages, processes, refs, tenants
from tests.support.oidc_provider import OidcProvider
from tests.support.tenants import bearer, page_csrf, sign_in, tokens_of

ASK = "/api/v1/identity/email-verification"
ASK_PAGE = "/identity/email-verification"
SUBJECT = "Confirm your email address"
MESSAGE_TYPE = "identity.EmailVerificationRequested"



def wait_for_link_email(maildir: Path, address: str, count: int = 1) -> EmailMessage:
    """The ``count``-th verification-link email to ``address`` (not the welcome)."""
    return mailbox.wait_for_email(maildir, address, SUBJECT, count)


def outbox_payloads(provider: DataProvider, user_id: uuid.UUID) -> list[dict[str, object]]:
    """The payloads of the verification requests recorded for ``user_id``."""
    with provider.unscoped("management") as session:
        return list(session.scalars(select(outbox.c.payload).where(
            outbox.c.type == MESSAGE_TYPE, outbox.c.payload["user_id"].astext == str(user_id))
            .order_by(outbox.c.created_at)))


# --- the API ---------------------------------------------------------------------------------

def test_an_unverified_admin_gets_a_new_link_by_api_and_is_then_linked(
        web: FlaskClient, idp: OidcProvider, provider: DataProvider, *, settings: Settings,
        all_queues_worker: processes.Process, maildir: Path) -> None:
    email, password = refs.email("resend"), "the admin's own password 0123"
    admin = sign_up(web, provider, email, password)
    admin_id = admin.admin.user_id
    # The welcome's link is past its 72 hours.
    with provider.management() as session:
        session.execute(update(EmailVerification).where(EmailVerification.user_id == admin_id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    # Before a new link: the provider's person with the address is refused.
    at_provider(idp, email)
    assert REFUSAL in assert_refused(sign_in_api(web, idp.mint(NONCE)), 409, "email")["reason"]

    tokens = sign_in(web, admin.admin, admin.slug)
    status = web.get(ASK, headers=bearer(tokens.access_token))
    assert status.status_code == 200 and status.json == {"email": email, "verified": False}
    asked = web.post(ASK, headers=bearer(tokens.access_token))
    assert asked.status_code == 202, asked.get_data(as_text=True)[:500]
    assert asked.json["email"] == email and asked.headers["Location"] == ASK
    rows = verification_rows(provider, admin_id)
    assert len(rows) == 2 and rows[-1].used_at is None and rows[-1].email == email
    assert rows[-1].expires_at - rows[-1].created_at == pytest.approx(
        timedelta(hours=settings.email_verification_hours), abs=timedelta(seconds=60))

    message = wait_for_link_email(maildir, email)
    token = verification_token(message)  # in its bodies only
    # Sealed on the way: not in the outbox payload (what Flower and the task args show),
    # not in the worker's log.
    (payload,) = outbox_payloads(provider, admin_id)
    assert token not in json.dumps(payload)
    assert PasswordSealer(settings.secret_key).unseal(str(payload["sealed_token"])) == token
    mine = web.get("/api/v1/identity/sessions", headers=bearer(tokens.access_token)).json["items"]
    assert payload["actor_session_id"] == next(s["id"] for s in mine if s["current"])  # sent for it
    log = all_queues_worker.log()
    assert "send_email_verification" in log and token not in log

    done = verify_page(web, token, password)
    assert done.status_code == 303, done.get_data(as_text=True)[:500]
    assert verified_at(provider, admin_id) is not None
    status = web.get(ASK, headers=bearer(tokens.access_token))
    assert status.json == {"email": email, "verified": True}

    # Now the provider's person with that address is linked to the account.
    person = at_provider(idp, email)
    caller = me(web, tokens_of(sign_in_api(web, idp.mint(NONCE))).access_token)
    assert caller["user_id"] == str(admin_id)
    assert links_of(provider, admin_id) == [(idp.issuer, person.subject)]

    # Verified: no more links (409 naming email), nothing recorded.
    again = assert_refused(web.post(ASK, headers=bearer(tokens.access_token)), 409, "email")
    assert "already verified" in again["reason"]
    assert len(verification_rows(provider, admin_id)) == 2 and len(outbox_payloads(provider, admin_id)) == 1


def test_an_already_verified_user_gets_409_and_nothing_is_recorded(
        web: FlaskClient, provider: DataProvider) -> None:
    account = tenants.create_account(provider, prefix="verified")
    tokens = sign_in(web, account)  # no tenant
    assert_refused(web.post(ASK, headers=bearer(tokens.access_token)), 409, "email")
    assert verification_rows(provider, account.user_id) == []
    assert outbox_payloads(provider, account.user_id) == []


def test_the_links_a_user_may_ask_for_are_limited(
        web: FlaskClient, provider: DataProvider, settings: Settings, maildir: Path) -> None:
    per_hour = int(settings.rate_limit_email_verification.split(" per hour")[0])
    account = tenants.create_account(provider, prefix="eager", email_verified=False)
    tokens = sign_in(web, account)
    for _ in range(per_hour):
        assert web.post(ASK, headers=bearer(tokens.access_token)).status_code == 202
    refused = web.post(ASK, headers=bearer(tokens.access_token))
    body = assert_refused(refused, 429, "email")
    assert "for this account" in body["reason"] and int(refused.headers["Retry-After"]) >= 1
    assert len(verification_rows(provider, account.user_id)) == per_hour
    # Every link sent is still good (older ones are not invalidated): the first verifies.
    first = wait_for_link_email(maildir, account.email, 1)
    wait_for_link_email(maildir, account.email, per_hour)
    assert verify_page(web, verification_token(first), account.password).status_code == 303
    assert verified_at(provider, account.user_id) is not None
    # Another user is not held by this one's count.
    other = tenants.create_account(provider, prefix="patient", email_verified=False)
    assert web.post(ASK, headers=bearer(sign_in(web, other).access_token)).status_code == 202


def test_an_unauthenticated_request_is_refused(web: FlaskClient) -> None:
    assert_refused(web.post(ASK), 401, "Authorization")


# --- the page -------------------------------------------------------------------------------------

@pytest.mark.usefixtures("all_queues_worker")
def test_the_sessions_page_button_emails_a_link_that_verifies(
        oidc_app: Flask, provider: DataProvider, maildir: Path) -> None:
    account = tenants.create_account(provider, prefix="pagecheck", email_verified=False)
    browser = oidc_app.test_client()
    assert pages.sign_in(browser, account.email, account.password).status_code == 303
    page = browser.get("/identity/sessions").get_data(as_text=True)
    assert 'data-action="email-verification"' in page and "is not verified" in page

    # The form is CSRF-checked: without its token nothing is recorded.
    assert browser.post(ASK_PAGE).status_code == 400
    assert verification_rows(provider, account.user_id) == []

    csrf = page_csrf(browser, "/identity/sessions")
    sent = browser.post(ASK_PAGE, data={"csrf_token": csrf})
    assert sent.status_code == 303 and sent.headers["Location"] == "/identity/sessions"
    shown = browser.get("/identity/sessions").get_data(as_text=True)
    assert f"A new link that verifies {account.email} is on its way there." in shown

    message = wait_for_link_email(maildir, account.email)
    token = verification_token(message)  # in its bodies only
    assert verify_page(browser, token, account.password).status_code == 303
    assert verified_at(provider, account.user_id) is not None

    assert pages.sign_in(browser, account.email, account.password).status_code == 303
    page = browser.get("/identity/sessions").get_data(as_text=True)
    assert 'data-action="email-verification"' not in page  # shown only while unverified
    csrf = page_csrf(browser, "/identity/sessions")
    again = browser.post(ASK_PAGE, data={"csrf_token": csrf})
    assert again.status_code == 303
    assert "Your email address is verified already." in browser.get("/identity/sessions").get_data(
        as_text=True)
    assert len(verification_rows(provider, account.user_id)) == 1


# --- pruning ----------------------------------------------------------------------------------------

def test_used_and_expired_links_are_pruned_and_live_ones_kept(provider: DataProvider) -> None:
    account = tenants.create_account(provider, prefix="prune", email_verified=False)
    with provider.management() as session:
        views = [identity.start_email_verification(session, account.user_id, timedelta(hours=1))[0]
                 for _ in range(5)]
        long_ago, lately = utcnow() - timedelta(days=10), utcnow() - timedelta(hours=1)
        old_used, old_expired, recent_expired, recent_used, live = (v.id for v in views)
        for row_id, values in ((old_used, {"used_at": long_ago}), (old_expired, {"expires_at": long_ago}),
                               (recent_expired, {"expires_at": lately}), (recent_used, {"used_at": lately})):
            session.execute(update(EmailVerification).where(EmailVerification.id == row_id).values(**values))
        session.commit()

    with provider.management() as session:
        pruned = identity.prune_email_verifications(session, older_than=utcnow() - timedelta(days=7))
        session.commit()

    assert pruned >= 2
    assert {row.id for row in verification_rows(provider, account.user_id)} == {
        recent_expired, recent_used, live}


def test_the_hourly_prune_job_removes_dead_links(all_queues_worker: processes.Process,
                                                 provider: DataProvider, oidc_app: Flask) -> None:
    account = tenants.create_account(provider, prefix="prunejob", email_verified=False)
    with provider.management() as session:
        view, _ = identity.start_email_verification(session, account.user_id, timedelta(hours=1))
        session.execute(update(EmailVerification).where(EmailVerification.id == view.id)
                        .values(expires_at=utcnow() - timedelta(days=30)))
        session.commit()
    publisher = oidc_app.extensions["allotment.celery"]
    report = publisher.send_task("tasks.relay.prune_messages", queue="relay").get(timeout=120)
    assert report["verifications"] >= 1
    assert verification_rows(provider, account.user_id) == []
