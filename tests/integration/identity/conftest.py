"""Fixtures of the identity tests: a tenant with an owner, an admin and an employee made in
the database, a platform operator, a second web app on the same settings, and helpers to
read what the database says about sessions. Accounts, tokens and signing in are
``tests.support.tenants``'."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from config.settings import Settings, load_settings
from domain.db.provider import DataProvider
from domain.identity.models import AuthSession
from tests.support import processes, tenants
from tests.support.apps import web_app
from tests.support.mailbox import maildir_of
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from tests.support.services import Stack
from tests.support.tenants import Account, Tokens

TOKENS = "/api/v1/identity/tokens"
REFRESH = "/api/v1/identity/tokens/refresh"
SESSIONS = "/api/v1/identity/sessions"
ME = "/api/v1/iam/me"
MEMBERS = "/api/v1/iam/members"


@dataclass(frozen=True)
class Org:
    """A trial tenant (made by ``tests.support.tenants``) and three of its members."""

    tenant_id: uuid.UUID
    slug: str
    name: str
    owner: Account
    admin: Account
    employee: Account


@dataclass(frozen=True)
class SessionState:
    """What the database holds about one session."""

    refresh_jti: str
    revoked_at: datetime | None
    revoked_reason: str | None


def make_org(provider: DataProvider) -> Org:
    """Commit a trial tenant with its built-in roles, an owner, an admin and an employee."""
    tenant = tenants.create_tenant(provider, ("owner", "admin", "employee"), prefix="ident")
    return Org(tenant.id, tenant.slug, tenant.name, tenant.member("owner"), tenant.member("admin"),
               tenant.member("employee"))


@pytest.fixture
def org(provider: DataProvider) -> Org:
    """A fresh tenant for one test (tests cut people off, change passwords, ...)."""
    return make_org(provider)


@pytest.fixture
def operator(provider: DataProvider) -> Account:
    """A platform operator of no tenant."""
    return tenants.create_account(provider, operator=True)


def me(client: FlaskClient, access_token: str) -> dict[str, Any]:
    """``GET /api/v1/iam/me`` with ``access_token``; fails unless it answers 200."""
    response = client.get(ME, headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return dict(response.json)


def refresh(client: FlaskClient, tokens: Tokens) -> Any:
    """Present ``tokens``' refresh token at the refresh endpoint; the response."""
    return client.post(REFRESH, headers=tokens.refresh_bearer)


def session_state(provider: DataProvider, session_id: uuid.UUID) -> SessionState:
    """The database's record of one session."""
    with provider.management() as session:
        row = session.get(AuthSession, session_id)
        assert row is not None, f"no session {session_id}"
        return SessionState(row.refresh_jti, row.revoked_at, row.revoked_reason)


def sessions_of(provider: DataProvider, user_id: uuid.UUID) -> dict[uuid.UUID, SessionState]:
    """Every session of a user, as the database holds it."""
    with provider.management() as session:
        rows = session.scalars(select(AuthSession).where(AuthSession.user_id == user_id))
        return {r.id: SessionState(r.refresh_jti, r.revoked_at, r.revoked_reason) for r in rows}


def live_session_ids(provider: DataProvider, user_id: uuid.UUID) -> set[uuid.UUID]:
    """The user's sessions the database does not mark revoked."""
    return {sid for sid, state in sessions_of(provider, user_id).items() if state.revoked_at is None}


@pytest.fixture(scope="session")
def other_app(settings: Settings) -> Iterator[Flask]:
    """A second web app built from the same settings: another web process, in effect (its
    own engines, its own revocation client and permission cache)."""
    with web_app(settings) as flask_app:
        yield flask_app


@pytest.fixture
def other_client(other_app: Flask) -> FlaskClient:
    """A test client of the second web app."""
    return other_app.test_client()


# --- the OpenID Connect provider's app, and the Maildir the shared worker writes --------------

PUBLIC_URL = "http://localhost"


@pytest.fixture(scope="module")
def oidc_settings(stack: Stack, idp: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's stack, with the provider configured."""
    return load_settings(stack.env(
        VAR_DIR=str(tmp_path_factory.mktemp("oidc-var")), OIDC_ISSUER=idp.issuer,
        OIDC_CLIENT_ID=CLIENT_ID, OIDC_CLIENT_SECRET=CLIENT_SECRET, PUBLIC_URL=PUBLIC_URL))


@pytest.fixture(scope="module")
def oidc_app(oidc_settings: Settings) -> Iterator[Flask]:
    """A web app that signs in through the provider."""
    with web_app(oidc_settings) as app:
        yield app


@pytest.fixture
def web(oidc_app: Flask) -> FlaskClient:
    """A browser (or API client) of the OIDC-enabled app; keeps cookies."""
    return oidc_app.test_client()


@pytest.fixture
def maildir(all_queues_worker: processes.Process) -> Path:
    """Where the shared worker writes its mail."""
    return maildir_of(all_queues_worker)
