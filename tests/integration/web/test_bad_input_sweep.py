"""Bad input never gets a 5xx: a sweep of every JSON operation and every HTML form POST.

The standard (DESIGN §7): bad input gets a clear 4xx naming the field and the reason; never
a 500, never a half-written record. The operations come from the app itself, so a new
endpoint joins the sweep without anyone listing it:

- **JSON**: every operation of the app's own OpenAPI document (``GET /openapi.json``) with
  a request body, and the views that read a body their operation does not describe
  (``UNDESCRIBED_BODIES``: SES feedback). Each gets malformed JSON, JSON that is no
  object, a JSON body sent as ``text/plain``, ``{}`` (when it has required properties),
  and for each property of its schema (nested: ``audience.kind``, ``sections.0.heading``)
  the wrong type, a string with a NUL character and a string of 100,001 characters (over
  the largest ``maxLength`` of the API); an integer also gets 2**64. The rest of the body
  is valid (``VALID``, else made from the schema). A path argument is filled with a real
  thing made for the test (``REAL``) and, as a test of its own, with one nothing has. The
  caller is whoever the view admits: the tenant's owner for a permission, a platform
  operator for an operator route, a fresh member for a route of the caller's own (my
  password), nobody for a public one. The answer must be a 4xx in the one JSON error shape
  naming the field the case spoiled (or the path argument of a 404 for a thing nothing has;
  ``FIELD_ALIASES`` where the app documents another name); not 403, not a 401 about the
  token, not 429 (the caller was wrong, not the input). A refused request must leave no
  outbox row carrying its request id in the management or the trial database, and nothing
  changed of both tenants it can reach, their people, the tables only requests write, and
  the number of tenants and signups (``Footprint``). A 2xx is no failure by itself (an
  input legitimately accepted); it is kept as the test's ``accepted`` property, which
  ``--junitxml`` writes, as ``refused`` and ``answer`` are.
- **HTML**: every POST route outside ``/api/``, from ``app.url_map``, posted by a browser
  with a page session and both token cookies: the tenant's owner for a page that needs a
  permission, a fresh member for one of the caller's own (password, sessions, sign-out)
  or a public one. It posts nothing at all, only its CSRF token, and every field it
  expects (of the form classes its view names and of every rendered form that posts to
  it; a button's form gets one it does not expect) as NUL-containing text and as 100,001
  characters. Never a 5xx, a 403, a 429 or a trip to the sign-in page; a refused post
  leaves no outbox row carrying its request id.

The app under test is the session's stack with an OpenID Connect provider of the module
(so the ID-token route checks bodies instead of answering "not configured"), an SES feedback
token, and a broker database no worker consumes (REDIS_DB_METRICS_IDLE): a message an
accepted input queues is never handled while the sweep compares footprints. Known defects
are strict xfails in ``KNOWN_DEFECTS``, by test id.
"""
from __future__ import annotations

import base64
import functools
import inspect
import json
import re
import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from sqlalchemy import text
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.test import TestResponse
from wtforms.fields.core import UnboundField

from config.settings import Settings, load_settings
from domain.db.provider import MANAGEMENT, TRIAL, DataProvider
from domain.iam import services as iam
from domain.iam.access import OPERATOR
from domain.notifications.models import Notice
from domain.purchases import catalogue
from domain.purchases import services as purchases
from domain.purchases.catalogue import ProductSpec
from domain.purchases.sandbox import SandboxGateway
from domain.purchases.services import PurchaseRequest
from tests.support import pages, refs, tenants
from tests.support.apps import web_app
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, ProviderUser
from tests.support.services import REDIS_DB_METRICS_IDLE, Services
from tests.support.tenants import Account, TenantWithMembers, bearer, page_csrf
from web import create_app
from web.openapi import openapi_path

# A NUL character in text long enough for any minLength of the API and short enough for its
# smallest maxLength, with an "@" (a check for an email address's "@" alone lets it through).
NUL = "nul \x00 inside, at@example.com"
OVERSIZED_LENGTH = 100_001  # one more than the largest maxLength of the API (a publication's body)
OVERSIZED = "o" * OVERSIZED_LENGTH
NONCE = "sweep-nonce-" + secrets.token_hex(8)


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


_ARGUMENT = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


def arguments(rule: str) -> tuple[tuple[str, str], ...]:
    """The rule's path arguments: (converter, name), in order."""
    return tuple((converter or "default", name) for converter, name in _ARGUMENT.findall(rule))


@dataclass(frozen=True)
class Operation:
    """A JSON operation with a request body."""

    method: str
    rule: str
    endpoint: str
    schema: dict[str, Any]  # the request body's schema

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule}"


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``$ref`` followed."""
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


@functools.cache
def json_operations() -> tuple[tuple[Operation, ...], dict[str, Any]]:
    """Every operation of the served OpenAPI document that takes a JSON body, and the
    document's schemas."""
    app = collection_app()
    spec = served_spec(app)
    components = spec["components"]["schemas"]
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            rules = [r.rule for r in app.url_map.iter_rules(operation["operationId"])
                     if openapi_path(r.rule) == path]
            assert len(rules) == 1, (path, rules)
            schema = resolve(body["content"]["application/json"]["schema"], components)
            found.append(Operation(method.upper(), rules[0], operation["operationId"], schema))
    for endpoint, (method, schema) in UNDESCRIBED_BODIES.items():
        assert all(o.endpoint != endpoint for o in found), f"{endpoint} describes its body now"
        (rule,) = [r.rule for r in app.url_map.iter_rules(endpoint)]
        found.append(Operation(method, rule, endpoint, schema))
    return tuple(sorted(found, key=lambda o: (o.rule, o.method))), components


# Views that read a JSON body their OpenAPI operation does not describe, with the shape they
# read: SNS's envelope around SES's bounce (web/notifications/feedback.py).
_SES_BOUNCE = {"type": "object", "properties": {
    "bounceType": {"type": "string"}, "bounceSubType": {"type": "string"},
    "bouncedRecipients": {"type": "array", "items": {"type": "object", "properties": {
        "emailAddress": {"type": "string"}, "action": {"type": "string"}}}}}}
UNDESCRIBED_BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "notifications.ses_feedback": ("POST", {"type": "object", "required": ["Type"], "properties": {
        "Type": {"type": "string"},
        "Message": {"type": "object", "properties": {"notificationType": {"type": "string"},
                                                     "bounce": _SES_BOUNCE}}}}),
}


def form_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (rule, endpoint) outside /api/ that accepts POST."""
    return sorted((r.rule, r.endpoint) for r in app.url_map.iter_rules()
                  if "POST" in (r.methods or set()) and not r.rule.startswith("/api/"))


# --- the JSON cases ------------------------------------------------------------------------------

@dataclass(frozen=True)
class JsonCase:
    """One bad body: raw bytes, or the valid body with one property replaced (or emptied)."""

    name: str
    fields: frozenset[str]                   # the fields a refusal may name
    raw: bytes | None = None                 # sent as is
    content_type: str = "application/json"
    path: tuple[str, ...] = ()               # the property replaced (nested: its parent first)
    value: Any = None
    empty: bool = False                      # ``{}``


BODY = frozenset({"body"})
BODY_CASES = (
    JsonCase("malformed JSON", BODY, raw=b'{"a":'),
    JsonCase("JSON null", BODY, raw=b"null"),
    JsonCase("JSON list", BODY, raw=b"[]"),
    JsonCase("JSON string", BODY, raw=b'"x"'),
    JsonCase("JSON body as text/plain", frozenset({"Content-Type"}), content_type="text/plain"),
    JsonCase("JSON nested too deep", BODY, raw=b"[" * 100_000),
)
# For an id nothing has, one case is enough: the valid body (a 404 naming the path argument).
MISSING_CASE = JsonCase("valid body", frozenset())


def _kind(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The schema a value must meet, ``anyOf [X, null]`` read as X."""
    schema = resolve(schema, components)
    options = [resolve(s, components) for s in schema.get("anyOf", [])]
    others = [s for s in options if s.get("type") != "null"]
    return others[0] if others else schema


def wrong_type(schema: dict[str, Any]) -> tuple[str, Any]:
    """A value of the wrong JSON type for ``schema``, and what it is."""
    kind = schema.get("type")
    if kind in ("integer", "number", "boolean"):
        return "an object", {"n": 1}
    if kind == "array":
        return "a string", "x"
    if kind == "object":
        return "a list", ["x"]
    return "a number", 12345


def property_cases(schema: dict[str, Any], components: dict[str, Any],
                   parent: tuple[str, ...] = ()) -> Iterator[JsonCase]:
    """Wrong type, NUL and oversized for each property, and for the properties of an object
    property (``audience.kind``) and of the first item of a list of objects
    (``sections.0.heading``); an integer also gets one no 64-bit column holds."""
    for name, raw in schema.get("properties", {}).items():
        prop = _kind(raw, components)
        path = (*parent, name)
        label = ".".join(path)
        named = frozenset({label})
        described, wrong = wrong_type(prop)
        as_list = prop.get("type") == "array"
        yield JsonCase(f"{label}=wrong type ({described})", named, path=path, value=wrong)
        yield JsonCase(f"{label}=NUL", named, path=path, value=[NUL] if as_list else NUL)
        yield JsonCase(f"{label}=oversized", named, path=path, value=[OVERSIZED] if as_list else OVERSIZED)
        if prop.get("type") == "integer":
            yield JsonCase(f"{label}=2**64", named, path=path, value=2**64)
        if prop.get("type") == "object" and prop.get("properties"):
            yield from property_cases(prop, components, path)
        items = _kind(prop.get("items", {}), components) if as_list else {}
        if items.get("type") == "object" and items.get("properties"):
            yield from property_cases(items, components, (*path, "0"))


def json_cases(operation: Operation, components: dict[str, Any]) -> list[JsonCase]:
    """Every case of one operation."""
    cases = list(BODY_CASES)
    required = operation.schema.get("required", [])
    if required:
        cases.append(JsonCase("{}", frozenset(required), empty=True))
    cases.extend(property_cases(operation.schema, components))
    return cases


def variants(rule: str) -> list[str]:
    """How the path is filled: real things and, apart, ids nothing has; or nothing to fill."""
    return ["real", "missing"] if arguments(rule) else [""]


def _variant_label(rule: str, variant: str) -> str:
    names = ", ".join(name for _, name in arguments(rule))
    return f" [{variant} {names}]" if variant else ""


# Inputs accepted on purpose. SES feedback reads what it can of what SNS posts and answers
# 200 to the rest (SNS would re-post a refused message for days). A password is any text
# (hashed, never shown). A number for a time is a Unix time, and a time that has passed
# publishes at once, as the operation says.
LENIENT = frozenset({"notifications.ses_feedback"})
ACCEPTED = frozenset({
    "tenancy.create_signup: password=NUL",
    "identity.accept_invitation: password=NUL",
    "identity.change_password: new_password=NUL",
    "publications.publish_publication: publish_at=wrong type (a number)",
})


# Cases the app gets wrong today (test id -> what happens): strict xfails, to be fixed. Empty
# when none is known; an entry must name a swept case (tested below).
KNOWN_DEFECTS: dict[str, str] = {}


def _param(test_id: str, *values: Any) -> Any:
    reason = KNOWN_DEFECTS.get(test_id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*values, id=test_id, marks=marks)


def json_params() -> list[Any]:
    operations, components = json_operations()
    params = []
    for operation in operations:
        for variant in variants(operation.rule):
            for case in json_cases(operation, components) if variant != "missing" else [MISSING_CASE]:
                test_id = f"{operation.label}{_variant_label(operation.rule, variant)}: {case.name}"
                params.append(_param(test_id, operation, variant, case))
    return params


HTML_CASES = ("nothing (no CSRF token)", "CSRF token only", "every field=NUL", "every field=oversized")


@dataclass(frozen=True)
class FormCase:
    """One post of an HTML form route."""

    rule: str
    variant: str
    case: str


def form_params() -> list[Any]:
    params = []
    for rule, _ in form_routes(collection_app()):
        for variant in variants(rule):
            for case in HTML_CASES if variant != "missing" else HTML_CASES[1:2]:
                test_id = f"POST {rule}{_variant_label(rule, variant)}: {case}"
                params.append(_param(test_id, FormCase(rule, variant, case)))
    return params


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


def _hex() -> str:
    return secrets.token_hex(4)


def _made(w: World, path: str, body: dict[str, Any]) -> str:
    """The id of a thing the owner creates (201)."""
    return str(w.api("POST", path, body)["id"])


def _employee(w: World, c: Call) -> str:
    return _made(w, "/api/v1/employment/employees",
                 {"name": f"Sweep Person {_hex()}", "work_email": refs.email("employee")})


def _publication(w: World, c: Call) -> str:
    made = w.api("POST", "/api/v1/publications", {"title": f"Sweep {_hex()}", "body": "News.",
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
        row = iam.create_role(session, w.tenant.id, f"r_{_hex()}", ["notifications:read"], granted_by=None)
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
                 {"locale": "en", "key": w.string_key, "text": f"Ours {_hex()}"}, status=200)
    return str(made["id"])


def _invitation_token(w: World, c: Call) -> str:
    with w.provider.management() as session:
        _, token = iam.invite(session, w.victim.id, email=refs.email("invitee"), role_name="employee",
                              invited_by=w.victim.member("owner").user_id, lifetime=timedelta(days=1))
        session.commit()
    return token


# Path arguments by name: a real one, made for the call (or shared where no input can spend it).
REAL: dict[str, Callable[[World, Call], str]] = {
    "employee_id": _employee,
    "job_type_id": lambda w, c: _made(w, "/api/v1/employment/job-types", {"name": f"Job {_hex()}"}),
    "org_unit_id": lambda w, c: _made(w, "/api/v1/employment/org-units", {"name": f"Unit {_hex()}"}),
    "user_id": lambda w, c: str(w.fresh_member("employee").user_id),
    "role_id": _role,
    "publication_id": _publication,
    "section_id": _section,
    "asset_id": lambda w, c: str(w.api("POST", "/api/v1/assets/uploads", {
        "filename": "photo.png", "content_type": "image/png", "size": 1000})["id"]),
    "notice_id": _notice,
    "session_id": _session,
    "override_id": _override,
    "token": _invitation_token,
    "tenant_id": lambda w, c: str(w.victim.id),
    "purchase_id": lambda w, c: str(w.purchase_id),
    "product_code": lambda w, c: w.product_code,
}
# Path arguments that are no uuid, when nothing should have them.
MISSING_TEXT: dict[str, str] = {
    "product_code": "no-such-product",
    "token": "no-such-invitation-token-" + "x" * 20,
}


def fill(rule: str, variant: str, call: Call) -> str:
    """The rule's URL with its arguments real (made now) or missing."""
    for converter, name in arguments(rule):
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


# --- valid bodies -----------------------------------------------------------------------------

def _signup(w: World, c: Call) -> dict[str, Any]:
    return refs.signup_body()


def _oidc(w: World, c: Call) -> dict[str, Any]:
    return {"id_token": w.idp.mint(NONCE), "nonce": NONCE, "tenant": w.tenant.slug}


def _offboard(w: World, c: Call) -> dict[str, Any]:
    return {"confirm_slug": w.victim.slug if c.values.get("tenant_id") == str(w.victim.id) else "nobody"}


def _publication_body(w: World, c: Call) -> dict[str, Any]:
    return {"title": f"Sweep {_hex()}", "body": "News.", "audience": {"kind": "everyone"}, "attachments": []}


# A valid body per operation (the rest of the body when one property is spoiled); an
# operation missing here gets one made from its schema (``example``).
VALID: dict[str, Callable[[World, Call], dict[str, Any]]] = {
    "assets.set_policy": lambda w, c: {"blocked_kinds": ["executable"]},
    "assets.start_upload": lambda w, c: {"filename": "photo.png", "content_type": "image/png", "size": 1000},
    "assets.set_quota": lambda w, c: {"quota_bytes": 10_000_000},
    "employment.create_employee": lambda w, c: {"name": "Sweep Person", "work_email": refs.email("employee"),
                                                "status": "active"},
    "employment.update_employee": lambda w, c: {"name": "Sweep Person", "work_email": refs.email("employee"),
                                                "status": "active"},
    "employment.create_job_type": lambda w, c: {"name": f"Job {_hex()}"},
    "employment.rename_job_type": lambda w, c: {"name": f"Job {_hex()}"},
    "employment.create_org_unit": lambda w, c: {"name": f"Unit {_hex()}", "parent_id": None},
    "employment.update_org_unit": lambda w, c: {"name": f"Unit {_hex()}", "parent_id": None},
    "employment.create_relation": lambda w, c: {"relation": "mentor_of", "from_id": str(w.employees[0]),
                                                "to_id": str(w.employees[1])},
    "iam.invite": lambda w, c: {"email": refs.email("invitee"), "role": "employee"},
    "iam.set_roles": lambda w, c: {"roles": ["employee"]},
    "iam.create_role": lambda w, c: {"name": f"r_{_hex()}", "permissions": ["notifications:read"]},
    "iam.update_role": lambda w, c: {"permissions": ["notifications:read"]},
    "identity.accept_invitation": lambda w, c: {"token": _invitation_token(w, c), "name": "Invited Person",
                                                "password": "invited password 0123"},
    "identity.create_oidc_token": _oidc,
    "identity.change_password": lambda w, c: {"current_password": tenants.PASSWORD,
                                              "new_password": "a new password 0123"},
    "identity.switch_tenant": lambda w, c: {"tenant": w.tenant.slug},
    "identity.create_token": lambda w, c: {"email": w.tenant.member("employee").email,
                                           "password": tenants.PASSWORD, "tenant": w.tenant.slug},
    "notifications.set_branding": lambda w, c: {"display_name": "Sweep Org", "sender_address": None,
                                                "logo_url": None},
    "notifications.set_preferences": lambda w, c: {"categories": {"assets": {"email": True, "in_app": True}},
                                                   "digest": False},
    "notifications.ses_feedback": lambda w, c: {"Type": "Notification", "Message": {
        "notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                                                 "bouncedRecipients": [{"emailAddress": refs.email("bounced"),
                                                                        "action": "failed"}]}}},
    "operations.create_reseller": lambda w, c: {"name": f"Reseller {_hex()}",
                                                "admin_email": tenants.create_account(w.provider).email},
    "operations.set_tenant_reseller": lambda w, c: {"reseller_id": None},
    "operations.offboard_tenant": _offboard,
    "publications.create_publication": lambda w, c: {**_publication_body(w, c),
                                                     "sections": [{"heading": "One", "body": "Text."}]},
    "publications.update_publication": _publication_body,
    "publications.add_section": lambda w, c: {"heading": "Section", "body": "Text."},
    "publications.update_section": lambda w, c: {"heading": "Section", "body": "Text."},
    "publications.reorder_sections": lambda w, c: {"section_ids": [c.values.get("section_id",
                                                                                 str(uuid.uuid4()))]},
    "publications.publish_publication": lambda w, c: {
        "publish_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    "purchases.create_purchase": lambda w, c: {"product_code": w.product_code, "amount_minor": 1500,
                                               "currency": "EUR", "card_number": "4242424242424242"},
    "purchases.create_product": lambda w, c: {"code": f"sweep-{_hex()}", "name": "Sweep add-on",
                                              "kind": "addon", "plan": None, "price_minor": 100,
                                              "currency": "EUR"},
    "purchases.update_product": lambda w, c: {"name": "Sweep renamed", "price_minor": 200, "currency": "EUR"},
    "purchases.refund_purchase": lambda w, c: {"reason": "the customer asked"},
    "tenancy.create_signup": _signup,
    "translations.set_override": lambda w, c: {"locale": "en", "key": w.string_key, "text": "Our words"},
    "translations.set_my_locale": lambda w, c: {"locale": "en"},
}
# Names a 413 may give a field instead (endpoint, field) -> names, where the app says so.
FIELD_ALIASES: dict[tuple[str, str], frozenset[str]] = {
    # README: more than ASSET_MAX_UPLOAD_BYTES, streamed or through an upload link, is a 413 naming `file`.
    ("assets.start_upload", "size"): frozenset({"file"}),
}
# Headers a caller must send besides its token.
SES_FEEDBACK_TOKEN = "sweep-ses-feedback-token-0123456789"
HEADERS: dict[str, Callable[[], dict[str, str]]] = {
    "purchases.create_purchase": lambda: {"Idempotency-Key": uuid.uuid4().hex},
    "notifications.ses_feedback": lambda: {"Authorization": "Basic " + base64.b64encode(
        f"sns:{SES_FEEDBACK_TOKEN}".encode()).decode()},
}


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A plausible value for ``schema`` (for an operation VALID does not know yet)."""
    schema = _kind(schema, components)
    if "enum" in schema:
        return schema["enum"][0]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "object":
        return {name: example(sub, components) for name, sub in schema.get("properties", {}).items()
                if name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return {"email": refs.email("example"), "uuid": str(uuid.uuid4()), "date": "2030-01-02",
            "date-time": "2030-01-02T03:04:05+00:00"}.get(fmt or "", "example")


def bad_body(case: JsonCase, valid: dict[str, Any]) -> Any:
    """The valid body with the case's property replaced (its parent made if absent; a
    number names an item of a list)."""
    body = json.loads(json.dumps(valid))
    target: Any = body
    for name, below in zip(case.path[:-1], case.path[1:], strict=True):
        if isinstance(target, list):
            target = target[int(name)]
        else:
            target = target.setdefault(name, [{}] if below.isdigit() else {})
    last = case.path[-1]
    if isinstance(target, list):
        target[int(last)] = case.value
    else:
        target[last] = case.value
    return body


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


# --- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_app(settings: Settings, services: Services, idp: OidcProvider) -> Iterator[Flask]:
    """The app on the session's stack, with the provider, sending to a broker nobody consumes."""
    broker = f"{services.redis_url}/{REDIS_DB_METRICS_IDLE}"
    idle = redis.Redis.from_url(broker)
    idle.flushdb()
    with web_app(settings.model_copy(update={
            "broker_url": broker, "result_backend": broker, "oidc_issuer": idp.issuer,
            "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET,
            "ses_feedback_token": SES_FEEDBACK_TOKEN})) as app:
        yield app
    idle.flushdb()
    idle.close()


@pytest.fixture(scope="module")
def world(sweep_app: Flask, provider: DataProvider, idp: OidcProvider) -> Iterator[World]:
    """The sweep's tenant (an owner, an employee who signs in, the provider's person), an
    operator, the victim tenant with a settled purchase, a product, two employees."""
    client = sweep_app.test_client()
    tenant = tenants.create_tenant(provider, ("owner", "employee"), prefix="sweep")
    person = tenants.add_member(provider, tenant.id, "employee")
    idp.user = ProviderUser(subject=f"auth0|{secrets.token_hex(8)}", email=person.email)
    victim = tenants.create_tenant(provider, ("owner",), prefix="victim")
    operator = tenants.create_account(provider, operator=True)
    code = f"sweep-plan-{_hex()}"
    with provider.management() as session:
        catalogue.create_product(session, ProductSpec(code, "Sweep plan", "plan", "standard", 1500, "EUR"))
        purchase = purchases.request_purchase(
            session, SandboxGateway(provider.settings.database_url, provider.settings.secret_key),
            PurchaseRequest(code, 1500, "EUR", "4000000000000259"), tenant_id=victim.id,
            buyer_user_id=victim.member("owner").user_id, idempotency_key="sweep",
            correlation_id=None).purchase_id
        # Settled, and its charge command withdrawn: nothing will handle it while the sweep runs.
        session.execute(text("UPDATE purchases SET status = 'failed' WHERE id = :id"), {"id": purchase})
        session.execute(text("DELETE FROM outbox WHERE payload->>'purchase_id' = :id"), {"id": str(purchase)})
        session.commit()
    world = World(app=sweep_app, client=client, provider=provider, idp=idp, tenant=tenant,
                  owner_token=tenants.access_token(client, tenant.member("owner"), tenant.slug),
                  operator=operator, operator_token=tenants.access_token(client, operator), victim=victim,
                  product_code=code, purchase_id=purchase, employees=(uuid.uuid4(), uuid.uuid4()),
                  string_key="",
                  people=[*tenant.user_ids, person.user_id, operator.user_id, *victim.user_ids],
                  footprint=Footprint(provider))
    call = Call(world, None, None)
    world.employees = (uuid.UUID(_employee(world, call)), uuid.UUID(_employee(world, call)))
    strings = world.api("GET", "/api/v1/translations/strings", status=200)["items"]
    world.string_key = strings[0]["key"]
    yield world
    world.footprint.close()


# --- the JSON sweep -----------------------------------------------------------------------------------

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


def send_json(w: World, operation: Operation, variant: str,
              case: JsonCase) -> tuple[TestResponse, str, Call, dict[str, str]]:
    """Make the call's things, take the footprint, send the case; the answer, its request id,
    the call and the footprint before it."""
    auth, permission = admission(w.app, operation.rule, operation.method)
    caller, token = caller_for(w, auth, permission)
    call = Call(w, caller, token)
    path = fill(operation.rule, variant, call)
    _, components = json_operations()
    make_valid = VALID.get(operation.endpoint, lambda w, c: example(operation.schema, components))
    valid = make_valid(w, call)
    request_id = uuid.uuid4().hex
    headers = {"X-Request-Id": request_id, **HEADERS.get(operation.endpoint, dict)()}
    if token is not None:
        headers |= bearer(token)
    if case.raw is not None:
        data = case.raw
    elif case.empty:
        data = b"{}"
    elif case.path:
        data = json.dumps(bad_body(case, valid)).encode()
    else:
        data = json.dumps(valid).encode()
    _, before = w.footprint.take(w)
    response = w.client.open(path, method=operation.method, data=data, headers=headers,
                             content_type=case.content_type)
    return response, request_id, call, before


def assert_named(response: TestResponse, operation: Operation, variant: str, case: JsonCase,
                 call: Call) -> str:
    """A 4xx in the one JSON error shape naming the field the case spoiled (or, for an id
    nothing has, that path argument); the named field."""
    text_ = response.get_data(as_text=True)[:400]
    assert 400 <= response.status_code < 500, f"{response.status_code}: {text_}"
    assert response.status_code != 429, f"rate limited, not judged: {text_}"
    assert response.mimetype == "application/json", text_
    body = response.json
    assert isinstance(body, dict) and {"error", "field", "reason"} <= set(body), text_
    assert isinstance(body["reason"], str) and body["reason"] and isinstance(body["error"], str), text_
    named = body["field"]
    assert isinstance(named, str) and named, f"names no field: {text_}"
    allowed = set(case.fields)
    if response.status_code == 413:  # too large: named as the app documents it
        allowed = allowed.union(*(FIELD_ALIASES.get((operation.endpoint, f), ()) for f in case.fields))
    if variant == "missing" and response.status_code == 404:
        allowed |= {name for _, name in arguments(operation.rule)}
    assert any(named == f or named.startswith(f"{f}.") for f in allowed), (
        f"names {named!r}, not {sorted(allowed)} (or a field inside one): {text_}")
    if response.status_code == 403 or (response.status_code == 401 and named == "Authorization"):
        pytest.fail(f"the caller is refused, not the input (fix the caller): {text_}")
    return named


def note(request: pytest.FixtureRequest, name: str, value: str) -> None:
    """Keep what the app answered with the test's report (``--junitxml`` writes it; unlike
    ``record_property``, without a warning under the xunit2 family)."""
    request.node.user_properties.append((name, value))


@pytest.mark.parametrize(("operation", "variant", "case"), json_params())
def test_a_json_operation_refuses_bad_input_with_a_4xx_naming_the_field(
        world: World, operation: Operation, variant: str, case: JsonCase,
        request: pytest.FixtureRequest) -> None:
    response, request_id, call, before = send_json(world, operation, variant, case)
    if 200 <= response.status_code < 300:
        note(request, "accepted", f"{response.status_code} {response.get_data(as_text=True)[:200]}")
        assert operation.endpoint in LENIENT or f"{operation.endpoint}: {case.name}" in ACCEPTED, (
            f"bad input accepted: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return
    named = assert_named(response, operation, variant, case, call)
    note(request, "refused", f"{response.status_code} {named}")
    messages, after = world.footprint.take(world, request_id)
    assert messages == 0, "a refused request left outbox rows"
    assert tenants.changed(before, after) == [], "a refused request wrote"


def test_every_known_defect_and_accepted_input_names_a_swept_case() -> None:
    ids = {p.id for p in json_params() + form_params()}
    assert set(KNOWN_DEFECTS) <= ids, sorted(set(KNOWN_DEFECTS) - ids)
    operations, components = json_operations()
    swept = {f"{o.endpoint}: {c.name}" for o in operations for c in json_cases(o, components)}
    assert swept >= ACCEPTED, sorted(ACCEPTED - swept)
    assert {o.endpoint for o in operations} >= LENIENT


def test_the_sweep_covers_every_json_body_of_the_app_under_test(world: World) -> None:
    # The operations were read from an app built for collection: the app under test serves
    # the same ones, each with a body schema that has properties to spoil.
    live = served_spec(world.app)
    operations, _ = json_operations()
    documented = {(path, method.upper()) for path, ops in live["paths"].items() for method, op in ops.items()
                  if "requestBody" in op}
    swept = {(openapi_path(o.rule), o.method) for o in operations if o.endpoint not in UNDESCRIBED_BODIES}
    assert documented == swept
    assert len(operations) >= 30
    assert all(o.schema.get("properties") for o in operations)
    for operation in operations:
        auth, _ = admission(world.app, operation.rule, operation.method)
        assert auth in (None, "bearer"), operation.label


# --- the HTML sweep -----------------------------------------------------------------------------------

class _Forms(HTMLParser):
    """The POST forms of a page: action, enctype and field names."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, set[str]]] = []
        self._open: tuple[str, str, set[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = None
            if found.get("method", "get").lower() == "post":
                self._open = (found.get("action", ""), found.get("enctype", ""), set())
                self.forms.append(self._open)
        elif tag in ("input", "select", "textarea", "button") and self._open and found.get("name"):
            self._open[2].add(found["name"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def class_fields(view: Callable[..., Any]) -> set[str]:
    """The fields of every form class the view names (a form a helper builds is found on the
    page that renders it)."""
    function = inspect.unwrap(view)
    codes, names = [function.__code__], set()
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes.extend(c for c in code.co_consts if inspect.iscode(c))
    fields_ = set()
    for name in names:
        found = function.__globals__.get(name)
        if isinstance(found, type) and issubclass(found, FlaskForm):
            fields_ |= {n for klass in found.__mro__ for n, v in vars(klass).items()
                        if isinstance(v, UnboundField)}
    return fields_ - {"csrf_token"}


@dataclass(frozen=True)
class FormShape:
    """What a POST route takes: its fields, and whether its form is sent as multipart."""

    fields: frozenset[str]
    multipart: bool


@dataclass(frozen=True)
class Browsing:
    """What the sweep's browsers share: one page session with its CSRF token (the token is
    bound to the session cookie, not to whoever signs in), and the owner's tokens."""

    session_cookie: str
    csrf_token: str
    owner: tenants.Tokens


@pytest.fixture(scope="module")
def browsing(world: World) -> Browsing:
    """A CSRF token from a rendered form, its session, and the owner signed in."""
    first = world.app.test_client()
    token = page_csrf(first)
    cookie = first.get_cookie(world.app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return Browsing(cookie.value, token, tenants.sign_in(world.client, world.tenant.member("owner"),
                                                         world.tenant.slug))


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
_NOT_PAGES = ("/api/", "/static/", "/docs", "/openapi.json", "/metrics", "/healthz", "/readyz",
              "/identity/oidc/", "/storage/")


@pytest.fixture(scope="module")
def form_shapes(world: World, browsing: Browsing) -> dict[str, FormShape]:
    """Each POST route's fields: its view's form classes', and every field of a form that a
    page (its things real, read by the tenant's owner) renders to post to it."""
    owner = world.tenant.member("owner")
    browser = browser_of(world, browsing, browsing.owner)
    adapter = world.app.url_map.bind("localhost")
    rendered: dict[str, set[str]] = {}
    multipart: set[str] = set()
    for rule in world.app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.rule.startswith(_NOT_PAGES):
            continue
        if any(name not in REAL for _, name in arguments(rule.rule)):
            continue  # a page of a thing no form of the sweep's routes posts from (a signup's)
        call = Call(world, owner, world.owner_token)
        path = fill(rule.rule, "real" if arguments(rule.rule) else "", call)
        page = browser.get(path)
        if page.status_code != 200 or page.mimetype != "text/html":
            continue
        parser = _Forms()
        parser.feed(page.get_data(as_text=True))
        for action, enctype, names in parser.forms:
            target = urlsplit(action).path or path
            try:
                matched, _ = adapter.match(target, method="POST", return_rule=True)
            except (NotFound, MethodNotAllowed, RequestRedirect):
                continue  # an action no POST route takes is not ours to read
            rendered.setdefault(matched.rule, set()).update(names - {"csrf_token"})
            if enctype == "multipart/form-data":
                multipart.add(matched.rule)
    shapes = {}
    for rule, endpoint in form_routes(world.app):
        fields_ = class_fields(world.app.view_functions[endpoint]) | rendered.get(rule, set())
        shapes[rule] = FormShape(frozenset(fields_), rule in multipart)
    return shapes


def test_the_form_sweep_finds_the_fields_of_the_forms(form_shapes: dict[str, FormShape]) -> None:
    # The sweep is only as good as the fields it finds: the forms everyone knows are there.
    assert {"email", "password", "tenant"} <= form_shapes[pages.SIGN_IN].fields
    signup = form_shapes["/tenancy/signup"].fields
    assert {"organisation_name", "slug", "admin_name", "email", "password"} <= signup
    assert {"title", "body", "audience_kind", "people"} <= form_shapes["/publications"].fields
    assert any(f.startswith("email-") for f in form_shapes["/notifications/preferences"].fields)
    assert form_shapes["/assets"].multipart and form_shapes["/employment/imports"].multipart


def sent_to_sign_in(response: TestResponse) -> bool:
    """The guard sent the browser to sign in, with ``next`` (its cookies were not enough);
    unlike ``pages.goes_to_sign_in``, not signing out, which also ends on the sign-in page."""
    if not pages.goes_to_sign_in(response):
        return False
    return "next" in parse_qs(urlsplit(response.location).query)


@pytest.mark.parametrize("post", form_params())
def test_a_form_post_never_gets_a_5xx(world: World, browsing: Browsing, form_shapes: dict[str, FormShape],
                                      post: FormCase, request: pytest.FixtureRequest) -> None:
    _, permission = admission(world.app, post.rule, "POST")
    if permission is not None:  # the owner: the page acts on things of the tenant, never on its caller
        account, signed_in = world.tenant.member("owner"), browsing.owner
    else:  # the caller's own (my password, my sessions, signing out) or public: someone fresh
        account = world.fresh_member("employee")
        signed_in = tenants.sign_in(world.client, account, world.tenant.slug)
    browser = browser_of(world, browsing, signed_in)
    call = Call(world, account, signed_in.access_token)
    path = fill(post.rule, post.variant, call)
    shape = form_shapes[post.rule]
    data: dict[str, str] = {}
    if post.case != HTML_CASES[0]:
        data["csrf_token"] = browsing.csrf_token
    fields_ = shape.fields or {"unexpected"}  # a button's form gets a field it does not expect
    if post.case == "every field=NUL":
        data |= dict.fromkeys(fields_, NUL)
    elif post.case == "every field=oversized":
        data |= dict.fromkeys(fields_, OVERSIZED)
    request_id = uuid.uuid4().hex
    response = browser.post(path, data=data, headers={"X-Request-Id": request_id},
                            content_type="multipart/form-data" if shape.multipart else None)
    note(request, "answer", f"{response.status_code} {response.headers.get('Location', '')}")
    page = response.get_data(as_text=True)[:400]
    assert response.status_code < 500, f"{response.status_code}: {page}"
    assert response.status_code not in (403, 429), f"{response.status_code}: {page}"
    assert not sent_to_sign_in(response), f"sent to sign in: {response.location}"
    if response.status_code >= 400:
        assert world.footprint.messages(request_id) == 0, "a refused post left outbox rows"


def test_a_form_route_without_fields_is_a_button(form_shapes: dict[str, FormShape]) -> None:
    # A route with no field found takes only its CSRF token (a button): the ones known to.
    fieldless = sorted(rule for rule, shape in form_shapes.items() if not shape.fields)
    assert all(re.search(r"/(delete|cut-off|deactivate|reactivate|read|read-all|revoke|revoke-all|sign-out|"
                         r"unschedule)$", rule) for rule in fieldless), fieldless
