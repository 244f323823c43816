"""A lost password: a link emailed to the account's address sets a new one (API and pages).

The link is emailed by a real ``notifications`` worker (read back from its Maildir), travels
sealed, works once and for PASSWORD_RESET_MINUTES, dies with a change of address or a
deactivation, and using it ends every session of the account. Asking answers alike for any
address; it is limited per address and per IP. Used and expired links are pruned.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from config.settings import Settings, load_settings
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.identity import recovery
from domain.identity import services as identity
from domain.identity.models import PasswordReset, User
from domain.identity.services import PasswordSealer
from domain.messaging.tables import outbox
from tests.integration.identity.conftest import REFRESH, sessions_of
from tests.integration.web.helpers import assert_refused
from tests.support import mailbox, pages, processes, refs, tenants
from tests.support.apps import web_app
from tests.support.services import Stack
from tests.support.tenants import page_csrf, sign_in
from tests.support.waiting import wait_for

ASK = "/api/v1/identity/password-reset-links"
USE = "/api/v1/identity/password-resets"
ASK_PAGE = "/identity/password-reset"
MESSAGE_TYPE = "identity.PasswordResetRequested"
NEW_PASSWORD = "a brand new password 0123"


def ask(client: FlaskClient, email: str, ip: str | None = None) -> TestResponse:
    """Ask for a reset link by API, from a client address of its own unless ``ip``."""
    return client.post(ASK, json={"email": email}, environ_base={"REMOTE_ADDR": ip or refs.client_ip()})


def use(client: FlaskClient, token: str, password: str = NEW_PASSWORD) -> TestResponse:
    """Use a reset link by API."""
    return client.post(USE, json={"token": token, "new_password": password})


def reset_rows(provider: DataProvider, user_id: uuid.UUID) -> list[PasswordReset]:
    with provider.management() as session:
        return list(session.scalars(select(PasswordReset).where(PasswordReset.user_id == user_id)
                                    .order_by(PasswordReset.created_at)))


def requests_for(provider: DataProvider, email: str) -> list[dict[str, Any]]:
    """The payloads of the reset messages recorded for ``email``."""
    with provider.unscoped("management") as session:
        return list(session.scalars(select(outbox.c.payload).where(
            outbox.c.type == MESSAGE_TYPE, outbox.c.payload["email"].astext == email)))


def account_row(provider: DataProvider, user_id: uuid.UUID) -> tuple[str | None, Any]:
    """The account's password hash and when its address was verified."""
    with provider.management() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.password_hash, user.email_verified_at


def signs_in(client: FlaskClient, email: str, password: str) -> int:
    return client.post("/api/v1/identity/tokens", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": refs.client_ip()}).status_code


# --- the API ---------------------------------------------------------------------------------

def test_a_lost_password_is_replaced_through_the_emailed_link(
        client: FlaskClient, provider: DataProvider, settings: Settings,
        all_queues_worker: processes.Process, maildir: Path) -> None:
    tenant = tenants.create_tenant(provider, ("admin",), prefix="lost", email_verified=False)
    account = tenant.member("admin")
    laptop, phone = sign_in(client, account, tenant.slug), sign_in(client, account, tenant.slug)

    # The address as the person types it; the answer is the one an unknown address gets.
    asked = ask(client, account.email.upper())
    unknown = ask(client, refs.email("nobody"))
    assert asked.status_code == unknown.status_code == 202, asked.get_data(as_text=True)[:300]
    assert asked.json["detail"] == unknown.json["detail"]
    (row,) = reset_rows(provider, account.user_id)
    assert row.email == account.email and row.used_at is None
    assert row.expires_at - row.created_at == pytest.approx(
        timedelta(minutes=settings.password_reset_minutes), abs=timedelta(seconds=60))

    token = mailbox.reset_token(maildir, account.email)
    # Sealed on the way: not in the outbox payload, not in the worker's log.
    (payload,) = requests_for(provider, account.email)
    assert token not in json.dumps(payload)
    assert PasswordSealer(settings.secret_key).unseal(str(payload["sealed_token"])) == token
    assert "send_password_reset" in all_queues_worker.log() and token not in all_queues_worker.log()

    assert use(client, token).status_code == 204
    assert signs_in(client, account.email, account.password) == 401
    assert signs_in(client, account.email, NEW_PASSWORD) == 200
    # Every session that held the old password is over, its access and refresh tokens alike.
    for tokens in (laptop, phone):
        assert_refused(client.get("/api/v1/iam/me", headers=tenants.bearer(tokens.access_token)), 401,
                       "Authorization")
        assert client.post(REFRESH, headers=tokens.refresh_bearer).status_code == 401
    assert {state.revoked_reason for state in sessions_of(provider, account.user_id).values()
            if state.revoked_at is not None} == {"password reset"}
    # The link proved the address, and it works once.
    assert account_row(provider, account.user_id)[1] is not None
    assert "already used" in assert_refused(use(client, token, "yet another password 0123"), 404,
                                            "token")["reason"]
    assert signs_in(client, account.email, NEW_PASSWORD) == 200


def test_an_unknown_or_deactivated_address_gets_the_same_answer_and_no_link(
        client: FlaskClient, provider: DataProvider) -> None:
    gone = tenants.create_account(provider, prefix="gone")
    with provider.management() as session:
        session.execute(update(User).where(User.id == gone.user_id).values(active=False))
        session.commit()
    known = ask(client, tenants.create_account(provider, prefix="known").email)
    for email in (refs.email("nobody"), gone.email):
        answer = ask(client, email)
        assert answer.status_code == 202 and answer.json == {**known.json, "email": email}
        assert requests_for(provider, email) == []
    assert reset_rows(provider, gone.user_id) == []


@pytest.mark.parametrize("spoiled", ["expired", "address changed", "deactivated", "another link used"])
def test_a_link_that_is_no_longer_good_sets_nothing(client: FlaskClient, provider: DataProvider,
                                                     spoiled: str) -> None:
    account = tenants.create_account(provider, prefix="spoiled")
    token, other = (tenants.reset_link(provider, account.user_id) for _ in range(2))
    with provider.management() as session:
        if spoiled == "expired":
            session.execute(update(PasswordReset).where(PasswordReset.user_id == account.user_id)
                            .values(expires_at=utcnow() - timedelta(seconds=1)))
        elif spoiled == "address changed":
            session.execute(update(User).where(User.id == account.user_id)
                            .values(email=refs.email("moved")))
        elif spoiled == "deactivated":
            session.execute(update(User).where(User.id == account.user_id).values(active=False))
        session.commit()
    if spoiled == "another link used":
        assert use(client, other).status_code == 204
    before = account_row(provider, account.user_id)

    assert_refused(use(client, token, "not to be set 0123"), 404, "token")
    page = client.get(f"{ASK_PAGE}/{token}")
    assert page.status_code == 404
    assert "<strong>token</strong>: this password reset link is unknown" in page.get_data(as_text=True)
    assert account_row(provider, account.user_id) == before


def test_bad_input_names_the_field_and_leaves_the_link_usable(client: FlaskClient,
                                                              provider: DataProvider) -> None:
    account = tenants.create_account(provider, prefix="badinput")
    token = tenants.reset_link(provider, account.user_id)
    before = account_row(provider, account.user_id)
    assert_refused(use(client, token, "short"), 422, "new_password")
    assert_refused(client.post(USE, json={"new_password": NEW_PASSWORD}), 422, "token")
    assert_refused(client.post(USE, json={"token": "not a token!", "new_password": NEW_PASSWORD}), 422,
                   "token")
    assert_refused(client.post(USE, data="token=x", content_type="application/x-www-form-urlencoded"), 415,
                   "Content-Type")
    assert_refused(client.post(ASK, json={"email": "not an address"}), 422, "email")
    assert_refused(client.post(ASK, json={"email": account.email, "tenant": "x"}), 422, "tenant")
    assert account_row(provider, account.user_id) == before
    assert len(reset_rows(provider, account.user_id)) == 1
    assert use(client, token).status_code == 204


@pytest.fixture(scope="module")
def tight_app(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The web app with the default limit on reset links (the suite's stack lifts it)."""
    env = stack.env(VAR_DIR=str(tmp_path_factory.mktemp("reset-limits-var")))
    del env["RATE_LIMIT_PASSWORD_RESET"]
    with web_app(load_settings(env)) as app:
        yield app


def test_the_links_asked_for_are_limited_per_address_and_per_ip(tight_app: Flask,
                                                                 provider: DataProvider) -> None:
    client = tight_app.test_client()
    limits = tight_app.extensions["allotment.settings"].rate_limit_password_reset
    per_hour = int(limits.split(" per hour")[0])
    account = tenants.create_account(provider, prefix="eager")
    for _ in range(per_hour):
        assert ask(client, account.email).status_code == 202
    refused = ask(client, account.email)
    assert "for this address" in assert_refused(refused, 429, "email")["reason"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(reset_rows(provider, account.user_id)) == per_hour
    # An unknown address is counted the same way: the limit says nothing of which exist.
    nobody = refs.email("nobody")
    for _ in range(per_hour):
        assert ask(client, nobody).status_code == 202
    assert_refused(ask(client, nobody), 429, "email")
    # One client address asking for many addresses is limited too.
    ip = refs.client_ip()
    for _ in range(per_hour):
        assert ask(client, refs.email("sprayed"), ip).status_code == 202
    by_ip = ask(client, refs.email("sprayed"), ip)
    assert by_ip.status_code == 429 and "from this address" in by_ip.json["reason"]


def test_operators_and_accounts_without_a_password_get_no_link(client: FlaskClient,
                                                                provider: DataProvider) -> None:
    operator = tenants.create_account(provider, operator=True)
    provider_made = tenants.create_account(provider, prefix="oidc-made")
    with provider.management() as session:
        session.execute(update(User).where(User.id == provider_made.user_id).values(password_hash=None))
        session.commit()
    known = ask(client, tenants.create_account(provider, prefix="known").email)
    for account in (operator, provider_made):
        answer = ask(client, account.email)
        assert answer.status_code == 202 and answer.json == {**known.json, "email": account.email}
        assert reset_rows(provider, account.user_id) == [] and requests_for(provider, account.email) == []


def test_a_password_change_or_a_deactivation_spends_the_live_links(client: FlaskClient,
                                                                     provider: DataProvider) -> None:
    changed = tenants.create_account(provider, prefix="changed")
    token = tenants.reset_link(provider, changed.user_id)
    tokens = sign_in(client, changed)
    answer = client.post("/api/v1/identity/password", headers=tenants.bearer(tokens.access_token),
                         json={"current_password": changed.password, "new_password": NEW_PASSWORD})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert_refused(use(client, token, "the link holder's choice 0123"), 404, "token")
    assert signs_in(client, changed.email, NEW_PASSWORD) == 200

    deactivated = tenants.create_account(provider, prefix="deactivated")
    token = tenants.reset_link(provider, deactivated.user_id)
    with provider.management() as session:
        identity.set_account_active(session, deactivated.user_id, False)
        identity.set_account_active(session, deactivated.user_id, True)  # back within the hour
        session.commit()
    assert_refused(use(client, token), 404, "token")
    assert signs_in(client, deactivated.email, deactivated.password) == 200


def _held_up_by_the_account_lock(provider: DataProvider, waiting: int) -> bool:
    """True once ``waiting`` transactions wait for a row lock on an account (reading or
    writing the ``users`` table)."""
    with provider.unscoped("management") as session:
        return (session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ~* '(from|update) users'")) or 0) >= waiting


@pytest.mark.parametrize("links", ["one link twice", "two links of the account"])
def test_uses_at_once_set_one_password_and_refuse_the_rest(app: Flask, provider: DataProvider,
                                                           links: str) -> None:
    # A double click, two tabs, or the owner racing someone else: the requests queue on the
    # account's row, which the test holds until both wait there, one through the API and
    # one through the page. One sets its password; the other finds its link spent (404),
    # never a deadlock or a 500.
    account = tenants.create_account(provider, prefix="racing")
    first = tenants.reset_link(provider, account.user_id)
    second = first if links == "one link twice" else tenants.reset_link(provider, account.user_id)
    browser = app.test_client()
    csrf = page_csrf(browser, f"{ASK_PAGE}/{second}")
    calls = {
        "api": lambda: use(app.test_client(), first, "chosen through the api 0123").status_code,
        "page": lambda: browser.post(f"{ASK_PAGE}/{second}", data={
            "csrf_token": csrf, "new_password": "chosen through the page 0123",
            "confirm_password": "chosen through the page 0123"}).status_code,
    }
    # The pool outlives the holding transaction: a failure inside ends the transaction (its
    # lock released) before the pool waits for its threads.
    with ThreadPoolExecutor(2) as pool:
        with provider.unscoped("management") as holder:
            holder.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": account.user_id})
            futures = {name: pool.submit(call) for name, call in calls.items()}
            wait_for(lambda: _held_up_by_the_account_lock(provider, 2), timeout=30,
                     message="both uses to wait for the account")
            holder.commit()
        answers = {name: future.result(timeout=60) for name, future in futures.items()}
    assert answers in ({"api": 204, "page": 404}, {"api": 404, "page": 303}), answers
    winner = "api" if answers["api"] == 204 else "page"
    assert signs_in(client=app.test_client(), email=account.email,
                    password=f"chosen through the {winner} 0123") == 200
    assert all(row.used_at is not None for row in reset_rows(provider, account.user_id))


def test_a_sign_in_with_the_old_password_racing_a_reset_is_refused(app: Flask,
                                                                   provider: DataProvider) -> None:
    # The reset has locked the account and set the new password, not yet committed; a
    # sign-in with the old password checks it against the committed hash, then waits for the
    # account and finds another hash. (Had it not waited, or not looked again, its session
    # would be committed after the reset revoked the account's sessions.)
    account = tenants.create_account(provider, prefix="raced")
    token = tenants.reset_link(provider, account.user_id)
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as resetting:
            recovery.reset_password(resetting, token, NEW_PASSWORD)
            signing_in = pool.submit(signs_in, app.test_client(), account.email, account.password)
            wait_for(lambda: _held_up_by_the_account_lock(provider, 1), timeout=30,
                     message="the sign-in to wait for the account")
            resetting.commit()
        assert signing_in.result(timeout=60) == 401
    assert sessions_of(provider, account.user_id) == {}


def test_a_password_change_with_the_old_password_racing_a_reset_is_refused(
        app: Flask, provider: DataProvider) -> None:
    # Someone holding a session and the old password changes it while the owner's reset is
    # under way: the change waits for the reset and finds the hash it checked replaced.
    account = tenants.create_account(provider, prefix="changing")
    access = sign_in(app.test_client(), account).access_token
    token = tenants.reset_link(provider, account.user_id)
    change = {"current_password": account.password, "new_password": "the intruder's choice 0123"}
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as resetting:
            recovery.reset_password(resetting, token, NEW_PASSWORD)
            changing = pool.submit(lambda: app.test_client().post(
                "/api/v1/identity/password", json=change, headers=tenants.bearer(access)))
            wait_for(lambda: _held_up_by_the_account_lock(provider, 1), timeout=30,
                     message="the password change to wait for the account")
            resetting.commit()
        assert_refused(changing.result(timeout=60), 422, "current_password")
    assert signs_in(app.test_client(), account.email, NEW_PASSWORD) == 200


class LockProbe:
    """The process's argon2 hasher, which, each time it works, first tries to lock the
    account's row from a connection of its own (NOWAIT) and notes whether it could."""

    def __init__(self, hasher: Any, provider: DataProvider, user_id: uuid.UUID) -> None:
        self.hasher, self.provider, self.user_id = hasher, provider, user_id
        self.free: list[tuple[str, bool]] = []

    def _probe(self, step: str) -> None:
        with self.provider.unscoped("management") as other:
            try:
                other.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE NOWAIT"),
                              {"id": self.user_id})
                self.free.append((step, True))
            except OperationalError:  # LockNotAvailable: someone holds the row
                self.free.append((step, False))
            other.rollback()

    def verify(self, password_hash: str, password: str) -> bool:
        self._probe("verify")
        return self.hasher.verify(password_hash, password)  # type: ignore[no-any-return]

    def hash(self, password: str) -> str:
        self._probe("hash")
        return self.hasher.hash(password)  # type: ignore[no-any-return]


def test_argon2_works_while_the_account_is_unlocked(app: Flask, provider: DataProvider,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Checking or hashing a password takes argon2 tens of milliseconds: a sign-in or a change
    # that held the account's row meanwhile would keep a reset, a change or a deactivation
    # of that account waiting for it.
    account = tenants.create_account(provider, prefix="unlocked")
    probe = LockProbe(identity._hasher, provider, account.user_id)
    monkeypatch.setattr(identity, "_hasher", probe)
    client = app.test_client()
    access = sign_in(client, account).access_token
    changed = client.post("/api/v1/identity/password", headers=tenants.bearer(access),
                          json={"current_password": account.password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.get_data(as_text=True)[:300]
    assert probe.free == [("verify", True), ("verify", True), ("hash", True)]
    assert signs_in(client, account.email, NEW_PASSWORD) == 200


def test_a_tenant_switch_racing_a_deactivation_starts_no_session(app: Flask, provider: DataProvider) -> None:
    # A session kept alive by switching tenants again and again while an operator deactivates
    # the account: the switch waits for the deactivation and starts nothing.
    tenant = tenants.create_tenant(provider, ("admin",), prefix="switching")
    account = tenant.member("admin")
    access = sign_in(app.test_client(), account, tenant.slug).access_token
    before = set(sessions_of(provider, account.user_id))
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as deactivating:
            identity.set_account_active(deactivating, account.user_id, False)
            switching = pool.submit(lambda: app.test_client().post(
                "/api/v1/identity/tenant", json={"tenant": tenant.slug}, headers=tenants.bearer(access)))
            wait_for(lambda: _held_up_by_the_account_lock(provider, 1), timeout=30,
                     message="the switch to wait for the account")
            deactivating.commit()
        assert switching.result(timeout=60).status_code == 401
    assert set(sessions_of(provider, account.user_id)) == before


def test_the_cli_sets_a_lost_operator_password_and_ends_every_session(
        app: Flask, client: FlaskClient, provider: DataProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = tenants.create_account(provider, operator=True)
    tokens = sign_in(client, operator)
    monkeypatch.setenv("ALLOTMENT_OPERATOR_PASSWORD", NEW_PASSWORD)
    result = app.test_cli_runner().invoke(args=["users", "set-password", operator.email.upper()])
    assert result.exit_code == 0, result.output
    assert f"password of {operator.email} set; 1 sessions ended" in result.output
    assert signs_in(client, operator.email, operator.password) == 401
    assert signs_in(client, operator.email, NEW_PASSWORD) == 200
    assert_refused(client.get("/api/v1/operations/messages", headers=tenants.bearer(tokens.access_token)),
                   401, "Authorization")
    unknown = app.test_cli_runner().invoke(args=["users", "set-password", refs.email("nobody")])
    assert unknown.exit_code != 0 and "email: no account has this address" in unknown.output


# --- the pages -------------------------------------------------------------------------------

@pytest.mark.usefixtures("all_queues_worker")
def test_the_pages_reset_a_lost_password_and_sign_everyone_out(app: Flask, provider: DataProvider,
                                                               maildir: Path) -> None:
    account = tenants.create_account(provider, prefix="pages")
    signed_in = app.test_client()
    assert pages.sign_in(signed_in, account.email, account.password).status_code == 303
    assert signed_in.get("/identity/sessions").status_code == 200

    browser = app.test_client()
    sign_in_page = browser.get("/identity/sign-in").get_data(as_text=True)
    assert f'href="{ASK_PAGE}" id="forgot-password"' in sign_in_page
    assert browser.post(ASK_PAGE, data={"email": account.email}).status_code == 400  # no CSRF token
    assert reset_rows(provider, account.user_id) == []
    csrf = page_csrf(browser, ASK_PAGE)
    empty = browser.post(ASK_PAGE, data={"csrf_token": csrf, "email": ""})
    assert empty.status_code == 422 and pages.field_errors(empty, "email")
    sent = browser.post(ASK_PAGE, data={"csrf_token": csrf, "email": account.email})
    assert sent.status_code == 200
    assert f"If an account has the address {account.email}, a link" in sent.get_data(as_text=True)

    token = mailbox.reset_token(maildir, account.email)
    link = f"{ASK_PAGE}/{token}"
    shown = browser.get(link)
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200 and f'data-field="email">{account.email}<' in page
    assert '<meta name="referrer" content="no-referrer">' in page  # the token stays on this page
    csrf = page_csrf(browser, link)
    mismatch = browser.post(link, data={"csrf_token": csrf, "new_password": NEW_PASSWORD,
                                        "confirm_password": NEW_PASSWORD + "x"})
    assert mismatch.status_code == 422
    assert pages.field_errors(mismatch, "confirm_password") == ["does not match the new password"]
    assert reset_rows(provider, account.user_id)[0].used_at is None

    done = browser.post(link, data={"csrf_token": csrf, "new_password": NEW_PASSWORD,
                                    "confirm_password": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"] == "/identity/sign-in"
    assert "is changed and every session of the account is signed out" in browser.get(
        "/identity/sign-in").get_data(as_text=True)
    # The browser that was signed in with the old password is sent to sign in.
    assert pages.goes_to_sign_in(signed_in.get("/identity/sessions"))
    assert browser.get(link).status_code == 404
    assert pages.sign_in(browser, account.email, NEW_PASSWORD).status_code == 303
    assert browser.get("/identity/sessions").status_code == 200


# --- pruning ----------------------------------------------------------------------------------

def test_the_hourly_prune_job_removes_dead_links_and_keeps_live_ones(
        all_queues_worker: processes.Process, provider: DataProvider, app: Flask) -> None:
    account = tenants.create_account(provider, prefix="prunereset")
    for _ in range(3):
        tenants.reset_link(provider, account.user_id)
    old_used, old_expired, live = (row.id for row in reset_rows(provider, account.user_id))
    long_ago = utcnow() - timedelta(days=30)
    with provider.management() as session:
        session.execute(update(PasswordReset).where(PasswordReset.id == old_used).values(used_at=long_ago))
        session.execute(update(PasswordReset).where(PasswordReset.id == old_expired)
                        .values(expires_at=long_ago))
        session.commit()
    publisher = app.extensions["allotment.celery"]
    report = publisher.send_task("tasks.relay.prune_messages", queue="relay").get(timeout=120)
    assert report["password_resets"] >= 2
    assert [row.id for row in reset_rows(provider, account.user_id)] == [live]
