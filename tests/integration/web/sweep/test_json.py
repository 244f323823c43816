"""Bad input never gets a 5xx: a sweep of every JSON operation with a body.

The standard (DESIGN §7): bad input gets a clear 4xx naming the field and the reason; never
a 500, never a half-written record. The operations come from the app itself, so a new
endpoint joins the sweep without anyone listing it: every operation of the app's own
OpenAPI document (``GET /openapi.json``) with a request body, and the views that read a
body their operation does not describe (``UNDESCRIBED_BODIES``: SES feedback). Each gets
malformed JSON, JSON nested too deep, JSON that is no object, a JSON body sent as
``text/plain``, ``{}`` (when it has required properties), and for each property of its
schema (nested: ``audience.kind``, ``sections.0.heading``) the wrong type, a string with a
NUL character, one with a lone surrogate (JSON's ``\\ud800``, which no Unicode text holds)
and a string of 100,001 characters (over the largest ``maxLength`` of the API); an integer
also gets 2**64. A map (``categories``) gets keys with a NUL, a lone surrogate, of 100,001
characters and unknown, more entries than it takes, and its entry under ``MAP_KEYS``
spoiled like an object's properties. The rest of the body is valid (``VALID``, else made
from the schema). A path argument is filled with a real thing made for the test
(``tests/support/sweep.py``: ``REAL``) and, as a test of its own, with one nothing has.

The caller is whoever the view admits: the tenant's owner for a permission, a platform
operator for an operator route, a fresh member for a route of the caller's own (my
password), nobody for a public one. The answer must be a 4xx in the one JSON error shape
naming the field the case spoiled (or the path argument of a 404 for a thing nothing has;
``FIELD_ALIASES`` where the app documents another name); not 403, not a 401 about the
token, not 429 (the caller was wrong, not the input). A refused request must leave no
outbox row carrying its request id in the management or the trial database, and nothing
changed of both tenants it can reach, their people, the tables only requests write, and
the number of tenants and signups (``Footprint``). A 2xx fails, but for the inputs accepted
on purpose (``LENIENT``, ``ACCEPTED``); what the app answered is kept as the test's
``accepted`` or ``refused`` property, which ``--junitxml`` writes.

The app under test (``conftest.py``) is the session's stack with an OpenID Connect provider
(so the ID-token route checks bodies instead of answering "not configured"), an SES
feedback token, and a broker database no worker consumes (REDIS_DB_METRICS_IDLE): a message
an accepted input queues is never handled while the sweep compares footprints. Known
defects are strict xfails in ``KNOWN_DEFECTS``, by test id.
"""
from __future__ import annotations

import base64
import functools
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from werkzeug.test import TestResponse

from tests.support import refs, tenants
from tests.support.sweep import (
    LONE_SURROGATE,
    NUL,
    OVERSIZED,
    SES_FEEDBACK_TOKEN,
    Call,
    World,
    admission,
    arguments,
    caller_for,
    collection_app,
    documented_operations,
    fill,
    invitation_token,
    note,
    param,
    reset_token,
    resolve,
    served_spec,
    short_hex,
    value_schema,
    variant_label,
    variants,
)
from tests.support.tenants import bearer
from web.openapi import openapi_path

NONCE = "sweep-nonce-" + secrets.token_hex(8)


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


@functools.cache
def json_operations() -> tuple[tuple[Operation, ...], dict[str, Any]]:
    """Every operation of the served OpenAPI document that takes a JSON body, and the
    document's schemas."""
    operations, components = documented_operations()
    found = []
    for rule, method, operation in operations:
        body = operation.get("requestBody")
        if body is not None:
            schema = resolve(body["content"]["application/json"]["schema"], components)
            found.append(Operation(method, rule, operation["operationId"], schema))
    for endpoint, (method, schema) in UNDESCRIBED_BODIES.items():
        assert all(o.endpoint != endpoint for o in found), f"{endpoint} describes its body now"
        (rule,) = [r.rule for r in collection_app().url_map.iter_rules(endpoint)]
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
    """Wrong type, NUL, a lone surrogate and oversized for each property, and for the properties of an object
    property (``audience.kind``) and of the first item of a list of objects
    (``sections.0.heading``); an integer also gets one no 64-bit column holds."""
    for name, raw in schema.get("properties", {}).items():
        prop = value_schema(raw, components)
        path = (*parent, name)
        label = ".".join(path)
        named = frozenset({label})
        described, wrong = wrong_type(prop)
        as_list = prop.get("type") == "array"
        yield JsonCase(f"{label}=wrong type ({described})", named, path=path, value=wrong)
        yield JsonCase(f"{label}=NUL", named, path=path, value=[NUL] if as_list else NUL)
        yield JsonCase(f"{label}=lone surrogate", named, path=path,
                       value=[LONE_SURROGATE] if as_list else LONE_SURROGATE)
        yield JsonCase(f"{label}=oversized", named, path=path, value=[OVERSIZED] if as_list else OVERSIZED)
        if prop.get("type") == "integer":
            yield JsonCase(f"{label}=2**64", named, path=path, value=2**64)
        if prop.get("type") == "object" and prop.get("properties"):
            yield from property_cases(prop, components, path)
        items = value_schema(prop.get("items", {}), components) if as_list else {}
        if items.get("type") == "object" and items.get("properties"):
            yield from property_cases(items, components, (*path, "0"))
        entries = prop.get("additionalProperties")
        if prop.get("type") == "object" and isinstance(entries, dict):
            yield from map_cases(label, path, value_schema(entries, components), prop, components)


# A key for each map-valued field (``categories: {"assets": {...}}``), whose entry the sweep
# spoils like an object's properties; the rest of the valid body must hold that key.
MAP_KEYS = {"categories": "assets"}


def map_cases(label: str, path: tuple[str, ...], entries: dict[str, Any], prop: dict[str, Any],
              components: dict[str, Any]) -> Iterator[JsonCase]:
    """A map's keys as NUL, as a lone surrogate, as 100,001 characters and as one it does not
    know, more entries than its maximum, and its entry under ``MAP_KEYS`` spoiled property by
    property."""
    key = MAP_KEYS.get(label)
    assert key is not None, f"{label} is a map: give the sweep one of its keys in MAP_KEYS"
    entry = example(entries, components)
    named = frozenset({label})
    for case, bad_key in (("NUL", NUL), ("lone surrogate", LONE_SURROGATE), ("oversized", OVERSIZED),
                          ("unknown", "no-such-key")):
        yield JsonCase(f"{label}=a key {case}", named, path=(*path, bad_key), value=entry)
    if "maxProperties" in prop:
        crowd = {f"key{n}": entry for n in range(prop["maxProperties"] + 1)}
        yield JsonCase(f"{label}=more entries than its maximum", named, path=path, value=crowd)
    yield from property_cases(entries, components, (*path, key))


def json_cases(operation: Operation, components: dict[str, Any]) -> list[JsonCase]:
    """Every case of one operation."""
    cases = list(BODY_CASES)
    required = operation.schema.get("required", [])
    if required:
        cases.append(JsonCase("{}", frozenset(required), empty=True))
    cases.extend(property_cases(operation.schema, components))
    return cases

# Inputs accepted on purpose. SES feedback reads what it can of what SNS posts and answers
# 200 to the rest (SNS would re-post a refused message for days). A password is any text
# (hashed, never shown). A number for a time is a Unix time, and a time that has passed
# publishes at once, as the operation says.
LENIENT = frozenset({"notifications.ses_feedback"})
ACCEPTED = frozenset({
    "tenancy.create_signup: password=NUL",
    "identity.accept_invitation: password=NUL",
    "identity.change_password: new_password=NUL",
    "identity.reset_password: new_password=NUL",
    "publications.publish_publication: publish_at=wrong type (a number)",
})


# Cases the app gets wrong today (test id -> what happens): strict xfails, to be fixed. Empty
# when none is known; an entry must name a swept case (tested below).
KNOWN_DEFECTS: dict[str, str] = {}


def json_params() -> list[Any]:
    operations, components = json_operations()
    params = []
    for operation in operations:
        for variant in variants(operation.rule):
            for case in json_cases(operation, components) if variant != "missing" else [MISSING_CASE]:
                test_id = f"{operation.label}{variant_label(operation.rule, variant)}: {case.name}"
                params.append(param(test_id, KNOWN_DEFECTS, operation, variant, case))
    return params


# --- valid bodies -----------------------------------------------------------------------------

def _signup(w: World, c: Call) -> dict[str, Any]:
    return refs.signup_body()


def _oidc(w: World, c: Call) -> dict[str, Any]:
    return {"id_token": w.idp.mint(NONCE), "nonce": NONCE, "tenant": w.tenant.slug}


def _offboard(w: World, c: Call) -> dict[str, Any]:
    return {"confirm_slug": w.victim.slug if c.values.get("tenant_id") == str(w.victim.id) else "nobody"}


def _publication_body(w: World, c: Call) -> dict[str, Any]:
    return {"title": f"Sweep {short_hex()}", "body": "News.", "audience": {"kind": "everyone"},
            "attachments": []}


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
    "employment.create_job_type": lambda w, c: {"name": f"Job {short_hex()}"},
    "employment.rename_job_type": lambda w, c: {"name": f"Job {short_hex()}"},
    "employment.create_org_unit": lambda w, c: {"name": f"Unit {short_hex()}", "parent_id": None},
    "employment.update_org_unit": lambda w, c: {"name": f"Unit {short_hex()}", "parent_id": None},
    "employment.create_relation": lambda w, c: {"relation": "mentor_of", "from_id": str(w.employees[0]),
                                                "to_id": str(w.employees[1])},
    "iam.invite": lambda w, c: {"email": refs.email("invitee"), "role": "employee"},
    "iam.set_roles": lambda w, c: {"roles": ["employee"]},
    "iam.create_role": lambda w, c: {"name": f"r_{short_hex()}", "permissions": ["notifications:read"]},
    "iam.update_role": lambda w, c: {"permissions": ["notifications:read"]},
    "identity.accept_invitation": lambda w, c: {"token": invitation_token(w, c), "name": "Invited Person",
                                                "password": "invited password 0123"},
    "identity.create_oidc_token": _oidc,
    "identity.change_password": lambda w, c: {"current_password": tenants.PASSWORD,
                                              "new_password": "a new password 0123"},
    "identity.switch_tenant": lambda w, c: {"tenant": w.tenant.slug},
    "identity.request_password_reset": lambda w, c: {"email": refs.email("forgetful")},
    "identity.reset_password": lambda w, c: {"token": reset_token(w, c),
                                             "new_password": "a new password 0123"},
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
    "operations.create_reseller": lambda w, c: {"name": f"Reseller {short_hex()}",
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
    "purchases.create_product": lambda w, c: {"code": f"sweep-{short_hex()}", "name": "Sweep add-on",
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

HEADERS: dict[str, Callable[[], dict[str, str]]] = {
    "purchases.create_purchase": lambda: {"Idempotency-Key": uuid.uuid4().hex},
    "notifications.ses_feedback": lambda: {"Authorization": "Basic " + base64.b64encode(
        f"sns:{SES_FEEDBACK_TOKEN}".encode()).decode()},
}


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A plausible value for ``schema`` (for an operation VALID does not know yet)."""
    schema = value_schema(schema, components)
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


# --- the JSON sweep -----------------------------------------------------------------------------------

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
    ids = {p.id for p in json_params()}
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
