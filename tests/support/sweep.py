"""What the bad-input sweeps share (tests/integration/web/sweep/): the app's routes read at
collection time, the world the sweep acts in (a tenant whose owner calls, an operator, a
second tenant, real things for every path argument), who may call a view, and the footprint
a refused request must not change."""
from __future__ import annotations

import functools
import io
import re
import secrets
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config.settings import load_settings
from domain.db.provider import MANAGEMENT, TRIAL, DataProvider
from domain.employment.rows import COLUMNS
from domain.iam import services as iam
from domain.iam.access import OPERATOR
from domain.identity import services as identity
from domain.notifications.models import Notice
from tests.support import pages, refs, tenants
from tests.support.oidc_provider import CLIENT_ID, OidcProvider
from tests.support.tenants import Account, TenantWithMembers, bearer
from web import create_app
from web.openapi import openapi_path

# A NUL character in text long enough for any minLength of the API and short enough for its
# smallest maxLength, with an "@" (a check for an email address's "@" alone lets it through).
NUL = "nul \x00 inside, at@example.com"
LONE_SURROGATE = "half \ud800 a pair, at@example.com"  # sent as JSON's "\\ud800" escape
OVERSIZED_LENGTH = 100_001  # one more than the largest maxLength of the API (a publication's body)
OVERSIZED = "o" * OVERSIZED_LENGTH


# --- what the app declares, read at collection time ------------------------------------------

# Enough settings to build the app and read its routes and OpenAPI document; the URLs name
# ports nothing listens on, so a connection attempt would fail the collection loudly.
_COLLECTION_ENV = {
    "ENV": "test", "SECRET_KEY": "collection-only-secret-key-0123456789abcdef",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/collection_only",
    "BROKER_URL": "redis://127.0.0.1:9/0", "RESULT_BACKEND": "redis://127.0.0.1:9/1",
    "VAR_DIR": str(Path(tempfile.gettempdir()) / "allotment-sweep-collection"),
    "OIDC_ISSUER": "http://127.0.0.1:9/", "OIDC_CLIENT_ID": CLIENT_ID,
}


@functools.cache
def collection_app() -> Flask:
    """The app as built for collection: its routes and views, never a server contacted."""
    return create_app(load_settings(_COLLECTION_ENV))


def served_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document ``app`` serves."""
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json  # type: ignore[no-any-return]


@functools.cache
def documented_operations() -> tuple[tuple[tuple[str, str, dict[str, Any]], ...], dict[str, Any]]:
    """(rule, METHOD, operation) for every operation of the OpenAPI document the app built for
    collection serves, and the document's schemas."""
    app = collection_app()
    spec = served_spec(app)
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            (rule,) = [r.rule for r in app.url_map.iter_rules(operation["operationId"])
                       if openapi_path(r.rule) == path]
            found.append((rule, method.upper(), operation))
    return tuple(found), spec["components"]["schemas"]


_ARGUMENT = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


def arguments(rule: str) -> tuple[tuple[str, str], ...]:
    """The rule's path arguments: (converter, name), in order."""
    return tuple((converter or "default", name) for converter, name in _ARGUMENT.findall(rule))


def variants(rule: str) -> list[str]:
    """How the path is filled: real things and, apart, ids nothing has; or nothing to fill."""
    return ["real", "missing"] if arguments(rule) else [""]


def variant_label(rule: str, variant: str) -> str:
    names = ", ".join(name for _, name in arguments(rule))
    return f" [{variant} {names}]" if variant else ""


def param(test_id: str, known_defects: dict[str, str], *values: Any) -> Any:
    """A pytest parameter, a strict xfail when ``known_defects`` names its test id."""
    reason = known_defects.get(test_id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*values, id=test_id, marks=marks)


# --- the world the sweep acts in -------------------------------------------------------------------

@dataclass
class World:
    """The app, a tenant whose owner calls, an operator, a second tenant (operators' target),
    and shared things every case may name."""

    app: Flask
    client: FlaskClient
    provider: DataProvider
    idp: OidcProvider
    tenant: TenantWithMembers        # an owner, an employee (signs in with a password)
    owner_token: str
    operator: Account
    operator_token: str
    victim: TenantWithMembers        # what operator routes act on
    product_code: str
    purchase_id: uuid.UUID           # the victim's, settled (no message left to handle)
    own_purchase_id: uuid.UUID       # the tenant's, settled too
    employees: tuple[uuid.UUID, uuid.UUID]
    string_key: str                  # a product string a tenant may override
    people: list[uuid.UUID]          # every account of either tenant (the provider's person too)
    footprint: Footprint

    def api(self, method: str, path: str, body: Any = None, status: int = 201) -> dict[str, Any]:
        """A call of the tenant's owner that must succeed; its JSON answer."""
        response = self.client.open(path, method=method, json=body, headers=bearer(self.owner_token))
        assert response.status_code == status, (path, response.get_data(as_text=True)[:300])
        return response.json  # type: ignore[no-any-return]

    def fresh_member(self, role: str) -> Account:
        """A new account holding ``role`` in the tenant."""
        account = tenants.add_member(self.provider, self.tenant.id, role)
        self.people.append(account.user_id)
        return account


@dataclass
class Call:
    """One request being made: who calls, and the path's values filled so far."""

    world: World
    caller: Account | None
    token: str | None
    values: dict[str, str] = field(default_factory=dict)


def short_hex() -> str:
    return secrets.token_hex(4)


def _made(w: World, path: str, body: dict[str, Any]) -> str:
    """The id of a thing the owner creates (201)."""
    return str(w.api("POST", path, body)["id"])


def make_employee(w: World, c: Call) -> str:
    return _made(w, "/api/v1/employment/employees",
                 {"name": f"Sweep Person {short_hex()}", "work_email": refs.email("employee")})


def _publication(w: World, c: Call) -> str:
    made = w.api("POST", "/api/v1/publications", {"title": f"Sweep {short_hex()}", "body": "News.",
                                                   "sections": [{"heading": "First", "body": "One."}]})
    c.values.setdefault("section_id", str(made["sections"][0]["id"]))
    return str(made["id"])


def _section(w: World, c: Call) -> str:
    if "section_id" in c.values:
        return c.values["section_id"]
    made = w.api("POST", f"/api/v1/publications/{c.values['publication_id']}/sections", {"heading": "More"})
    return str(made["id"])


def _role(w: World, c: Call) -> str:
    with w.provider.management() as session:
        row = iam.create_role(session, w.tenant.id, f"r_{short_hex()}", ["notifications:read"],
                              granted_by=None)
        session.commit()
    return str(row.id)


def _notice(w: World, c: Call) -> str:
    assert c.caller is not None, "a notice is the caller's"
    notice = Notice(id=uuid.uuid4(), user_id=c.caller.user_id, event_id=uuid.uuid4(), category="assets",
                    title="Sweep notice", body="A notice.")
    with w.provider.tenant(w.tenant.id) as session:
        session.add(notice)
        session.commit()
    return str(notice.id)


def _session(w: World, c: Call) -> str:
    assert c.caller is not None, "a session is the caller's"
    return str(tenants.sign_in(w.client, c.caller, w.tenant.slug).session_id)


def _override(w: World, c: Call) -> str:
    made = w.api("PUT", "/api/v1/translations/overrides",
                 {"locale": "en", "key": w.string_key, "text": f"Ours {short_hex()}"}, status=200)
    return str(made["id"])


def invitation_token(w: World, c: Call) -> str:
    with w.provider.management() as session:
        _, token = iam.invite(session, w.victim.id, email=refs.email("invitee"), role_name="employee",
                              invited_by=w.victim.member("owner").user_id, lifetime=timedelta(days=1))
        session.commit()
    return token


def verification_token(w: World, c: Call) -> str:
    """A live link verifying the caller's address (a fresh account's, for no caller), whose
    password is ``tenants.PASSWORD``."""
    account = c.caller or tenants.create_account(w.provider, prefix="verifying", email_verified=False)
    with w.provider.management() as session:
        _, token = identity.start_email_verification(session, account.user_id, timedelta(days=1))
        session.commit()
    return token


def reset_token(w: World, c: Call) -> str:
    """A live link setting a new password for a fresh account (using it signs that account
    out everywhere: never the caller's)."""
    return tenants.reset_link(w.provider, tenants.create_account(w.provider, prefix="resetting").user_id)


def _import(w: World, c: Call) -> str:
    csv = ",".join(COLUMNS) + "\n" + f"Sweep Person,{refs.email('imported')},,,,,active,\n"
    response = w.client.post("/api/v1/employment/imports", headers=bearer(w.owner_token),
                             data={"file": (io.BytesIO(csv.encode()), "people.csv")},
                             content_type="multipart/form-data")
    assert response.status_code == 202, response.get_data(as_text=True)[:300]
    return str(response.json["id"])  # type: ignore[index]


# Path arguments by name: a real one, made for the call (or shared where no input can spend it).
REAL: dict[str, Callable[[World, Call], str]] = {
    "employee_id": make_employee,
    "job_type_id": lambda w, c: _made(w, "/api/v1/employment/job-types", {"name": f"Job {short_hex()}"}),
    "org_unit_id": lambda w, c: _made(w, "/api/v1/employment/org-units", {"name": f"Unit {short_hex()}"}),
    "user_id": lambda w, c: str(w.fresh_member("employee").user_id),
    "role_id": _role,
    "publication_id": _publication,
    "section_id": _section,
    "asset_id": lambda w, c: str(w.api("POST", "/api/v1/assets/uploads", {
        "filename": "photo.png", "content_type": "image/png", "size": 1000})["id"]),
    "notice_id": _notice,
    "session_id": _session,
    "override_id": _override,
    "token": invitation_token,
    "verification_token": verification_token,
    "reset_token": reset_token,
    "tenant_id": lambda w, c: str(w.victim.id),
    # The operators' routes act on the victim's purchase; the tenant's own pages show its own.
    "purchase_id": lambda w, c: str(w.purchase_id if c.caller == w.operator else w.own_purchase_id),
    "product_code": lambda w, c: w.product_code,
    "import_id": _import,
}
# Path arguments that are no uuid, when nothing should have them.
MISSING_TEXT: dict[str, str] = {
    "product_code": "no-such-product",
    "token": "no-such-invitation-token-" + "x" * 20,
    "verification_token": "no-such-verification-token-" + "x" * 20,
    "reset_token": "no-such-reset-token-" + "x" * 20,
}


def fill(rule: str, variant: str, call: Call) -> str:
    """The rule's URL with its arguments real (made now, unless ``call.values`` has them) or missing."""
    for converter, name in arguments(rule):
        if variant == "real" and name in call.values:  # made already, or given by the caller
            continue
        if variant == "real":
            maker = REAL.get(name)
            assert maker is not None, f"no maker of a real {name!r} ({rule}): add one to REAL"
            call.values[name] = maker(call.world, call)
        elif converter == "uuid":
            call.values[name] = str(uuid.uuid4())
        else:
            assert name in MISSING_TEXT, f"no missing {name!r} ({rule}): add one to MISSING_TEXT"
            call.values[name] = MISSING_TEXT[name]
    return _ARGUMENT.sub(lambda m: call.values[m.group(2)], rule)


# The SES feedback route's token in the sweep's app (tests/integration/web/sweep/conftest.py).
SES_FEEDBACK_TOKEN = "sweep-ses-feedback-token-0123456789"


# --- who may call a view ----------------------------------------------------------------------------

def admission(app: Flask, rule: str, method: str) -> tuple[str | None, str | None]:
    """How the view of ``rule`` is guarded: its kind of authentication (``bearer``, ``cookie``
    or None: none) and the permission it requires (None: any caller it admits)."""
    endpoint = next(r.endpoint for r in app.url_map.iter_rules()
                    if r.rule == rule and method in (r.methods or ()))
    view = app.view_functions[endpoint]
    return getattr(view, "auth", None), getattr(view, "required_permission", None)


# --- what a request could write ---------------------------------------------------------------------

# Tables only requests write, compared whole; and tables only counted (a worker of another
# module may update their rows, e.g. a signup's status, but never inserts one).
WHOLE_TABLES = ("invitations", "resellers", "reseller_admins", "products", "external_identities")
COUNTED_TABLES = ("tenants", "signups")


class Footprint:
    """Row count and checksum of everything the sweep's requests could write, in one prepared
    statement per database on a connection of its own (autocommit: every statement sees what
    is committed), with the outbox rows carrying a request's id. The tables with a tenant_id
    are read from the catalogue once, so a new table joins by itself."""

    def __init__(self, provider: DataProvider) -> None:
        self._connections: dict[str, psycopg.Connection[Any]] = {}
        self._statements: dict[str, tuple[str, list[str]]] = {}
        for db_key in (MANAGEMENT, TRIAL):
            dsn = provider.url_of(db_key).replace("postgresql+psycopg://", "postgresql://", 1)
            connection = psycopg.connect(dsn, autocommit=True)
            self._connections[db_key] = connection
            tables = [t for (t,) in connection.execute(tenants.TENANT_TABLES_SQL)
                      if t not in tenants.WORKER_ONLY]
            checks = {f"{db_key}.{t}": (t, "t.tenant_id = ANY(%(tenants)s)", True) for t in tables}
            if db_key == MANAGEMENT:
                checks["management.tenants[id]"] = ("tenants", "t.id = ANY(%(tenants)s)", True)
                checks |= {f"management.{t}[user]": (t, f"t.{c} = ANY(%(users)s)", True)
                           for t, c in tenants.BY_USER.items()}
                checks |= {f"management.{t}": (t, "true", True) for t in WHOLE_TABLES}
                checks |= {f"management.{t}(count)": (t, "true", False) for t in COUNTED_TABLES}
            columns = ["(SELECT count(*) FROM outbox WHERE correlation_id = %(request_id)s)"]
            for table, where, summed in checks.values():
                columns.append(tenants.digest_sql(table, where) if summed
                               else f'(SELECT count(*) FROM "{table}" t WHERE {where})')
            self._statements[db_key] = ("SELECT " + ", ".join(columns), list(checks))

    def take(self, w: World, request_id: str = "") -> tuple[int, dict[str, str]]:
        """Outbox rows carrying ``request_id`` (a background worker's never do), and the
        digests of the tenants', their people's and the request-only tables' rows."""
        params = {"tenants": [w.tenant.id, w.victim.id], "users": sorted(set(w.people)),
                  "request_id": request_id}
        messages, prints = 0, {}
        for db_key, (statement, names) in self._statements.items():
            row = self._connections[db_key].execute(statement, params, prepare=True).fetchone()
            assert row is not None
            messages += row[0]
            prints |= dict(zip(names, row[1:], strict=True))
        return messages, prints

    def messages(self, request_id: str) -> int:
        """Outbox rows carrying ``request_id`` (their correlation id) in the management and the
        trial database: a background worker's rows never carry it."""
        count = 0
        for connection in self._connections.values():
            row = connection.execute("SELECT count(*) FROM outbox WHERE correlation_id = %s", (request_id,),
                                     prepare=True).fetchone()
            count += row[0] if row else 0
        return count

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()


# --- who calls, and what the test report keeps ---------------------------------------------------

def caller_for(w: World, auth: str | None, permission: str | None) -> tuple[Account | None, str | None]:
    """Who calls a view: an operator, the owner, a fresh member (a view of the caller's own,
    which a good input could end: my password), or nobody."""
    if auth is None:
        return None, None
    if permission == OPERATOR:
        return w.operator, w.operator_token
    if permission is not None:
        return w.tenant.member("owner"), w.owner_token
    member = w.fresh_member("employee")
    return member, tenants.access_token(w.client, member, w.tenant.slug)


def note(request: pytest.FixtureRequest, name: str, value: str) -> None:
    """Keep what the app answered with the test's report (``--junitxml`` writes it; unlike
    ``record_property``, without a warning under the xunit2 family)."""
    request.node.user_properties.append((name, value))


# --- schemas of the OpenAPI document ----------------------------------------------------------------

def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``$ref`` followed."""
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


def value_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The schema a value must meet, ``anyOf [X, null]`` read as X."""
    schema = resolve(schema, components)
    options = [resolve(s, components) for s in schema.get("anyOf", [])]
    others = [s for s in options if s.get("type") != "null"]
    return others[0] if others else schema


# --- browsers -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Browsing:
    """What the sweep's browsers share: one page session with its CSRF token (the token is
    bound to the session cookie, not to whoever signs in), and the owner's tokens."""

    session_cookie: str
    csrf_token: str
    owner: tenants.Tokens


def browser_of(w: World, browsing: Browsing, signed_in: tenants.Tokens) -> FlaskClient:
    """A browser with the shared page session, signed in with ``signed_in`` (both token
    cookies, as the sign-in page sets them)."""
    browser = w.app.test_client()
    browser.set_cookie(w.app.config["SESSION_COOKIE_NAME"], browsing.session_cookie)
    browser.set_cookie(w.app.config["JWT_ACCESS_COOKIE_NAME"], signed_in.access_token)
    browser.set_cookie(w.app.config["JWT_REFRESH_COOKIE_NAME"], signed_in.refresh_token,
                       path=w.app.config["JWT_REFRESH_COOKIE_PATH"])
    return browser


# GET pages that render no form (or leave the site): not read for fields.
NOT_PAGES = ("/api/", "/static/", "/docs", "/openapi.json", "/metrics", "/healthz", "/readyz",
              "/identity/oidc/", "/storage/")


def sent_to_sign_in(response: TestResponse) -> bool:
    """The guard sent the browser to sign in, with ``next`` (its cookies were not enough);
    unlike ``pages.goes_to_sign_in``, not signing out, which also ends on the sign-in page."""
    if not pages.goes_to_sign_in(response):
        return False
    return "next" in parse_qs(urlsplit(response.location).query)


def pages_to_read(app: Flask, excluded: tuple[str, ...] = NOT_PAGES) -> list[str]:
    """Every GET route outside ``excluded`` whose path arguments the sweep can make real."""
    return sorted({r.rule for r in app.url_map.iter_rules()
                   if "GET" in (r.methods or set()) and not r.rule.startswith(excluded)
                   and all(name in REAL for _, name in arguments(r.rule))})


def assert_no_5xx(response: TestResponse) -> None:
    """A browser's answer to bad input: never a 5xx, a 403, a 429 or a trip to the sign-in page."""
    page = response.get_data(as_text=True)[:400]
    assert response.status_code < 500, f"{response.status_code}: {page}"
    assert response.status_code not in (403, 429), f"{response.status_code}: {page}"
    assert not sent_to_sign_in(response), f"sent to sign in: {response.location}"
