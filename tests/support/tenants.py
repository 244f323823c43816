"""Tenants with a member per role, made directly in the database, and their tokens.

Tests that need "a tenant with an owner, an admin, ..." build it here in one transaction
(no signup, no worker), then sign each member in through the real endpoint
(``POST /api/v1/identity/tokens``), so the tokens are exactly what a client would hold::

    tenant = create_tenant(provider)                 # one member per built-in role
    token = access_token(client, tenant.members["owner"], tenant.slug)
    client.get("/api/v1/iam/members", headers=bearer(token))

Every account shares ``PASSWORD`` unless told otherwise; its argon2 hash is computed once
per password, so making many accounts costs inserts, not hashing.

Also here: ``call_as`` (a token where the view reads it: header for the API, cookie plus
CSRF for pages) and ``tenant_fingerprint`` / ``tables_fingerprint`` / ``changed`` (what a
tenant holds, to show a request changed nothing of it).
"""
from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from typing import Any

import jwt as pyjwt
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from domain.db.provider import MANAGEMENT, DataProvider
from domain.iam import services as iam
from domain.identity import recovery
from domain.identity import services as identity
from domain.tenancy.models import Tenant
from tests.support import refs

PASSWORD = "tenant member password 0123"
TOKENS_URL = "/api/v1/identity/tokens"
BUILTIN_ROLES: tuple[str, ...] = tuple(iam.BUILTIN_ROLES)


@dataclass(frozen=True)
class Account:
    """A committed account and the password it signs in with."""

    user_id: uuid.UUID
    email: str
    password: str = PASSWORD


@dataclass(frozen=True)
class TenantWithMembers:
    """A committed trial tenant with its built-in roles and one member per role asked for."""

    id: uuid.UUID
    slug: str
    name: str
    members: Mapping[str, Account]

    def member(self, role: str) -> Account:
        """The member made for ``role``."""
        return self.members[role]

    @property
    def user_ids(self) -> list[uuid.UUID]:
        """Every member's user id."""
        return [account.user_id for account in self.members.values()]


@dataclass(frozen=True)
class Tokens:
    """What a sign-in returned: an access and a refresh token of one session."""

    access_token: str
    refresh_token: str

    @property
    def bearer(self) -> dict[str, str]:
        """The Authorization header carrying the access token."""
        return bearer(self.access_token)

    @property
    def refresh_bearer(self) -> dict[str, str]:
        """The Authorization header carrying the refresh token."""
        return bearer(self.refresh_token)

    @property
    def session_id(self) -> uuid.UUID:
        """The session both tokens belong to (their ``sid`` claim)."""
        return uuid.UUID(unverified(self.access_token)["sid"])


def unverified(token: str) -> dict[str, Any]:
    """A token's claims, read without checking anything (to craft variants of it)."""
    return pyjwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


@functools.cache
def password_hash(password: str) -> str:
    """The argon2 hash of ``password``, computed once per test process."""
    return identity.hash_password(password)


def create_account(provider: DataProvider, *, operator: bool = False, password: str = PASSWORD,
                   prefix: str = "user", name: str = "Test Member", email_verified: bool = True) -> Account:
    """A committed account with no tenant (an operator if asked). Its address is verified
    (its owner made it) unless ``email_verified=False``, as a signup leaves its admin's."""
    email = refs.email("operator" if operator else prefix)
    with provider.management() as session:
        user = identity.create_user(session, email=email, name=name,
                                    password_hash=password_hash(password), is_operator=operator,
                                    email_verified=email_verified)
        session.commit()
        return Account(user.id, user.email, password)


def reset_link(provider: DataProvider, user_id: uuid.UUID, lifetime: timedelta = timedelta(hours=1)) -> str:
    """A live link setting a new password for the account, made as its request makes it; its
    token (which only the email would carry)."""
    with provider.management() as session:
        _, token = recovery.start_password_reset(session, user_id, lifetime)
        session.commit()
    return token


def create_tenant(provider: DataProvider, roles: Iterable[str] = BUILTIN_ROLES, *,
                  prefix: str = "t", password: str = PASSWORD, name: str | None = None,
                  email_verified: bool = True) -> TenantWithMembers:
    """A trial tenant (named ``name``, by default after its slug) with the built-in roles and
    a new member holding each of ``roles`` (addresses verified unless ``email_verified=False``)."""
    tenant_id, slug = uuid.uuid4(), refs.slug(prefix)
    name = name or f"Org {slug}"
    members: dict[str, Account] = {}
    with provider.management() as session:
        session.add(Tenant(id=tenant_id, slug=slug, name=name, status="trial", plan="trial"))
        session.flush()
        iam.create_default_roles(session, tenant_id)
        for role in roles:
            email = refs.email(role.replace("_", "-"))
            user = identity.create_user(session, email=email, name=f"{role.title()} of {slug}",
                                        password_hash=password_hash(password), email_verified=email_verified)
            iam.grant_role(session, user.id, tenant_id, role)
            members[role] = Account(user.id, user.email, password)
        session.commit()
    return TenantWithMembers(tenant_id, slug, name, members)


def add_member(provider: DataProvider, tenant_id: uuid.UUID, *roles: str,
               account: Account | None = None) -> Account:
    """Grant ``roles`` in the tenant to ``account`` (a new account if none); commit."""
    account = account or create_account(provider, prefix="member")
    with provider.management() as session:
        for role in roles:
            iam.grant_role(session, account.user_id, tenant_id, role)
        session.commit()
    return account


def sign_in(client: FlaskClient, account: Account, tenant: str | None = None,
            password: str | None = None) -> Tokens:
    """Sign ``account`` in (into the tenant with slug ``tenant``, if given; with ``password``
    instead of its own, if given) through the API; fail the test unless tokens come back."""
    body: dict[str, Any] = {"email": account.email, "password": password or account.password}
    if tenant is not None:
        body["tenant"] = tenant
    return tokens_of(client.post(TOKENS_URL, json=body))


def tokens_of(response: TestResponse) -> Tokens:
    """The tokens in a 200 answer (of a sign-in, a refresh, an accepted invitation)."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return Tokens(response.json["access_token"], response.json["refresh_token"])


def access_token(client: FlaskClient, account: Account, tenant: str | None = None) -> str:
    """A fresh access token of ``account`` (a new session each call)."""
    return sign_in(client, account, tenant).access_token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}



# --- calling a view the way its kind of authentication expects --------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Any page with a form renders a CSRF token; one token serves every form of the session.
CSRF_PAGE = "/tenancy/signup"
CSRF_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


def view_of(app: Flask, method: str, path: str) -> Any:
    """The view function ``method path`` reaches."""
    endpoint, _ = app.url_map.bind("localhost").match(path.split("?", 1)[0], method=method)
    return app.view_functions[endpoint]


def page_csrf(client: FlaskClient, page: str = CSRF_PAGE, **request: Any) -> str:
    """The CSRF token of ``page`` freshly rendered for ``client``'s session (CSRF stays on
    in tests); ``request`` goes to the GET (``environ_base``, say)."""
    response = client.get(page, **request)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    match = CSRF_FIELD.search(response.get_data(as_text=True))
    assert match, f"{page} carries a CSRF token"
    return unescape(match.group(1))


def call_as(client: FlaskClient, app: Flask, method: str, path: str, token: str | None, *,
            json: Any = None, form: Mapping[str, Any] | None = None, via: str | None = None) -> TestResponse:
    """Call ``method path`` with ``token`` where that view reads it: the Authorization
    header for API views (``requires``), the access cookie plus a CSRF token on unsafe
    methods for HTML pages (``page_requires``); ``via`` ("bearer" or "cookie") overrides
    the view's kind, for views that read the cookie themselves. The cookie is removed
    afterwards. No token: an anonymous call."""
    if token is None:
        return client.open(path, method=method, json=json, data=form)
    via = via or getattr(view_of(app, method, path), "auth", "bearer")
    if via != "cookie":
        return client.open(path, method=method, json=json, data=form, headers=bearer(token))
    cookie = app.config["JWT_ACCESS_COOKIE_NAME"]
    headers = {} if method in SAFE_METHODS else {"X-CSRFToken": page_csrf(client)}
    client.set_cookie(cookie, token)
    try:
        return client.open(path, method=method, json=json, data=form, headers=headers)
    finally:
        client.delete_cookie(cookie)

# --- what a tenant holds: a fingerprint to compare before and after a request -------------

# The tables with a tenant_id column (what information_schema.columns lists, read from the
# catalogue: information_schema's view costs tens of milliseconds a call).
TENANT_TABLES_SQL = ("SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                     "WHERE a.attname = 'tenant_id' AND NOT a.attisdropped "
                     "AND c.relkind IN ('r', 'p', 'v', 'f') "
                     "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
                     "ORDER BY c.relname")
_TENANT_TABLES = text(TENANT_TABLES_SQL)


# What a row is, for the checksum: the whole row, except in the outbox, whose delivery
# bookkeeping (attempts, sent, completed, dead) a running worker or relay updates at any
# time; its messages themselves are compared.
_ROW = {"outbox": "(t.id, t.event_id, t.type, t.handler, t.payload, t.tenant_id, t.correlation_id)"}


def digest_sql(table: str, where: str) -> str:
    """A scalar subquery: row count and checksum of ``table``'s rows (as ``t``) where ``where``."""
    row_text = f"{_ROW.get(table, 't')}::text"
    return (f"(SELECT count(*) || ':' || md5(coalesce(string_agg({row_text}, ',' ORDER BY {row_text}), ''))"
            f' FROM "{table}" t WHERE {where})')


def _digests(session: Session, checks: Mapping[str, tuple[str, str]], **params: Any) -> dict[str, str]:
    """Row count and checksum of the rows each check names, ``name -> (table, where)``, in one
    statement (one round trip however many tables)."""
    if not checks:
        return {}
    columns = [f"{digest_sql(table, where)} AS c{index}"
               for index, (table, where) in enumerate(checks.values())]
    row = session.execute(text("SELECT " + ", ".join(columns)), params).one()
    return dict(zip(checks, row, strict=True))


# Written only by a worker handling a message (whose outbox row is compared): a worker left
# running by another module may record a delivery of this tenant's earlier message any time.
WORKER_ONLY = frozenset({"inbox"})

# The management tables holding a person's rows, and the column naming the person.
BY_USER = {"users": "id", "auth_sessions": "user_id", "memberships": "user_id", "tenant_users": "user_id",
           "external_identities": "user_id", "reseller_admins": "user_id"}


def _tenant_tables(session: Session, db_key: str) -> dict[str, tuple[str, str]]:
    tables = [t for t in session.scalars(_TENANT_TABLES) if t not in WORKER_ONLY]
    return {f"{db_key}.{table}": (table, "t.tenant_id = :tenant") for table in tables}


def tenant_fingerprint(provider: DataProvider, tenant_id: uuid.UUID, *,
                       user_ids: Iterable[uuid.UUID] = (),
                       reseller_ids: Iterable[uuid.UUID] = ()) -> dict[str, str]:
    """Row count and checksum of everything a tenant holds, table by table.

    Every table with a ``tenant_id`` column in the management database and in the tenant's
    own database (found in the schema, so a new table joins by itself; not the inbox, which
    only workers write), the tenant's row,
    and, for ``user_ids`` (its people) and ``reseller_ids``, their accounts, sessions,
    memberships and standing in any tenant, invitations to their emails, external identities
    and reseller rows. Read without tenant filter or RLS (the test connects as the owner).
    Two equal fingerprints mean nothing of the tenant changed in between.
    """
    params = {"tenant": tenant_id, "users": sorted(set(user_ids)), "ids": sorted(set(reseller_ids))}
    db_key = provider.route(tenant_id).db_key
    with provider.unscoped(MANAGEMENT) as session:
        checks = _tenant_tables(session, MANAGEMENT)
        checks["management.tenants[id]"] = ("tenants", "t.id = :tenant")
        for table, column in BY_USER.items():
            checks[f"management.{table}[user]"] = (table, f"t.{column} = ANY(:users)")
        checks["management.invitations[email]"] = (
            "invitations", "t.email IN (SELECT email FROM users WHERE id = ANY(:users))")
        checks["management.resellers[id]"] = ("resellers", "t.id = ANY(:ids)")
        checks["management.reseller_admins[reseller]"] = ("reseller_admins", "t.reseller_id = ANY(:ids)")
        checks["management.tenants[reseller]"] = ("tenants", "t.reseller_id = ANY(:ids)")
        prints = _digests(session, checks, **params)
    if db_key != MANAGEMENT:
        with provider.unscoped(db_key) as session:
            prints.update(_digests(session, _tenant_tables(session, db_key), tenant=tenant_id))
    return prints


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The names of the fingerprint entries that differ (for a failure message)."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def tables_fingerprint(provider: DataProvider, tables: Iterable[str],
                       db_key: str = MANAGEMENT) -> dict[str, str]:
    """Row count and checksum of whole tables (to show a refused request wrote nothing).

    Only for tables no worker writes (resellers, invitations...): a worker left running by
    another module (e.g. provisioning a signup) may write users, tenants or roles at any time.
    """
    with provider.unscoped(db_key) as session:
        return _digests(session, {f"{db_key}.{table}": (table, "true") for table in tables})


def owners_of(provider: DataProvider, table: str, row_id: uuid.UUID | str,
              tenant_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The tenants whose row ``row_id`` of ``table`` is, in the databases of ``tenant_ids``
    (read without the tenant filter or RLS): where a request's new thing really went."""
    found: set[uuid.UUID] = set()
    for db_key in {provider.route(t).db_key for t in tenant_ids}:
        with provider.unscoped(db_key) as session:
            found.update(session.scalars(text(f'SELECT tenant_id FROM "{table}" WHERE id = :id'),
                                         {"id": uuid.UUID(str(row_id))}))
    return found
