"""Account pre-hijacking: an external identity is linked to an existing account by email only
when both sides verified the address (the provider's ``email_verified`` and the account's own
``email_verified_at``).

Against real parts: signups provisioned and welcomed by a real worker (the welcome email read
back from its Maildir), the local OpenID Connect provider over HTTP, PostgreSQL. Someone who
signs up under another person's address cannot have that person attached to their account
when the person signs in through the provider (API and browser flows); the admin who owns the
address verifies it with the welcome email's link (and their password) and is then linked;
an invitee who accepted is verified and linked; a verification link is single use, expires,
and never travels in clear.
"""
from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from config.settings import Settings
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.identity import services as identity
from domain.identity.models import EmailVerification, ExternalIdentity, User
from domain.identity.services import PasswordSealer
from domain.messaging.tables import outbox
from tests.integration.identity.conftest import live_session_ids, me, session_state
from tests.integration.identity.test_invitations import (
    ACCEPT,
    NEW_PASSWORD,
    invitation_token,
    invite,
    wait_for_mail,
)
from tests.integration.identity.test_oidc import (
    NONCE,
    assert_error_page,
    footprint,
    sign_in_api,
    through_provider,
    to_provider,
)
from tests.integration.web.helpers import assert_refused
from tests.support import mailbox, processes, refs, tenants
from tests.support.oidc_provider import OidcProvider, ProviderUser
from tests.support.tenants import Account, Tokens, page_csrf, sign_in, tokens_of
from tests.support.waiting import wait_for

SIGNUPS = "/api/v1/tenancy/signups"
_VERIFY_LINK = re.compile(r"/identity/verify/([A-Za-z0-9_-]{20,100})\b")
REFUSAL = "its address is not verified"


def at_provider(idp: OidcProvider, email: str) -> ProviderUser:
    """The person the provider signs in next: a new subject, ``email`` verified by it."""
    idp.user = ProviderUser(subject=f"auth0|{secrets.token_hex(8)}", email=email)
    return idp.user


# --- a signup, and what the database says of its admin ----------------------------------------

@dataclass(frozen=True)
class SignedUp:
    """A provisioned signup: its tenant, and its admin's account and password."""

    tenant_id: uuid.UUID
    slug: str
    admin: Account


def sign_up(client: FlaskClient, provider: DataProvider, email: str, password: str) -> SignedUp:
    """Sign up a tenant through the API with ``email`` and ``password``; wait for the worker."""
    body = refs.signup_body(email=email, password=password)
    response = client.post(SIGNUPS, json=body)
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    status = wait_for(lambda: (s := client.get(response.json["status_url"]).json)["complete"] and s,
                      timeout=60, message="the signup to be provisioned")
    assert status["status"] == "provisioned", status
    with provider.management() as session:
        user = identity.user_by_email(session, email)
        assert user is not None
    return SignedUp(uuid.UUID(status["tenant_id"]), body["slug"], Account(user.id, user.email, password))


def verified_at(provider: DataProvider, user_id: uuid.UUID) -> Any:
    """The account's ``email_verified_at``."""
    with provider.management() as session:
        return session.scalar(select(User.email_verified_at).where(User.id == user_id))


def links_of(provider: DataProvider, user_id: uuid.UUID) -> list[tuple[str, str]]:
    """The (issuer, subject) of every external identity linked to the account."""
    with provider.management() as session:
        rows = session.execute(select(ExternalIdentity.issuer, ExternalIdentity.subject)
                               .where(ExternalIdentity.user_id == user_id))
        return [(issuer, subject) for issuer, subject in rows]


def verification_rows(provider: DataProvider, user_id: uuid.UUID) -> list[EmailVerification]:
    """The account's verification links, oldest first."""
    with provider.management() as session:
        return list(session.scalars(select(EmailVerification).where(EmailVerification.user_id == user_id)
                                    .order_by(EmailVerification.created_at)))


def verification_token(message: EmailMessage) -> str:
    """The token of the verification link in an email (in its bodies only)."""
    return mailbox.link_secret(message, _VERIFY_LINK)


def verify_page(client: FlaskClient, token: str, password: str) -> Any:
    """Post the verification page's form with its CSRF token and ``password``."""
    csrf = page_csrf(client)
    return client.post(f"/identity/verify/{token}", data={"csrf_token": csrf, "password": password})


# --- the attack -------------------------------------------------------------------------------

@pytest.mark.usefixtures("all_queues_worker")
def test_an_oidc_sign_in_is_not_attached_to_an_account_someone_signed_up_under_the_address(
        web: FlaskClient, idp: OidcProvider, provider: DataProvider) -> None:
    # The attacker signs up under the victim's address with a password of their choosing.
    victim_email, attacker_password = refs.email("victim"), "attacker chose this 0123"
    squatted = sign_up(web, provider, victim_email, attacker_password)
    assert verified_at(provider, squatted.admin.user_id) is None
    attacker = sign_in(web, squatted.admin, squatted.slug)
    sessions_before = {sid: session_state(provider, sid) for sid in live_session_ids(provider,
                                                                                     squatted.admin.user_id)}
    assert attacker.session_id in sessions_before
    # Later the victim signs in through the provider, which vouches for the address.
    victim = at_provider(idp, victim_email)
    before = footprint(provider, victim)

    body = assert_refused(sign_in_api(web, idp.mint(NONCE)), 409, "email")
    assert REFUSAL in body["reason"] and "sign in with its password and verify it" in body["reason"]
    assert "access_token" not in body

    assert footprint(provider, victim) == before and before.links == 0  # no link, no OIDC session
    assert links_of(provider, squatted.admin.user_id) == []
    after = {sid: session_state(provider, sid) for sid in live_session_ids(provider, squatted.admin.user_id)}
    assert after == sessions_before  # the password account's sessions: none added, none rotated
    assert me(web, attacker.access_token)["user_id"] == str(squatted.admin.user_id)
    assert verified_at(provider, squatted.admin.user_id) is None


@pytest.mark.usefixtures("all_queues_worker")
def test_the_browser_flow_refuses_it_with_an_error_page(
        web: FlaskClient, idp: OidcProvider, provider: DataProvider) -> None:
    victim_email = refs.email("victim")
    squatted = sign_up(web, provider, victim_email, "attacker chose this 0123")
    attacker = sign_in(web, squatted.admin, squatted.slug)
    sessions_before = {sid: session_state(provider, sid) for sid in live_session_ids(provider,
                                                                                     squatted.admin.user_id)}
    victim = at_provider(idp, victim_email)
    before = footprint(provider, victim)
    browser = web.application.test_client()

    path, query = through_provider(to_provider(browser, idp, next="/identity/sessions"))
    refused = browser.get(path, query_string=query)
    assert_error_page(refused, 409, REFUSAL)
    assert "sign in with its password and verify it" in refused.get_data(as_text=True)
    assert browser.get_cookie("access_token_cookie") is None
    assert browser.get_cookie("refresh_token_cookie", path="/identity/") is None

    assert footprint(provider, victim) == before and before.links == 0
    after = {sid: session_state(provider, sid) for sid in live_session_ids(provider, squatted.admin.user_id)}
    assert after == sessions_before and attacker.session_id in after


# --- the owner of the address verifies it, then links ------------------------------------------

def test_the_admin_verifies_with_the_welcome_emails_link_and_is_then_linked(
        web: FlaskClient, idp: OidcProvider, provider: DataProvider, *, settings: Settings,
        all_queues_worker: processes.Process, maildir: Path) -> None:
    email, password = refs.email("owner"), "the owner's own password 0123"
    signed_up = sign_up(web, provider, email, password)
    admin_id = signed_up.admin.user_id
    message = wait_for_mail(maildir, email)
    assert message["Subject"] == "Welcome to Allotment, Ada Admin"
    token = verification_token(message)  # in the text and HTML bodies, in no header
    (row,) = verification_rows(provider, admin_id)
    assert row.expires_at - row.created_at == pytest.approx(timedelta(hours=72), abs=timedelta(seconds=60))
    assert row.used_at is None and row.email == email

    # The token never travels in clear: the outbox payload (what Flower and the task args
    # show) carries it sealed, and the worker's log does not hold it.
    with provider.unscoped("management") as session:
        (payload,) = session.scalars(select(outbox.c.payload).where(
            outbox.c.type == "tenancy.TenantProvisioned",
            outbox.c.payload["admin_user_id"].astext == str(admin_id)))
    assert token not in json.dumps(payload)
    assert PasswordSealer(settings.secret_key).unseal(payload["sealed_verification_token"]) == token
    log = all_queues_worker.log()
    assert "record_welcome_notice" in log  # the worker logged its work ...
    assert token not in log  # ... and not the secret

    # The page shows the address; a wrong password changes nothing and keeps the link usable.
    shown = web.get(f"/identity/verify/{token}")
    assert shown.status_code == 200 and email in shown.get_data(as_text=True)
    wrong = verify_page(web, token, "not the password 0123")
    assert wrong.status_code == 401 and "email or password is wrong" in wrong.get_data(as_text=True)
    assert verified_at(provider, admin_id) is None
    assert verification_rows(provider, admin_id)[0].used_at is None

    done = verify_page(web, token, password)
    assert done.status_code == 303 and done.headers["Location"] == "/identity/sign-in"
    assert verified_at(provider, admin_id) is not None
    assert verification_rows(provider, admin_id)[0].used_at is not None

    # Now the provider's person with that address is the account's owner: linked.
    person = at_provider(idp, email)
    tokens = tokens_of(sign_in_api(web, idp.mint(NONCE)))
    caller = me(web, tokens.access_token)
    assert caller["user_id"] == str(admin_id) and caller["tenant_id"] == str(signed_up.tenant_id)
    assert links_of(provider, admin_id) == [(idp.issuer, person.subject)]

    # The link works once.
    again = web.get(f"/identity/verify/{token}")
    assert_error_page(again, 404, "unknown, already used or expired")
    assert verify_page(web, token, password).status_code == 404


def test_an_expired_or_unknown_link_is_a_404_page_and_changes_nothing(
        web: FlaskClient, provider: DataProvider) -> None:
    account = tenants.create_account(provider, prefix="unverified", email_verified=False)
    with provider.management() as session:
        _, token = identity.start_email_verification(session, account.user_id, timedelta(hours=1))
        session.commit()
    shown = web.get(f"/identity/verify/{token}")
    assert shown.status_code == 200, shown.get_data(as_text=True)[:500]
    with provider.management() as session:  # the hour passes
        session.execute(update(EmailVerification).where(EmailVerification.user_id == account.user_id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    gone = "unknown, already used or expired"
    for attempt in (token, "x" * 43, token[:-1] + ("A" if token[-1] != "A" else "B"), "short"):
        assert_error_page(web.get(f"/identity/verify/{attempt}"), 404, gone)
        assert_error_page(verify_page(web, attempt, account.password), 404, gone)
    assert verified_at(provider, account.user_id) is None
    assert [row.used_at for row in verification_rows(provider, account.user_id)] == [None]


def test_a_link_sent_to_another_address_of_the_account_verifies_nothing(
        web: FlaskClient, provider: DataProvider) -> None:
    account = tenants.create_account(provider, prefix="moved", email_verified=False)
    with provider.management() as session:
        _, token = identity.start_email_verification(session, account.user_id, timedelta(hours=1))
        session.execute(update(User).where(User.id == account.user_id).values(email=refs.email("new")))
        session.commit()
    assert_error_page(verify_page(web, token, account.password), 404, "unknown, already used or expired")
    assert verified_at(provider, account.user_id) is None


# --- invitations prove the address --------------------------------------------------------------

def test_an_invitee_who_accepted_is_verified_and_linked(
        web: FlaskClient, idp: OidcProvider, provider: DataProvider, maildir: Path) -> None:
    org = tenants.create_tenant(provider, ("owner",), prefix="verify")
    owner: Tokens = sign_in(web, org.member("owner"), org.slug)
    # A new account made by accepting, and an existing unverified one that accepts with its password.
    new_email = refs.email("invitee")
    existing = tenants.create_account(provider, prefix="existing", email_verified=False)
    invite(web, owner, new_email, role="employee")
    invite(web, owner, existing.email, role="employee")
    joined = tokens_of(web.post(ACCEPT, json={"token": invitation_token(wait_for_mail(maildir, new_email)),
                                              "name": "Ines Invited", "password": NEW_PASSWORD}))
    new_id = uuid.UUID(me(web, joined.access_token)["user_id"])
    assert verified_at(provider, existing.user_id) is None
    tokens_of(web.post(ACCEPT, json={"token": invitation_token(wait_for_mail(maildir, existing.email)),
                                     "password": existing.password}))
    assert verified_at(provider, new_id) is not None
    assert verified_at(provider, existing.user_id) is not None

    for user_id, email in ((new_id, new_email), (existing.user_id, existing.email)):
        person = at_provider(idp, email)
        caller = me(web, tokens_of(sign_in_api(web, idp.mint(NONCE), tenant=org.slug)).access_token)
        assert caller["user_id"] == str(user_id) and caller["tenant_id"] == str(org.id)
        assert links_of(provider, user_id) == [(idp.issuer, person.subject)]


def test_an_account_the_provider_made_is_verified(web: FlaskClient, idp: OidcProvider,
                                                  provider: DataProvider) -> None:
    person = at_provider(idp, refs.email("newcomer"))
    tokens_of(sign_in_api(web, idp.mint(NONCE)))
    with provider.management() as session:
        user = identity.user_by_email(session, person.email or "")
    assert user is not None and verified_at(provider, user.id) is not None
    assert links_of(provider, user.id) == [(idp.issuer, person.subject)]
