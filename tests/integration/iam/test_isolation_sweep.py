"""Tenant isolation, swept over every registered route of the app.

Tenant A's owner (every permission, so permission is never the reason) aims each route at
tenant B. ``ROUTES`` classifies every (rule, method) of ``app.url_map``:

- ``TenantResource``: the URL (or the body) names one of B's things: B's member, role,
  invitation, session, reseller, slug. A's owner gets exactly 404 (not 403: nothing may
  tell B's things exist; not 2xx) and nothing of B changes.
- ``CallerScoped``: acts only on the caller's own data (my sessions, my tenant's lists,
  my password); a check asserts it never returns or touches B's data.
- ``OperatorOnly``: cross-tenant by design; A's owner is no operator and gets 403.
- ``Public``: no token read at all (health, docs, sign-in and sign-up forms, OIDC,
  invitation by secret token, signup status by unguessable id).

Around every call, a fingerprint of B (each table with a ``tenant_id`` column in the
management and the trial database, B's row, its people's accounts, sessions, memberships,
standing and invitations, its reseller; and B's IAM version and its sessions' revocation
flags in Redis) must not change. A (rule, method) missing from ``ROUTES`` fails
``test_every_route_is_classified`` by name, so a new route joins the sweep when it is
classified.

HTML pages are called the way a browser calls them: the access token in the
``access_token_cookie`` cookie and, on POST, a real CSRF token (read from a rendered form
of the same client and sent in ``X-CSRFToken``). CSRF protection stays on: a sweep with it
off would not exercise the path a browser takes.
"""
from __future__ import annotations

import importlib
import itertools
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import decode_token
from sqlalchemy import select, text
from werkzeug.test import TestResponse

from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.iam.access import OPERATOR, version_key
from domain.identity import recovery
from domain.identity import services as identity
from domain.identity.models import AuthSession
from domain.identity.revocation import session_key
from domain.notifications.models import Notice
from domain.purchases import catalogue
from domain.purchases import services as purchases
from domain.purchases.catalogue import ProductSpec
from domain.purchases.sandbox import SandboxGateway
from domain.purchases.services import PurchaseRequest
from domain.tenancy import services as tenancy
from domain.tenancy.models import Promotion, Signup
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.tenants import Account, TenantWithMembers, Tokens, bearer, call_as

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
NEW_PASSWORD = "a brand new password 0123"


@dataclass(frozen=True)
class World:
    """Tenant A (the prober) and tenant B (the target) with one of each of B's things."""

    a: TenantWithMembers
    b: TenantWithMembers
    b_roles: dict[str, uuid.UUID]      # B's roles by name, its custom role included
    b_custom_role: str                 # a role name only B has
    b_invitation: uuid.UUID
    b_invitation_token: str
    b_verification_token: str         # a live link verifying B's owner's address
    b_reset_token: str                # a live link setting B's owner's password
    b_session: uuid.UUID               # B's owner's live session
    b_reseller: uuid.UUID              # a reseller B's owner administers, which sold B
    b_signup: uuid.UUID
    b_purchase: uuid.UUID              # B's purchase (settled as failed: no worker touches it)
    product_code: str                  # an active product of the catalogue

    @property
    def b_people(self) -> list[uuid.UUID]:
        """B's members."""
        return self.b.user_ids


@dataclass
class Probe:
    """A's fresh owner (a new account and session for each case) and how it calls."""

    app: Flask
    client: FlaskClient
    world: World
    account: Account
    tokens: Tokens

    def call(self, method: str, path: str, *, json: Any = None, form: Mapping[str, Any] | None = None,
             via: str | None = None) -> TestResponse:
        """Call with A's owner's access token, where the view reads it."""
        return call_as(self.client, self.app, method, path, self.tokens.access_token, json=json,
                       form=form, via=via)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of one of our tokens."""
        with self.app.app_context():
            return decode_token(token)  # type: ignore[no-any-return]


Values = Mapping[str, Callable[[World], list[str]]]
Body = Callable[[World], Any] | None

# B's things, by the name of the URL variable that carries them.
RESET_LINK = "the emailed link's secret token is the credential"
B_VALUES: Values = {
    "user_id": lambda w: [str(w.b.member("owner").user_id), str(w.b.member("employee").user_id)],
    "role_id": lambda w: [str(w.b_roles[w.b_custom_role]), str(w.b_roles["owner"])],
    "invitation_id": lambda w: [str(w.b_invitation)],
    "session_id": lambda w: [str(w.b_session)],
    "reseller_id": lambda w: [str(w.b_reseller)],
    "signup_id": lambda w: [str(w.b_signup)],
    "tenant_id": lambda w: [str(w.b.id)],
    "token": lambda w: [w.b_invitation_token],
    "verification_token": lambda w: [w.b_verification_token],
    "reset_token": lambda w: [w.b_reset_token],
    "database": lambda w: ["management", "trial"],
    "message_id": lambda w: [str(uuid.uuid4())],
    "promotion_id": lambda w: [str(uuid.uuid4())],
    "export_id": lambda w: [str(uuid.uuid4())],
    "purchase_id": lambda w: [str(w.b_purchase)],
    "product_code": lambda w: [w.product_code],
    "address": lambda w: ["bounced@example.com"],
}


@dataclass(frozen=True)
class TenantResource:
    """The call names B's resource (URL variables from ``B_VALUES``, or the body): 404,
    naming (for the API) one of ``fields``, by default the URL's one variable."""

    json: Body = None
    form: Body = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallerScoped:
    """Acts on the caller's own data only: ``check`` asserts B's never shows up."""

    check: Callable[[Probe], None]
    prepare: Callable[[Probe], None] | None = None  # runs before B's fingerprint is taken


@dataclass(frozen=True)
class OperatorOnly:
    """Platform operators only (cross-tenant by design): A's owner gets 403."""

    json: Body = None


@dataclass(frozen=True)
class Public:
    """Reads no token; an anonymous call is answered (not 401/403, not 5xx)."""

    why: str
    values: Values = field(default_factory=dict)


@dataclass(frozen=True)
class SweptIn:
    """Swept against B's real things by a module of the route's own context, which has the
    workers and data those things need (a published publication, a processed asset):
    ``module`` runs the same checks, route by route (``test_routes_swept_elsewhere_are_swept_there``
    holds that it calls each route handed to it)."""

    module: str


Entry = TenantResource | CallerScoped | OperatorOnly | Public | SweptIn


# --- caller-scoped checks ----------------------------------------------------------------

def _ok(response: TestResponse, status: int = 200) -> TestResponse:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response


def _b_secrets(w: World) -> list[str]:
    """Strings that would show B's data on a page: its people's emails, its custom role,
    its session and role ids, its slug."""
    return ([a.email for a in w.b.members.values()] + [w.b_custom_role, w.b.slug, str(w.b_session)]
            + [str(i) for i in w.b_roles.values()])


def _page_shows_nothing_of_b(p: Probe, response: TestResponse) -> None:
    page = response.get_data(as_text=True)
    shown = [s for s in _b_secrets(p.world) if s in page]
    assert not shown, f"A's page shows B's data: {shown}"


def _check_me(p: Probe) -> None:
    body = _ok(p.call("GET", "/api/v1/iam/me")).json
    assert (body["user_id"], body["tenant_id"]) == (str(p.account.user_id), str(p.world.a.id))


def _check_members(p: Probe) -> None:
    ids = {m["user_id"] for m in _ok(p.call("GET", "/api/v1/iam/members")).json["items"]}
    assert str(p.account.user_id) in ids
    assert not ids & {str(u) for u in p.world.b_people}


def _check_roles(p: Probe) -> None:
    items = _ok(p.call("GET", "/api/v1/iam/roles")).json["items"]
    assert not {r["id"] for r in items} & {str(i) for i in p.world.b_roles.values()}
    assert p.world.b_custom_role not in {r["name"] for r in items}


def _check_create_role(p: Probe) -> None:
    # Role names are per tenant: B's name is free in A (a 409 would reveal B's role).
    body = {"name": p.world.b_custom_role, "permissions": ["notifications:read"]}
    created = _ok(p.call("POST", "/api/v1/iam/roles", json=body), 201).json
    assert created["id"] not in {str(i) for i in p.world.b_roles.values()}
    _ok(p.call("DELETE", f"/api/v1/iam/roles/{created['id']}"), 204)


def _check_sessions(p: Probe) -> None:
    items = _ok(p.call("GET", "/api/v1/identity/sessions")).json["items"]
    assert [(s["id"], s["tenant"], s["current"]) for s in items] == [
        (str(p.claims(p.tokens.access_token)["sid"]), p.world.a.slug, True)]


def _check_sign_out_everywhere(p: Probe) -> None:
    assert _ok(p.call("DELETE", "/api/v1/identity/sessions")).json == {"revoked": 1}
    assert_refused(p.call("GET", "/api/v1/iam/me"), 401, "Authorization")


def _check_sign_out(p: Probe) -> None:
    assert _ok(p.call("DELETE", "/api/v1/identity/sessions/current")).json == {"revoked": 1}
    assert_refused(p.call("GET", "/api/v1/iam/me"), 401, "Authorization")


def _check_password(p: Probe) -> None:
    body = {"current_password": p.account.password, "new_password": NEW_PASSWORD}
    tokens = _ok(p.call("POST", "/api/v1/identity/password", json=body)).json
    assert p.claims(tokens["access_token"])["tenant"] == str(p.world.a.id)


def _check_refresh(p: Probe) -> None:
    response = p.client.post("/api/v1/identity/tokens/refresh", headers=bearer(p.tokens.refresh_token))
    tokens = _ok(response).json
    claims = p.claims(tokens["access_token"])
    assert (claims["sub"], claims["tenant"]) == (str(p.account.user_id), str(p.world.a.id))


def _seed_notices(p: Probe) -> None:
    # The same user id in both tenants: only the tenant scoping keeps B's notice out.
    for tenant_id, title in ((p.world.a.id, "for A"), (p.world.b.id, "for B")):
        with p.app.extensions["allotment.provider"].tenant(tenant_id) as session:
            session.add(Notice(user_id=p.account.user_id, event_id=uuid.uuid4(), category="sweep",
                               title=title, body=""))
            session.commit()


def _check_notices(p: Probe) -> None:
    items = _ok(p.call("GET", "/api/v1/notifications/notices")).json["items"]
    assert [n["title"] for n in items] == ["for A"]


def _check_users_page(p: Probe) -> None:
    response = _ok(p.call("GET", "/iam/users"))
    assert p.account.email in response.get_data(as_text=True)
    _page_shows_nothing_of_b(p, response)


def _check_roles_page(p: Probe) -> None:
    _page_shows_nothing_of_b(p, _ok(p.call("GET", "/iam/roles")))


def _check_create_role_page(p: Probe) -> None:
    form = {"name": p.world.b_custom_role, "permissions": ["notifications:read"]}
    _ok(p.call("POST", "/iam/roles", form=form), 303)
    listed = {r["name"]: r["id"] for r in _ok(p.call("GET", "/api/v1/iam/roles")).json["items"]}
    assert listed[p.world.b_custom_role] not in {str(i) for i in p.world.b_roles.values()}
    # B's name stays B's only: other cases rely on A not having it.
    _ok(p.call("DELETE", f"/api/v1/iam/roles/{listed[p.world.b_custom_role]}"), 204)


def _check_sessions_page(p: Probe) -> None:
    response = _ok(p.call("GET", "/identity/sessions"))
    assert str(p.claims(p.tokens.access_token)["sid"]) in response.get_data(as_text=True)
    _page_shows_nothing_of_b(p, response)


def _check_revoke_all_page(p: Probe) -> None:
    _ok(p.call("POST", "/identity/sessions/revoke-all"), 303)
    assert_refused(p.client.get("/api/v1/iam/me", headers=bearer(p.tokens.access_token)), 401,
                   "Authorization")


def _check_password_page(p: Probe) -> None:
    form = {"current_password": p.account.password, "new_password": NEW_PASSWORD}
    _ok(p.call("POST", "/identity/password", form=form), 303)
    assert_refused(p.client.get("/api/v1/iam/me", headers=bearer(p.tokens.access_token)), 401,
                   "Authorization")


def _check_refresh_page(p: Probe) -> None:
    cookie = p.app.config["JWT_REFRESH_COOKIE_NAME"]
    p.client.set_cookie(cookie, p.tokens.refresh_token, path=p.app.config["JWT_REFRESH_COOKIE_PATH"])
    try:
        response = _ok(p.call("POST", "/identity/refresh", via="cookie"), 303)
    finally:
        p.client.delete_cookie(cookie, path=p.app.config["JWT_REFRESH_COOKIE_PATH"])
    access_name = p.app.config["JWT_ACCESS_COOKIE_NAME"]
    issued = [c.split(";")[0].split("=", 1)[1] for c in response.headers.getlist("Set-Cookie")
              if c.startswith(f"{access_name}=")]
    assert len(issued) == 1
    claims = p.claims(issued[0])
    assert (claims["sub"], claims["tenant"]) == (str(p.account.user_id), str(p.world.a.id))


def _check_sign_out_page(p: Probe) -> None:
    _ok(p.call("POST", "/identity/sign-out", via="cookie"), 303)
    assert_refused(p.client.get("/api/v1/iam/me", headers=bearer(p.tokens.access_token)), 401,
                   "Authorization")


def _unverify(p: Probe) -> None:
    # A's fresh owner is verified by the fixtures: unverified, it can ask for a link.
    with p.app.extensions["allotment.provider"].management() as session:
        session.execute(text("UPDATE users SET email_verified_at = NULL WHERE id = :id"),
                        {"id": p.account.user_id})
        session.commit()


def _verification_emails(p: Probe) -> list[tuple[uuid.UUID, str]]:
    """(user, address) of every live verification link recorded for A's owner or B's people."""
    users = [p.account.user_id, *p.world.b_people]
    with p.app.extensions["allotment.provider"].management() as session:
        rows = session.execute(text("SELECT user_id, email FROM email_verifications WHERE user_id = ANY(:u) "
                                    "ORDER BY created_at"), {"u": users})
        return [(user_id, email) for user_id, email in rows]


def _check_email_verification(p: Probe) -> None:
    before = _verification_emails(p)
    body = _ok(p.call("POST", "/api/v1/identity/email-verification"), 202).json
    assert body["email"] == p.account.email
    assert _verification_emails(p) == [*before, (p.account.user_id, p.account.email)]  # A's own only
    status = _ok(p.call("GET", "/api/v1/identity/email-verification")).json
    assert status == {"email": p.account.email, "verified": False}


def _check_email_verification_status(p: Probe) -> None:
    status = _ok(p.call("GET", "/api/v1/identity/email-verification")).json
    assert status == {"email": p.account.email, "verified": True}


def _check_email_verification_page(p: Probe) -> None:
    before = _verification_emails(p)
    _ok(p.call("POST", "/identity/email-verification"), 303)
    assert _verification_emails(p) == [*before, (p.account.user_id, p.account.email)]  # A's own only


def _seed_b_promotion(p: Probe) -> None:
    # A finished (failed) promotion of B, recorded without a message: nothing runs it.
    with p.app.extensions["allotment.provider"].management() as session:
        if not session.scalar(select(Promotion.id).where(Promotion.tenant_id == p.world.b.id)):
            session.add(Promotion(tenant_id=p.world.b.id, status="failed", step="requested", percent=0,
                                  reason="operator", tables={}, rows_total=0, rows_copied=0, attempts=1,
                                  error="sweep"))
            session.commit()


def _check_my_promotion(p: Probe) -> None:
    response = p.call("GET", "/api/v1/tenancy/promotion")
    assert response.status_code == 404 and response.json["field"] == "promotion"  # A never promoted


def _check_admin_page(p: Probe) -> None:
    response = _ok(p.call("GET", "/tenancy/admin"))
    assert p.world.a.name in response.get_data(as_text=True)
    assert 'id="promotion"' not in response.get_data(as_text=True)
    _page_shows_nothing_of_b(p, response)


def _check_purchases(p: Probe) -> None:
    ids = {item["id"] for item in _ok(p.call("GET", "/api/v1/purchases")).json["items"]}
    assert str(p.world.b_purchase) not in ids


def _check_products(p: Probe) -> None:
    codes = {item["code"] for item in _ok(p.call("GET", "/api/v1/purchases/products")).json["items"]}
    assert p.world.product_code in codes  # the catalogue is the platform's, the same for everyone


def _check_checkout_page(p: Probe) -> None:
    _page_shows_nothing_of_b(p, _ok(p.call("GET", "/purchases/checkout")))


def _check_checkout(p: Probe) -> None:
    form = {"offer": f"{p.world.product_code}|1500|EUR", "card_number": "4242424242424242",
            "idempotency_key": secrets.token_hex(16)}
    _ok(p.call("POST", "/purchases/checkout", form=form), 303)
    mine = _ok(p.call("GET", "/api/v1/purchases")).json["items"]
    assert mine and {item["tenant_id"] for item in mine} == {str(p.world.a.id)}


# --- the classification of every route -----------------------------------------------------

def _fresh_email(w: World) -> str:
    return refs.email("sweep-invitee")


ROOT = Path(__file__).resolve().parents[3]
PUBLICATIONS_SWEEP = "tests/integration/publications/test_isolation.py"
_PUB, _ID, _SECTION = "/api/v1/publications", "<uuid:publication_id>", "<uuid:section_id>"
PUBLICATIONS_ROUTES: tuple[tuple[str, str], ...] = (
    (_PUB, "GET"), (_PUB, "POST"), (f"{_PUB}/{_ID}", "GET"), (f"{_PUB}/{_ID}", "PUT"),
    (f"{_PUB}/{_ID}", "DELETE"), (f"{_PUB}/{_ID}/sections", "POST"),
    (f"{_PUB}/{_ID}/sections/{_SECTION}", "PUT"), (f"{_PUB}/{_ID}/sections/{_SECTION}", "DELETE"),
    (f"{_PUB}/{_ID}/sections/order", "PUT"), (f"{_PUB}/{_ID}/publish", "POST"),
    (f"{_PUB}/{_ID}/unschedule", "POST"), (f"{_PUB}/received", "GET"), (f"{_PUB}/received/{_ID}", "GET"),
    (f"{_PUB}/received/{_ID}/attachments/<uuid:asset_id>", "GET"),
    ("/publications", "GET"), ("/publications", "POST"), (f"/publications/{_ID}", "GET"),
    (f"/publications/{_ID}/attachments/<uuid:asset_id>", "GET"), ("/publications/manage", "GET"),
    ("/publications/new", "GET"), (f"/publications/{_ID}/edit", "GET"), (f"/publications/{_ID}/edit", "POST"),
    (f"/publications/{_ID}/sections", "POST"), (f"/publications/{_ID}/sections/{_SECTION}", "POST"),
    (f"/publications/{_ID}/sections/{_SECTION}/move", "POST"),
    (f"/publications/{_ID}/sections/{_SECTION}/delete", "POST"), (f"/publications/{_ID}/publish", "POST"),
    (f"/publications/{_ID}/unschedule", "POST"), (f"/publications/{_ID}/delete", "POST"),
)

ASSETS_SWEEP = "tests/integration/assets/test_isolation.py"
_ASSET = "/api/v1/assets/<uuid:asset_id>"
ASSETS_ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/assets", "GET"), ("/api/v1/assets", "POST"), ("/api/v1/assets/uploads", "POST"),
    (_ASSET, "GET"), (_ASSET, "DELETE"), (f"{_ASSET}/confirm", "POST"), (f"{_ASSET}/download", "GET"),
    ("/api/v1/assets/usage", "GET"), ("/api/v1/assets/policy", "PUT"),
    ("/assets", "GET"), ("/assets", "POST"),
    ("/assets/<uuid:asset_id>", "GET"), ("/assets/<uuid:asset_id>/delete", "POST"),
)

NOTIFICATIONS_SWEEP = "tests/integration/notifications/test_api.py"
_NOTICES = "/api/v1/notifications/notices"
NOTIFICATIONS_ROUTES: tuple[tuple[str, str], ...] = (
    (f"{_NOTICES}/unread-count", "GET"), (f"{_NOTICES}/<uuid:notice_id>/read", "POST"),
    (f"{_NOTICES}/read-all", "POST"), ("/api/v1/notifications/preferences", "GET"),
    ("/api/v1/notifications/preferences", "PUT"), ("/api/v1/notifications/branding", "GET"),
    ("/api/v1/notifications/branding", "PUT"),
)
# The pages of notifications and of the tenant's texts.
NOTIFICATION_PAGES_SWEEP = "tests/integration/notifications/test_pages.py"
NOTIFICATION_PAGES_ROUTES: tuple[tuple[str, str], ...] = (
    ("/notifications", "GET"), ("/notifications/unread-count", "GET"),
    ("/notifications/<uuid:notice_id>/read", "POST"), ("/notifications/read-all", "POST"),
    ("/notifications/preferences", "GET"), ("/notifications/preferences", "POST"),
    ("/translations/admin", "GET"), ("/translations/admin", "POST"),
    ("/translations/admin/<uuid:override_id>/delete", "POST"),
)
TRANSLATIONS_SWEEP = "tests/integration/notifications/test_translations.py"
TRANSLATIONS_ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/translations/strings", "GET"), ("/api/v1/translations/overrides", "GET"),
    ("/api/v1/translations/overrides", "PUT"),
    ("/api/v1/translations/overrides/<uuid:override_id>", "DELETE"),
    ("/api/v1/translations/locale", "GET"), ("/api/v1/translations/locale", "PUT"),
    ("/translations/locale", "POST"),
)

EMPLOYMENT_SWEEP = "tests/integration/employment/test_isolation.py"
_EMP, _EMPLOYEE, _UNIT = "/api/v1/employment", "<uuid:employee_id>", "<uuid:org_unit_id>"
EMPLOYMENT_ROUTES: tuple[tuple[str, str], ...] = (
    (f"{_EMP}/employees", "GET"), (f"{_EMP}/employees", "POST"),
    (f"{_EMP}/employees/{_EMPLOYEE}", "GET"),
    (f"{_EMP}/employees/{_EMPLOYEE}", "PUT"), (f"{_EMP}/employees/{_EMPLOYEE}", "DELETE"),
    (f"{_EMP}/job-types", "GET"), (f"{_EMP}/job-types", "POST"),
    (f"{_EMP}/job-types/<uuid:job_type_id>", "PUT"), (f"{_EMP}/job-types/<uuid:job_type_id>", "DELETE"),
    (f"{_EMP}/org-units", "GET"), (f"{_EMP}/org-units", "POST"),
    (f"{_EMP}/org-units/{_UNIT}", "GET"), (f"{_EMP}/org-units/{_UNIT}", "PUT"),
    (f"{_EMP}/org-units/{_UNIT}", "DELETE"), (f"{_EMP}/imports", "POST"), (f"{_EMP}/imports", "GET"),
    (f"{_EMP}/imports/<uuid:import_id>", "GET"), ("/employment/imports", "GET"),
    ("/employment/imports", "POST"),
    ("/employment/imports/<uuid:import_id>", "GET"), ("/employment/employees", "GET"),
    ("/employment/employees/new", "GET"), ("/employment/employees", "POST"),
    (f"/employment/employees/{_EMPLOYEE}", "GET"), (f"/employment/employees/{_EMPLOYEE}", "POST"),
    (f"/employment/employees/{_EMPLOYEE}/delete", "POST"), ("/employment/structure", "GET"),
    ("/employment/job-types", "POST"), ("/employment/job-types/<uuid:job_type_id>/delete", "POST"),
    ("/employment/org-units", "POST"), (f"/employment/org-units/{_UNIT}", "GET"),
    (f"/employment/org-units/{_UNIT}", "POST"), (f"/employment/org-units/{_UNIT}/delete", "POST"),
    (f"/employment/org-units/{_UNIT}/chart", "GET"), (f"{_EMP}/relations", "POST"),
    (f"{_EMP}/relations/<relation>/<uuid:from_id>/<uuid:to_id>", "DELETE"),
    (f"{_EMP}/employees/{_EMPLOYEE}/relations", "GET"),
    (f"{_EMP}/employees/{_EMPLOYEE}/direct-reports", "GET"),
    (f"{_EMP}/employees/{_EMPLOYEE}/chain", "GET"), (f"{_EMP}/employees/{_EMPLOYEE}/subordinates", "GET"),
    (f"{_EMP}/org-units/{_UNIT}/chart", "GET"),
)

ROUTES: dict[tuple[str, str], Entry] = {
    # IAM API
    ("/api/v1/iam/me", "GET"): CallerScoped(_check_me),
    ("/api/v1/iam/members", "GET"): CallerScoped(_check_members),
    ("/api/v1/iam/members/<uuid:user_id>", "GET"): TenantResource(),
    ("/api/v1/iam/members/<uuid:user_id>/roles", "PUT"): TenantResource(
        json=lambda w: {"roles": ["employee"]}),
    ("/api/v1/iam/members/<uuid:user_id>/deactivate", "POST"): TenantResource(),
    ("/api/v1/iam/members/<uuid:user_id>/reactivate", "POST"): TenantResource(),
    ("/api/v1/iam/members/<uuid:user_id>/cut-off", "POST"): TenantResource(),
    ("/api/v1/iam/roles", "GET"): CallerScoped(_check_roles),
    ("/api/v1/iam/roles", "POST"): CallerScoped(_check_create_role),
    ("/api/v1/iam/roles/<uuid:role_id>", "PUT"): TenantResource(
        json=lambda w: {"permissions": ["users:manage"]}),
    ("/api/v1/iam/roles/<uuid:role_id>", "DELETE"): TenantResource(),
    ("/api/v1/iam/invitations", "POST"): TenantResource(  # B's role, by name
        json=lambda w: {"email": _fresh_email(w), "role": w.b_custom_role},
        fields=("role", "roles")),  # "roles" is a misnomer: see test_iam_api.py
    ("/api/v1/iam/invitations/<uuid:invitation_id>", "GET"): TenantResource(),
    ("/api/v1/iam/resellers/<uuid:reseller_id>/tenants", "GET"): TenantResource(),
    # Identity API
    ("/api/v1/identity/tokens", "POST"): Public("sign-in with email and password"),
    ("/api/v1/identity/oidc/tokens", "POST"): Public("sign-in with the OIDC provider's ID token"),
    ("/api/v1/identity/password-reset-links", "POST"): Public(
        "emails a link to the address it names, if an account has it; the same answer either way"),
    ("/api/v1/identity/password-resets", "POST"): Public(RESET_LINK),
    ("/api/v1/identity/invitations/accept", "POST"): Public(
        "the invitation's secret token is the credential"),
    ("/api/v1/identity/tokens/refresh", "POST"): CallerScoped(_check_refresh),
    ("/api/v1/identity/tenant", "POST"): TenantResource(json=lambda w: {"tenant": w.b.slug},
                                                        fields=("tenant",)),
    ("/api/v1/identity/sessions", "GET"): CallerScoped(_check_sessions),
    ("/api/v1/identity/sessions", "DELETE"): CallerScoped(_check_sign_out_everywhere),
    ("/api/v1/identity/sessions/current", "DELETE"): CallerScoped(_check_sign_out),
    ("/api/v1/identity/sessions/<uuid:session_id>", "DELETE"): TenantResource(),
    ("/api/v1/identity/password", "POST"): CallerScoped(_check_password),
    ("/api/v1/identity/email-verification", "POST"): CallerScoped(_check_email_verification,
                                                                  prepare=_unverify),
    ("/api/v1/identity/email-verification", "GET"): CallerScoped(_check_email_verification_status),
    # Notifications API
    ("/api/v1/notifications/notices", "GET"): CallerScoped(_check_notices, prepare=_seed_notices),
    # Operators
    ("/api/v1/operations/messages", "GET"): OperatorOnly(),
    ("/api/v1/operations/messages/<path:database>/<uuid:message_id>/retry", "POST"): OperatorOnly(),
    ("/api/v1/operations/resellers", "POST"): OperatorOnly(
        json=lambda w: {"name": f"R {refs.slug()}", "admin_email": w.b.member("owner").email}),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/reseller", "PUT"): OperatorOnly(
        json=lambda w: {"reseller_id": None}),
    ("/api/v1/operations/users/<uuid:user_id>/cut-off", "POST"): OperatorOnly(),
    ("/api/v1/operations/users/<uuid:user_id>/deactivate", "POST"): OperatorOnly(),
    ("/api/v1/operations/users/<uuid:user_id>/reactivate", "POST"): OperatorOnly(),
    # Tenancy
    ("/api/v1/tenancy/signups", "POST"): Public("trial sign-up"),
    ("/api/v1/tenancy/signups/<uuid:signup_id>", "GET"): Public(
        "signup progress by unguessable id (see test_a_signup_status_shows_progress_only)"),
    ("/tenancy/signup", "GET"): Public("the sign-up form"),
    ("/tenancy/signup", "POST"): Public("the sign-up form"),
    ("/tenancy/signups/<uuid:signup_id>", "GET"): Public("signup progress page by unguessable id"),
    ("/tenancy/admin", "GET"): CallerScoped(_check_admin_page, prepare=_seed_b_promotion),
    ("/api/v1/tenancy/promotion", "GET"): CallerScoped(_check_my_promotion, prepare=_seed_b_promotion),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/promotions", "POST"): OperatorOnly(),
    ("/api/v1/operations/promotions/<uuid:promotion_id>", "GET"): OperatorOnly(),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/exports", "POST"): OperatorOnly(),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/offboard", "POST"): OperatorOnly(
        json=lambda w: {"confirm_slug": w.b.slug}),
    ("/api/v1/operations/exports/<uuid:export_id>", "GET"): OperatorOnly(),
    ("/api/v1/operations/migrations", "GET"): OperatorOnly(),
    ("/storage/downloads/<token>", "GET"): Public("the signed, expiring link is the credential"),
    # Purchases
    ("/api/v1/purchases/<uuid:purchase_id>", "GET"): TenantResource(),
    ("/purchases/<uuid:purchase_id>", "GET"): TenantResource(),
    ("/api/v1/purchases", "POST"): TenantResource(  # names B as the buyer
        json=lambda w: {"product_code": w.product_code, "amount_minor": 1500, "currency": "EUR",
                        "card_number": "4242424242424242", "tenant_id": str(w.b.id)},
        fields=("tenant_id",)),
    ("/api/v1/purchases", "GET"): CallerScoped(_check_purchases),
    ("/api/v1/purchases/products", "GET"): CallerScoped(_check_products),
    ("/purchases/checkout", "GET"): CallerScoped(_check_checkout_page),
    ("/purchases/checkout", "POST"): CallerScoped(_check_checkout),
    ("/api/v1/operations/products", "GET"): OperatorOnly(),
    ("/api/v1/operations/products", "POST"): OperatorOnly(json=lambda w: {
        "code": f"sweep-{secrets.token_hex(3)}", "name": "Sweep", "kind": "addon", "plan": None,
        "price_minor": 100, "currency": "EUR"}),
    ("/api/v1/operations/products/<product_code>", "PATCH"): OperatorOnly(json=lambda w: {"price_minor": 1}),
    ("/api/v1/operations/products/<product_code>/retire", "POST"): OperatorOnly(),
    ("/api/v1/operations/products/<product_code>/reactivate", "POST"): OperatorOnly(),
    ("/api/v1/operations/purchases/<uuid:purchase_id>", "GET"): OperatorOnly(),
    ("/api/v1/operations/purchases/<uuid:purchase_id>/refund", "POST"): OperatorOnly(
        json=lambda w: {"reason": "sweep"}),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/ledger", "GET"): OperatorOnly(),
    # Notifications (operators)
    ("/api/v1/operations/suppressed-addresses", "GET"): OperatorOnly(),
    ("/api/v1/operations/suppressed-addresses/<address>", "GET"): OperatorOnly(),
    ("/api/v1/operations/suppressed-addresses/<address>", "DELETE"): OperatorOnly(),
    # IAM pages
    ("/iam/users", "GET"): CallerScoped(_check_users_page),
    ("/iam/users/<uuid:user_id>/roles", "POST"): TenantResource(form=lambda w: {"roles": ["employee"]}),
    ("/iam/users/<uuid:user_id>/deactivate", "POST"): TenantResource(),
    ("/iam/users/<uuid:user_id>/reactivate", "POST"): TenantResource(),
    ("/iam/users/<uuid:user_id>/cut-off", "POST"): TenantResource(),
    ("/iam/users/invite", "POST"): TenantResource(  # B's role, by name
        form=lambda w: {"email": _fresh_email(w), "role": w.b_custom_role}),
    ("/iam/roles", "GET"): CallerScoped(_check_roles_page),
    ("/iam/roles", "POST"): CallerScoped(_check_create_role_page),
    ("/iam/roles/<uuid:role_id>/delete", "POST"): TenantResource(),
    # Identity pages
    ("/identity/sign-in", "GET"): Public("the sign-in form"),
    ("/identity/sign-in", "POST"): Public("the sign-in form"),
    ("/identity/invitations/<token>", "GET"): Public("the invitation's secret token is the credential"),
    ("/identity/invitations/<token>", "POST"): Public("the invitation's secret token is the credential"),
    ("/identity/verify/<verification_token>", "GET"): Public(
        "the link's secret token (and, to post, the account's password) is the credential"),
    ("/identity/verify/<verification_token>", "POST"): Public(
        "the link's secret token (and, to post, the account's password) is the credential"),
    ("/identity/password-reset", "GET"): Public("the form asking for a link that sets a lost password"),
    ("/identity/password-reset", "POST"): Public(
        "emails a link to the address it names, if an account has it; the same answer either way"),
    ("/identity/password-reset/<reset_token>", "GET"): Public(RESET_LINK),
    ("/identity/password-reset/<reset_token>", "POST"): Public(RESET_LINK),
    ("/identity/oidc/login", "GET"): Public("starts the OIDC code flow"),
    ("/identity/oidc/callback", "GET"): Public("OIDC redirect back (state bound to the browser session)"),
    ("/identity/refresh", "POST"): CallerScoped(_check_refresh_page),
    ("/identity/sign-out", "POST"): CallerScoped(_check_sign_out_page),
    ("/identity/sessions", "GET"): CallerScoped(_check_sessions_page),
    ("/identity/sessions/<uuid:session_id>/revoke", "POST"): TenantResource(),
    ("/identity/sessions/revoke-all", "POST"): CallerScoped(_check_revoke_all_page),
    ("/identity/password", "POST"): CallerScoped(_check_password_page),
    ("/identity/email-verification", "POST"): CallerScoped(_check_email_verification_page, prepare=_unverify),
    # Platform
    ("/", "GET"): Public("redirects to the sign-up form"),
    ("/healthz", "GET"): Public("load balancer health"),
    ("/readyz", "GET"): Public("load balancer readiness"),
    ("/metrics", "GET"): Public("its own METRICS_TOKEN; absent without the setting"),
    ("/openapi.json", "GET"): Public("the API description"),
    ("/docs", "GET"): Public("the API browser"),
    ("/docs/static/<path:filename>", "GET"): Public("Swagger UI assets",
                                                    values={"filename": lambda w: ["swagger-ui.css"]}),
    ("/static/<path:filename>", "GET"): Public("static assets", values={"filename": lambda w: ["site.css"]}),
    **{route: SweptIn(PUBLICATIONS_SWEEP) for route in PUBLICATIONS_ROUTES},
    **{route: SweptIn(ASSETS_SWEEP) for route in ASSETS_ROUTES},
    **{route: SweptIn(NOTIFICATIONS_SWEEP) for route in NOTIFICATIONS_ROUTES},
    **{route: SweptIn(NOTIFICATION_PAGES_SWEEP) for route in NOTIFICATION_PAGES_ROUTES},
    **{route: SweptIn(EMPLOYMENT_SWEEP) for route in EMPLOYMENT_ROUTES},
    **{route: SweptIn(TRANSLATIONS_SWEEP) for route in TRANSLATIONS_ROUTES},
    ("/api/v1/notifications/ses-feedback", "POST"): Public(
        "authorised by its own SES_FEEDBACK_TOKEN (HTTP basic); absent without the setting"),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/asset-quota", "PUT"): OperatorOnly(
        json=lambda w: {"quota_bytes": 1}),
    ("/storage/uploads/<token>", "PUT"): Public("the signed upload link is the credential"),
}


def _keys(kind: type) -> list[tuple[str, str]]:
    return [key for key, entry in ROUTES.items() if isinstance(entry, kind)]


def _ids(keys: list[tuple[str, str]]) -> list[str]:
    return [f"{method} {rule}" for rule, method in keys]


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(api: FlaskClient, provider: DataProvider) -> World:
    """A (an owner only) and B (a member per built-in role, a custom role that one of them
    holds, a pending invitation, a live session, a reseller that sold B, a signup)."""
    a = tenants.create_tenant(provider, ("owner",), prefix="prober")
    b = tenants.create_tenant(provider, prefix="target")
    custom = f"only_b_{secrets.token_hex(4)}"
    owner = b.member("owner").user_id
    with provider.management() as session:
        iam.create_role(session, b.id, custom, ["users:manage"], granted_by=None)
        iam.grant_role(session, b.member("employee").user_id, b.id, custom)
        invitation, token = iam.invite(session, b.id, email=refs.email("b-invitee"), role_name="employee",
                                       invited_by=owner, lifetime=timedelta(days=7))
        _, verification = identity.start_email_verification(session, owner, timedelta(days=7))
        _, reset = recovery.start_password_reset(session, owner, timedelta(hours=1))
        reseller = iam.create_reseller(session, f"Reseller {b.slug}", owner)
        tenancy.assign_reseller(session, b.id, reseller)
        signup_id = uuid.uuid4()
        session.add(Signup(id=signup_id, tenant_id=b.id, admin_name="Owner of B",
                           admin_email=b.member("owner").email, sealed_password=None, status="provisioned",
                           provisioned_at=datetime.now(UTC)))
        roles = {r.name: r.id for r in iam.list_roles(session, b.id)}
        code = f"sweep-plan-{secrets.token_hex(3)}"
        catalogue.create_product(session, ProductSpec(code, "Sweep plan", "plan", "standard", 1500, "EUR"))
        purchase = purchases.request_purchase(
            session, SandboxGateway(provider.settings.database_url, provider.settings.secret_key),
            PurchaseRequest(code, 1500, "EUR", "4000000000000259"), tenant_id=b.id, buyer_user_id=owner,
            idempotency_key="sweep", correlation_id=None).purchase_id
        # Settled, and its charge command withdrawn: no worker changes B while the sweep runs.
        session.execute(text("UPDATE purchases SET status = 'failed' WHERE id = :id"), {"id": purchase})
        session.execute(text("DELETE FROM outbox WHERE payload->>'purchase_id' = :id"), {"id": str(purchase)})
        session.commit()
    b_token = tenants.access_token(api, b.member("owner"))
    sessions = api.get("/api/v1/identity/sessions", headers=bearer(b_token)).json["items"]
    assert len(sessions) == 1
    return World(a, b, roles, custom, invitation.id, token, verification, reset, uuid.UUID(sessions[0]["id"]),
                 reseller, signup_id, purchase, code)


def snapshot(app: Flask, provider: DataProvider, world: World) -> dict[str, str]:
    """Everything of B a request could change: its rows and its Redis state."""
    prints = tenants.tenant_fingerprint(provider, world.b.id, user_ids=world.b_people,
                                        reseller_ids=[world.b_reseller])
    redis = app.extensions["allotment.revocations"].redis
    with provider.management() as session:
        b_sessions = list(session.scalars(select(AuthSession.id).where(
            AuthSession.user_id.in_(world.b_people))))
    keys = [version_key(world.b.id)] + [session_key(s) for s in sorted(b_sessions)]
    for key, value in zip(keys, redis.mget(keys), strict=True):
        prints[f"redis.{key}"] = repr(value)
    return prints


@pytest.fixture
def probe(app: Flask, provider: DataProvider, world: World) -> Probe:
    """A new owner of A, signed in (cases never share a session or a password)."""
    account = tenants.add_member(provider, world.a.id, "owner")
    client = app.test_client()
    return Probe(app, client, world, account, tenants.sign_in(client, account))


def urls(app: Flask, rule_text: str, method: str, values: Values, world: World) -> list[str]:
    """The rule's URL for every combination of the values of its variables."""
    rules = [r for r in app.url_map.iter_rules() if r.rule == rule_text and method in (r.methods or ())]
    assert len(rules) == 1, f"{method} {rule_text} is not one registered rule"
    rule = rules[0]
    names = sorted(rule.arguments)
    missing = [n for n in names if n not in values]
    assert not missing, f"no value for {missing} of {method} {rule_text}: add them to B_VALUES"
    adapter = app.url_map.bind("localhost")
    built = []
    for combination in itertools.product(*(values[n](world) for n in names)):
        built.append(adapter.build(rule.endpoint, dict(zip(names, combination, strict=True)), method=method))
    return built


def rule_views(app: Flask) -> dict[tuple[str, str], Any]:
    """Every (rule, method) of the app with its view."""
    return {(rule.rule, method): app.view_functions[rule.endpoint]
            for rule in app.url_map.iter_rules() for method in (rule.methods or set()) - IGNORED_METHODS}


# --- the sweep -----------------------------------------------------------------------------

def test_every_route_is_classified(app: Flask) -> None:
    registered = rule_views(app)
    missing = sorted(set(registered) - set(ROUTES))
    assert not missing, (
        "routes not classified in ROUTES (test_isolation_sweep.py); classify each as TenantResource, "
        "CallerScoped, OperatorOnly or Public: " + ", ".join(f"{m} {r}" for r, m in missing))
    stale = sorted(set(ROUTES) - set(registered))
    assert not stale, f"ROUTES classifies routes the app does not have: {stale}"


def _paths_in(module: str) -> str:
    """The module's text with its path constants (its own and imported ones, such as ``API``)
    written out where they are used, in f-strings and bare."""
    text = (ROOT / module).read_text()
    loaded = importlib.import_module(module.removesuffix(".py").replace("/", "."))
    for name, value in vars(loaded).items():
        if name.isupper() and isinstance(value, str) and value.startswith("/"):
            text = text.replace("{" + name + "}", value)
            text = re.sub(rf"\b{name}\b", repr(value), text)
    return text


def _helpers_of(module: str) -> list[str]:
    """The test modules ``module`` calls routes through: the ``tests`` modules it imports and
    the ``conftest.py`` files of its package and the packages above it (their fixtures)."""
    loaded = importlib.import_module(module.removesuffix(".py").replace("/", "."))
    imported = {getattr(value, "__module__", None) if not isinstance(value, type(loaded)) else value.__name__
                for value in vars(loaded).values()}
    files = [name.replace(".", "/") + ".py" for name in sorted(filter(None, imported))
             if name.startswith("tests.") and (ROOT / (name.replace(".", "/") + ".py")).is_file()]
    folder = Path(module).parent
    conftests = [str(parent / "conftest.py") for parent in (folder, *folder.parents)
                 if (ROOT / parent / "conftest.py").is_file()]
    return [file for file in dict.fromkeys(files + conftests) if file != module]


# How a test module calls a route: ``client.post(path``, ``("POST", path`` (a table of cases,
# ``call_as(..., "POST", path``), ``page.goto(path`` (a browser: GET). Nothing but the call's
# other arguments may stand between the method and the path: no closing bracket, no other path.
_CALL = re.compile(r"""\.(get|post|put|patch|delete|goto)\(|["'](GET|POST|PUT|PATCH|DELETE)["']""")
# ``for url in (path, path, ...):`` and a call in the loop's first lines: each path, that method.
_LOOP = re.compile(r"for \w+ in \((?P<paths>[^:]*?)\):(?P<body>.{0,240})", re.DOTALL)


def _method_of(call: re.Match[str]) -> str:
    return {"GOTO": "GET"}.get(name := (call.group(1) or call.group(2)).upper(), name)


def _calls(text: str, rule: str) -> set[str]:
    """The methods ``text`` calls ``rule``'s path with (its arguments as f-string fields, or a
    literal value of a string argument)."""
    path = r"(?:\{[^{}]+\}|[\w-]+)".join(re.escape(part) for part in re.split(r"<[^>]+>", rule))
    literal = re.compile(rf"""(?<=["']){path}(?=["'?])""")
    methods = set()
    for found in literal.finditer(text):
        before = text[max(0, found.start() - 150):found.start()]
        calls = [call for call in _CALL.finditer(before)
                 if not re.search(r"""[)\]]|["']/""", before[call.end():])]
        if calls:
            methods.add(_method_of(calls[-1]))
    for loop in _LOOP.finditer(text):
        call = _CALL.search(loop["body"])
        if call and literal.search(loop["paths"]):
            methods.add(_method_of(call))
    return methods


def test_routes_swept_elsewhere_are_swept_there() -> None:
    # The module a route is handed to calls it, with its method: in its own text or in a
    # test module it calls routes through (a fixture's upload, a helper's post).
    texts: dict[str, str] = {}
    missing = []
    for (rule, method), entry in ROUTES.items():
        if isinstance(entry, SweptIn):
            modules = [entry.module, *_helpers_of(entry.module)]
            called = set().union(*(_calls(texts.setdefault(m, _paths_in(m)), rule) for m in modules))
            if method not in called:
                missing.append(f"{method} {rule} (not in {entry.module}: called with {sorted(called)})")
    assert missing == []


def test_the_hand_off_check_reads_the_method_of_each_call() -> None:
    calls = {
        'client.post(f"/api/v1/things/{b.thing}/done", headers=h)': {"POST"},
        '"delete": ("DELETE", lambda b: f"/api/v1/things/{b.thing}/done", None),': {"DELETE"},
        'tenants.call_as(client, app, "PUT", "/api/v1/things/x/done", token)': {"PUT"},
        'page.goto(f"{base}/api/v1/things/{b.thing}/done")': set(),  # not the path alone: a prefix
        'page.goto(f"/api/v1/things/{b.thing}/done")': {"GET"},
        'for url in ("/api/v1/things/x/done", "/y"):\n    r = call_as(c, app, "GET", url, t)': {"GET"},
        'client.post("/elsewhere"); assert "/api/v1/things/x/done" in text': set(),
        'client.get(x)["/api/v1/things/x/done"]': set(),
    }
    read = {text: _calls(text, "/api/v1/things/<uuid:thing_id>/done") for text in calls}
    assert read == calls


def test_the_classification_matches_how_each_view_is_guarded(app: Flask) -> None:
    views = rule_views(app)
    wrong = []
    for key, entry in ROUTES.items():
        view = views.get(key)
        guarded, permission = hasattr(view, "auth"), getattr(view, "required_permission", None)
        if isinstance(entry, OperatorOnly) and permission != OPERATOR:
            wrong.append((key, "OperatorOnly but the view does not require the operator"))
        if isinstance(entry, TenantResource | CallerScoped) and permission == OPERATOR:
            wrong.append((key, "an operator view is not a tenant's"))
        if isinstance(entry, TenantResource) and not guarded:
            wrong.append((key, "TenantResource but the view reads no token"))
        if isinstance(entry, Public) and guarded:
            wrong.append((key, "Public but the view requires a token"))
    assert not wrong, wrong


@pytest.mark.parametrize("key", _keys(TenantResource), ids=_ids(_keys(TenantResource)))
def test_another_tenants_resource_is_not_found_and_unchanged(
        app: Flask, provider: DataProvider, world: World, probe: Probe, key: tuple[str, str]) -> None:
    entry = ROUTES[key]
    assert isinstance(entry, TenantResource)
    rule, method = key
    fields = entry.fields or tuple(next(r for r in app.url_map.iter_rules() if r.rule == rule).arguments)
    for url in urls(app, rule, method, B_VALUES, world):
        before = snapshot(app, provider, world)
        response = probe.call(method, url, json=entry.json(world) if entry.json else None,
                              form=entry.form(world) if entry.form else None)
        problems = []
        if response.status_code != 404:
            said = response.get_data(as_text=True)[:200].strip()
            problems.append(f"answered {response.status_code}: {said}")
        elif url.startswith("/api/") and response.json.get("field") not in fields:
            problems.append(f"404 naming {response.json.get('field')!r}, not one of {fields}")
        if diff := tenants.changed(before, snapshot(app, provider, world)):
            problems.append(f"changed B: {diff}")
        assert not problems, f"A's owner {method} {url}: " + "; ".join(problems)


@pytest.mark.parametrize("key", _keys(CallerScoped), ids=_ids(_keys(CallerScoped)))
def test_a_caller_scoped_route_never_reaches_another_tenant(
        app: Flask, provider: DataProvider, world: World, probe: Probe, key: tuple[str, str]) -> None:
    entry = ROUTES[key]
    assert isinstance(entry, CallerScoped)
    if entry.prepare is not None:
        entry.prepare(probe)
    before = snapshot(app, provider, world)
    entry.check(probe)
    assert tenants.changed(before, snapshot(app, provider, world)) == [], f"{key} changed B"


@pytest.mark.parametrize("key", _keys(OperatorOnly), ids=_ids(_keys(OperatorOnly)))
def test_an_operator_route_refuses_a_tenant_owner(
        app: Flask, provider: DataProvider, world: World, probe: Probe, key: tuple[str, str]) -> None:
    entry = ROUTES[key]
    assert isinstance(entry, OperatorOnly)
    rule, method = key
    for url in urls(app, rule, method, B_VALUES, world):
        before = snapshot(app, provider, world)
        response = probe.call(method, url, json=entry.json(world) if entry.json else None)
        assert_refused(response, 403, None)
        assert tenants.changed(before, snapshot(app, provider, world)) == [], f"{method} {url} changed B"


@pytest.mark.parametrize("key", _keys(Public), ids=_ids(_keys(Public)))
def test_a_public_route_answers_without_a_token_and_leaves_others_alone(
        app: Flask, provider: DataProvider, world: World, key: tuple[str, str]) -> None:
    entry = ROUTES[key]
    assert isinstance(entry, Public)
    rule, method = key
    client = app.test_client()
    for url in urls(app, rule, method, {**B_VALUES, **entry.values}, world):
        before = snapshot(app, provider, world)
        response = client.open(url, method=method)
        response.close()  # files are streamed
        assert response.status_code not in (401, 403), (method, url, response.status_code)
        assert response.status_code < 500, (method, url, response.get_data(as_text=True)[:300])
        assert tenants.changed(before, snapshot(app, provider, world)) == [], f"{method} {url} changed B"


# --- what the sweep's table cannot say on its own -----------------------------------------

def test_a_role_name_of_another_tenant_is_unknown(api: FlaskClient, provider: DataProvider, world: World,
                                                  probe: Probe) -> None:
    member = tenants.add_member(provider, world.a.id, "employee")
    before = snapshot(api.application, provider, world)
    response = probe.call("PUT", f"/api/v1/iam/members/{member.user_id}/roles",
                          json={"roles": [world.b_custom_role]})
    assert_refused(response, 404, "roles")
    assert probe.call("GET", f"/api/v1/iam/members/{member.user_id}").json["roles"] == ["employee"]
    assert tenants.changed(before, snapshot(api.application, provider, world)) == []


def test_signing_in_to_another_tenant_is_not_found(api: FlaskClient, world: World, probe: Probe) -> None:
    body = {"email": probe.account.email, "password": probe.account.password, "tenant": world.b.slug}
    assert_refused(api.post(tenants.TOKENS_URL, json=body), 404, "tenant")


def test_a_signup_status_shows_progress_only(api: FlaskClient, world: World, probe: Probe) -> None:
    # Finding, by design today: anyone holding a signup's id (it is random, returned only to
    # whoever signed up) reads its progress, without a token. It must stay progress only.
    for headers in ({}, bearer(probe.tokens.access_token)):
        response = api.get(f"/api/v1/tenancy/signups/{world.b_signup}", headers=headers)
        assert response.status_code == 200
        assert set(response.json) == {"id", "tenant_id", "slug", "status", "failure_reason", "complete",
                                      "steps"}
        assert response.json["tenant_id"] == str(world.b.id)
        page = api.get(f"/tenancy/signups/{world.b_signup}", headers=headers)
        assert page.status_code == 200
        text = page.get_data(as_text=True) + response.get_data(as_text=True)
        assert world.b.member("owner").email not in text and "Owner of B" not in text
    assert_refused(api.get(f"/api/v1/tenancy/signups/{uuid.uuid4()}"), 404, "signup_id")


def test_managing_a_member_of_both_tenants_in_a_leaves_their_standing_in_b(
        api: FlaskClient, provider: DataProvider, world: World, probe: Probe) -> None:
    # One person in both tenants: what A's owner does to them in A must not reach B.
    shared = tenants.add_member(provider, world.b.id, "employee")
    tenants.add_member(provider, world.a.id, "employee", account=shared)
    in_b = tenants.sign_in(api, shared, world.b.slug).access_token
    in_a = tenants.sign_in(api, shared, world.a.slug).access_token
    before = tenants.tenant_fingerprint(provider, world.b.id, user_ids=world.b_people)
    member = f"/api/v1/iam/members/{shared.user_id}"
    assert probe.call("PUT", f"{member}/roles", json={"roles": ["hr_manager"]}).status_code == 200
    assert probe.call("POST", f"{member}/cut-off").json == {"revoked": 1}
    assert probe.call("POST", f"{member}/deactivate").status_code == 200
    assert_refused(api.get("/api/v1/iam/me", headers=bearer(in_a)), 401, "Authorization")
    still = api.get("/api/v1/iam/me", headers=bearer(in_b))
    assert still.status_code == 200 and still.json["tenant_id"] == str(world.b.id)
    assert still.json["permissions"] == sorted(iam.BUILTIN_ROLES["employee"])
    assert tenants.changed(before, tenants.tenant_fingerprint(provider, world.b.id,
                                                               user_ids=world.b_people)) == []
