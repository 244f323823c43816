"""Fixtures of the identity tests: a tenant with an owner, an admin and an employee made in
the database, a platform operator, a second web app on the same settings, and helpers to
sign in and to read what the database says about sessions."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity.models import AuthSession
from domain.tenancy.models import Tenant
from tests.support import refs
from web import create_app

PASSWORD = "identity password 0123"
# One argon2 hash for every account of these tests: hashing costs tens of milliseconds each.
_PASSWORD_HASH = identity.hash_password(PASSWORD)
TOKENS = "/api/v1/identity/tokens"
REFRESH = "/api/v1/identity/tokens/refresh"
SESSIONS = "/api/v1/identity/sessions"
ME = "/api/v1/iam/me"
MEMBERS = "/api/v1/iam/members"


@dataclass(frozen=True)
class Person:
    """An account made in the database, with PASSWORD."""

    user_id: uuid.UUID
    email: str
    password: str = PASSWORD


@dataclass(frozen=True)
class Org:
    """A trial tenant and three of its members."""

    tenant_id: uuid.UUID
    slug: str
    name: str
    owner: Person
    admin: Person
    employee: Person


@dataclass(frozen=True)
class Tokens:
    """An access and a refresh token of one session."""

    access: str
    refresh: str

    @property
    def bearer(self) -> dict[str, str]:
        """The Authorization header carrying the access token."""
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def refresh_bearer(self) -> dict[str, str]:
        """The Authorization header carrying the refresh token."""
        return {"Authorization": f"Bearer {self.refresh}"}

    @property
    def session_id(self) -> uuid.UUID:
        """The session both tokens belong to (their ``sid`` claim)."""
        return uuid.UUID(unverified(self.access)["sid"])


@dataclass(frozen=True)
class SessionState:
    """What the database holds about one session."""

    refresh_jti: str
    revoked_at: datetime | None
    revoked_reason: str | None


def unverified(token: str) -> dict[str, Any]:
    """A token's claims, read without checking anything (to craft variants of it)."""
    return pyjwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def add_person(provider: DataProvider, tenant_id: uuid.UUID | None, role: str | None,
               *, operator: bool = False, prefix: str = "member") -> Person:
    """Commit an account (a member of ``tenant_id`` with ``role`` if given)."""
    email = refs.email(prefix)
    with provider.management() as session:
        user = identity.create_user(session, email=email, name=f"{prefix.title()} Person",
                                    password_hash=_PASSWORD_HASH, is_operator=operator)
        if tenant_id is not None and role is not None:
            iam.grant_role(session, user.id, tenant_id, role)
        session.commit()
        return Person(user.id, email)


def make_org(provider: DataProvider) -> Org:
    """Commit a trial tenant with its built-in roles, an owner, an admin and an employee."""
    tenant_id, slug = uuid.uuid4(), refs.slug("ident")
    with provider.management() as session:
        session.add(Tenant(id=tenant_id, slug=slug, name=f"Org {slug}", status="trial", plan="trial"))
        session.flush()
        iam.create_default_roles(session, tenant_id)
        session.commit()
    return Org(tenant_id, slug, f"Org {slug}", add_person(provider, tenant_id, "owner", prefix="owner"),
               add_person(provider, tenant_id, "admin", prefix="admin"),
               add_person(provider, tenant_id, "employee", prefix="employee"))


@pytest.fixture
def org(provider: DataProvider) -> Org:
    """A fresh tenant for one test (tests cut people off, change passwords, ...)."""
    return make_org(provider)


@pytest.fixture
def operator(provider: DataProvider) -> Person:
    """A platform operator of no tenant."""
    return add_person(provider, None, None, operator=True, prefix="operator")


def sign_in(client: FlaskClient, person: Person, tenant: str | None = None,
            password: str | None = None) -> Tokens:
    """Sign in through the API; fail the test unless tokens come back."""
    body: dict[str, str] = {"email": person.email, "password": password or person.password}
    if tenant is not None:
        body["tenant"] = tenant
    response = client.post(TOKENS, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return Tokens(response.json["access_token"], response.json["refresh_token"])


def refresh(client: FlaskClient, tokens: Tokens) -> Any:
    """Present ``tokens``' refresh token at the refresh endpoint; the response."""
    return client.post(REFRESH, headers=tokens.refresh_bearer)


def tokens_of(response: Any) -> Tokens:
    """The tokens in a 200 answer."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return Tokens(response.json["access_token"], response.json["refresh_token"])


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
    flask_app = create_app(settings)
    flask_app.config.update(TESTING=True)
    yield flask_app
    flask_app.extensions["allotment.provider"].dispose()


@pytest.fixture
def other_client(other_app: Flask) -> FlaskClient:
    """A test client of the second web app."""
    return other_app.test_client()


@pytest.fixture
def broker_redis(settings: Settings) -> Iterator[Redis]:
    """The Redis database of the app's broker, which also holds revocations and IAM versions."""
    client = Redis.from_url(settings.broker_url)
    yield client
    client.close()
