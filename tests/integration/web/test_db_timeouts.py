"""A web request whose database work runs longer than WEB_STATEMENT_TIMEOUT_MS, or waits for
a lock longer than WEB_LOCK_TIMEOUT_MS, is answered 503 with Retry-After (JSON for the API, a
page for a form) instead of keeping its gunicorn worker until it is killed; its transaction
is rolled back, and the same request succeeds once the database is free. Only the web app's
connections carry the limits: a worker's (or the tests' own) provider has none.

The held-up request meets a row lock this test holds on the account: the password change
locks the account's row before it writes.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from config.settings import Settings
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider
from tests.integration.web.helpers import assert_refused
from tests.support import pages, tenants
from tests.support.apps import web_app

LIMITS = {"lock": {"web_lock_timeout_ms": 300, "web_statement_timeout_ms": 0},
          "statement": {"web_lock_timeout_ms": 0, "web_statement_timeout_ms": 300}}
NEW_PASSWORD = "a password chosen later 0123"
HOLD_SECONDS = 10
UNITS = "/api/v1/employment/org-units"


@pytest.fixture(scope="module", params=sorted(LIMITS))
def limited(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Flask]:
    """The web app with a 300 ms limit on lock waits, or on statements (locks waits included)."""
    with web_app(settings.model_copy(update=LIMITS[request.param])) as app:
        yield app


class HeldAccount:
    """Holds an account's row (FOR UPDATE) on a connection of the test's own, for at most
    HOLD_SECONDS: should the request not give up, PostgreSQL ends the holder's session then,
    and the request goes through (and the test fails) instead of waiting forever."""

    def __init__(self, provider: DataProvider, user_id: Any) -> None:
        self.provider, self.user_id = provider, user_id

    def __enter__(self) -> HeldAccount:
        self.session = self.provider.unscoped("management")
        self.session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = '{HOLD_SECONDS}s'"))
        self.session.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": self.user_id})
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(DBAPIError):  # ended by PostgreSQL after HOLD_SECONDS
            self.session.rollback()
        self.session.close()


def test_an_api_request_held_up_past_its_limit_gets_503_and_changes_nothing(
        limited: Flask, provider: DataProvider) -> None:
    account = tenants.create_account(provider, prefix="held")
    client = limited.test_client()
    access = tenants.sign_in(client, account).access_token
    change = {"current_password": account.password, "new_password": NEW_PASSWORD}
    with HeldAccount(provider, account.user_id):
        answer = client.post("/api/v1/identity/password", headers=tenants.bearer(access), json=change)
    body = assert_refused(answer, 503, None)
    assert body["error"] == "database_timeout" and answer.headers["Retry-After"] == "2"
    assert "try again" in body["reason"]
    assert client.post("/api/v1/identity/tokens", json={"email": account.email,
                                                        "password": account.password}).status_code == 200

    again = client.post("/api/v1/identity/password", headers=tenants.bearer(access), json=change)
    assert again.status_code == 200, again.get_data(as_text=True)[:300]
    assert client.post("/api/v1/identity/tokens", json={"email": account.email,
                                                        "password": NEW_PASSWORD}).status_code == 200


def test_a_form_held_up_past_its_limit_gets_a_503_page(limited: Flask, provider: DataProvider) -> None:
    member = pages.make_member(provider)
    browser = pages.signed_in_browser(limited, member)
    form = {"current_password": pages.PASSWORD, "new_password": NEW_PASSWORD}
    with HeldAccount(provider, member.user_id):
        answer = pages.post(browser, "/identity/password", form)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.mimetype == "text/html" and "try again" in answer.get_data(as_text=True)
    assert pages.api_token(limited, member)  # the old password still works
    assert pages.post(browser, "/identity/password", form).status_code == 303


@pytest.fixture(scope="module")
def lock_limited(settings: Settings) -> Iterator[Flask]:
    """The web app with a 300 ms limit on lock waits only."""
    with web_app(settings.model_copy(update=LIMITS["lock"])) as app:
        yield app


def test_a_commit_held_up_past_its_lock_limit_gets_503_and_keeps_nothing(
        lock_limited: Flask, provider: DataProvider) -> None:
    # A unit's parent is checked at COMMIT (a deferred foreign key), which waits for a lock on
    # the parent's row: the request's last statement is the one cancelled. (Only lock_timeout
    # reaches there: PostgreSQL stops a statement's timer before it commits.)
    tenant = tenants.create_tenant(provider, ("admin",), prefix="commit")
    client = lock_limited.test_client()
    token = tenants.bearer(tenants.access_token(client, tenant.member("admin"), tenant.slug))
    parent = client.post(UNITS, json={"name": "Parent"}, headers=token).json["id"]
    with provider.tenant(tenant.id) as holder:
        holder.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = '{HOLD_SECONDS}s'"))
        holder.execute(text("SELECT id FROM org_units WHERE id = :id FOR UPDATE"), {"id": parent})
        answer = client.post(UNITS, json={"name": "Child", "parent_id": parent}, headers=token)
        holder.rollback()
    body = assert_refused(answer, 503, None)
    assert body["error"] == "database_timeout" and answer.headers["Retry-After"] == "2"
    names = [u["name"] for u in client.get(UNITS, headers=token).json["items"]]
    assert names == ["Parent"]
    assert client.post(UNITS, json={"name": "Child", "parent_id": parent}, headers=token).status_code == 201


def test_the_limits_come_after_the_options_a_database_url_gives(settings: Settings) -> None:
    provider = build_provider(settings, web=True)
    try:
        url = provider.url_of("management")
        with_options = f"{url}{'&' if '?' in url else '?'}options=-c%20application_name%3Dmine"
        engine = provider.engine(with_options)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW application_name").scalar() == "mine"
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "20s"
    finally:
        provider.dispose()


def test_only_the_web_apps_connections_carry_the_limits(app: Flask, settings: Settings) -> None:
    web = app.extensions["allotment.provider"]
    worker = build_provider(settings)
    try:
        with web.management() as session:
            assert session.scalar(text("SHOW statement_timeout")) == "20s"  # the defaults
            assert session.scalar(text("SHOW lock_timeout")) == "20s"
        with worker.management() as session:
            assert session.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        worker.dispose()
