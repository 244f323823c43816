"""Bad input never gets a 5xx from an HTML form: a sweep of every form POST.

The standard (DESIGN §7): bad input gets a clear answer naming the field; never a 500, never
a half-written record. Every POST route outside ``/api/``, from ``app.url_map``, is posted
by a browser with a page session and both token cookies: the tenant's owner for a page that
needs a permission, a fresh member for one of the caller's own (password, sessions,
sign-out) or a public one. It posts nothing at all, only its CSRF token, and every field it
expects (of the form classes its view names and of every rendered form that posts to it; a
button's form gets one it does not expect) as NUL-containing text and as 100,001
characters. Never a 5xx, a 403, a 429 or a trip to the sign-in page; a refused post leaves
no outbox row carrying its request id.

WTForms checks every field, but the work behind a form runs only when all are valid, so
each field of each form is also spoiled alone with the rest valid (``VALID_FORMS``, each
held valid by a test of its own): a NUL, 100,001 characters, "²", 5,000 digits, the first
and last days of the calendar, -1, nothing, and the numbers inside its valid value as "²"
or 5,000 digits (``code|1500|EUR`` -> ``code|²|EUR``). The same answers are required.

The app and its world: ``conftest.py`` and ``tests/support/sweep.py``. Known defects are
strict xfails in ``KNOWN_DEFECTS``, by test id.
"""
from __future__ import annotations

import inspect
import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.test import TestResponse
from wtforms.fields.core import UnboundField

from tests.support import pages, refs, tenants
from tests.support.sweep import (
    NUL,
    OVERSIZED,
    Browsing,
    Call,
    World,
    admission,
    arguments,
    assert_no_5xx,
    browser_of,
    collection_app,
    fill,
    note,
    pages_to_read,
    param,
    sent_to_sign_in,
    short_hex,
    variant_label,
    variants,
)


def form_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (rule, endpoint) outside /api/ that accepts POST."""
    return sorted((r.rule, r.endpoint) for r in app.url_map.iter_rules()
                  if "POST" in (r.methods or set()) and not r.rule.startswith("/api/"))


# Cases the app gets wrong today (test id -> what happens): strict xfails, to be fixed. Empty
# when none is known; an entry must name a swept case (tested below).
KNOWN_DEFECTS: dict[str, str] = {}
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
                test_id = f"POST {rule}{variant_label(rule, variant)}: {case}"
                params.append(param(test_id, KNOWN_DEFECTS, FormCase(rule, variant, case)))
    return params

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


@pytest.fixture(scope="module")
def form_shapes(world: World, browsing: Browsing) -> dict[str, FormShape]:
    """Each POST route's fields: its view's form classes', and every field of a form that a
    page (its things real, read by the tenant's owner) renders to post to it."""
    owner = world.tenant.member("owner")
    browser = browser_of(world, browsing, browsing.owner)
    adapter = world.app.url_map.bind("localhost")
    rendered: dict[str, set[str]] = {}
    multipart: set[str] = set()
    for rule in pages_to_read(world.app):  # not a page of a thing no form posts from (a signup's)
        call = Call(world, owner, world.owner_token)
        path = fill(rule, "real" if arguments(rule) else "", call)
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


def test_every_known_defect_names_a_swept_case() -> None:
    ids = {p.id for p in form_params()}
    assert set(KNOWN_DEFECTS) <= ids, sorted(set(KNOWN_DEFECTS) - ids)


def test_the_form_sweep_finds_the_fields_of_the_forms(form_shapes: dict[str, FormShape]) -> None:
    # The sweep is only as good as the fields it finds: the forms everyone knows are there.
    assert {"email", "password", "tenant"} <= form_shapes[pages.SIGN_IN].fields
    signup = form_shapes["/tenancy/signup"].fields
    assert {"organisation_name", "slug", "admin_name", "email", "password"} <= signup
    assert {"title", "body", "audience_kind", "people"} <= form_shapes["/publications"].fields
    assert any(f.startswith("email-") for f in form_shapes["/notifications/preferences"].fields)
    assert form_shapes["/assets"].multipart and form_shapes["/employment/imports"].multipart

@dataclass
class Post:
    """A post about to be sent: the browser that sends it, its path and who it is."""

    browser: FlaskClient
    path: str
    call: Call


def poster(world: World, browsing: Browsing, rule: str, variant: str) -> Post:
    """A browser to post to ``rule`` as whoever its page admits, and its path filled: the
    tenant's owner for a page that acts on the tenant's things, someone fresh for the
    caller's own (my password, my sessions, signing out) or a public one."""
    _, permission = admission(world.app, rule, "POST")
    if permission is not None:
        account, signed_in = world.tenant.member("owner"), browsing.owner
    else:
        account = world.fresh_member("employee")
        signed_in = tenants.sign_in(world.client, account, world.tenant.slug)
    call = Call(world, account, signed_in.access_token)
    return Post(browser_of(world, browsing, signed_in), fill(rule, variant, call), call)


def send(post: Post, data: dict[str, Any], multipart: bool,
         request: pytest.FixtureRequest) -> tuple[TestResponse, str]:
    """Post ``data``; the answer and the request's id."""
    request_id = uuid.uuid4().hex
    response = post.browser.post(post.path, data=data, headers={"X-Request-Id": request_id},
                                 content_type="multipart/form-data" if multipart else None)
    note(request, "answer", f"{response.status_code} {response.headers.get('Location', '')}")
    return response, request_id


def assert_refused_cleanly(world: World, response: TestResponse, request_id: str) -> None:
    """Never a 5xx, a 403, a 429 or a trip to sign in; a refusal leaves no message."""
    assert_no_5xx(response)
    if response.status_code >= 400:
        assert world.footprint.messages(request_id) == 0, "a refused post left outbox rows"


@pytest.mark.parametrize("post", form_params())
def test_a_form_post_never_gets_a_5xx(world: World, browsing: Browsing, form_shapes: dict[str, FormShape],
                                      post: FormCase, request: pytest.FixtureRequest) -> None:
    sending = poster(world, browsing, post.rule, post.variant)
    shape = form_shapes[post.rule]
    data: dict[str, str] = {}
    if post.case != HTML_CASES[0]:
        data["csrf_token"] = browsing.csrf_token
    fields_ = shape.fields or {"unexpected"}  # a button's form gets a field it does not expect
    if post.case == "every field=NUL":
        data |= dict.fromkeys(fields_, NUL)
    elif post.case == "every field=oversized":
        data |= dict.fromkeys(fields_, OVERSIZED)
    response, request_id = send(sending, data, shape.multipart, request)
    assert_refused_cleanly(world, response, request_id)
    if post.case == HTML_CASES[0]:  # the app's CSRF check, or the view's own (checks_own_csrf)
        assert response.status_code == 400, f"{post.rule} without a CSRF token: {response.status_code}"


def test_a_form_route_without_fields_is_a_button(form_shapes: dict[str, FormShape]) -> None:
    # A route with no field found takes only its CSRF token (a button): the ones known to.
    fieldless = sorted(rule for rule, shape in form_shapes.items() if not shape.fields)
    assert all(re.search(r"/(delete|cut-off|deactivate|email-verification|reactivate|read|read-all|revoke|"
                         r"revoke-all|sign-out|unschedule)$", rule) for rule in fieldless), fieldless


# --- one field at a time, the rest valid ----------------------------------------------------------

# A field WTForms lets through can still break the work behind the form, which only runs
# when every other field is valid: so each field is also spoiled alone, the rest of the form
# valid. A valid form per route with fields (a value, or a maker of one for the call); the
# first test holds it valid, and the second that it names every field the form has.
Value = str | list[str] | Callable[[World, Call], str]
_EMPLOYEE: dict[str, Value] = {
    "name": "Sweep Person", "work_email": lambda w, c: refs.email("employee"), "status": "active",
    "job_type_id": "", "org_unit_id": "", "start_date": "2030-01-02", "end_date": "", "manager_email": ""}
_PUBLICATION: dict[str, Value] = {
    "title": "Sweep news", "body": "News.", "audience_kind": "everyone", "org_unit_id": "", "sub_units": "",
    "people": "", "attachments": []}
_SECTION: dict[str, Value] = {"heading": "Section", "body": "Text."}
_CATEGORIES = ("assets", "billing", "publications", "security", "tenancy", "welcome")
VALID_FORMS: dict[str, dict[str, Value]] = {
    "/assets": {"file": lambda w, c: "upload.txt"},
    "/employment/employees": _EMPLOYEE,
    "/employment/employees/<uuid:employee_id>": _EMPLOYEE,
    "/employment/imports": {"file": lambda w, c: "people.csv"},
    "/employment/job-types": {"name": lambda w, c: f"Job {short_hex()}"},
    "/employment/org-units": {"name": lambda w, c: f"Unit {short_hex()}", "parent_id": ""},
    "/employment/org-units/<uuid:org_unit_id>": {"name": lambda w, c: f"Unit {short_hex()}",
                                                 "parent_id": ""},
    "/iam/roles": {"name": lambda w, c: f"r_{short_hex()}", "permissions": ["notifications:read"]},
    "/iam/users/<uuid:user_id>/roles": {"roles": ["employee"]},
    "/iam/users/invite": {"email": lambda w, c: refs.email("invitee"), "role": "employee"},
    "/identity/invitations/<token>": {"name": "Invited Person", "password": "invited password 0123"},
    "/identity/password": {"current_password": tenants.PASSWORD, "new_password": "a new password 0123"},
    "/identity/password-reset": {"email": lambda w, c: refs.email("forgetful")},
    "/identity/password-reset/<reset_token>": {"new_password": "a new password 0123",
                                               "confirm_password": "a new password 0123"},
    "/identity/refresh": {"email": "", "password": "", "tenant": ""},  # spends the refresh cookie
    "/identity/verify/<verification_token>": {"password": tenants.PASSWORD},
    "/identity/sign-in": {"email": lambda w, c: c.caller.email if c.caller else "",
                          "password": tenants.PASSWORD, "tenant": lambda w, c: w.tenant.slug},
    "/notifications/preferences": {"digest": "y", **{f"{channel}-{category}": "y"
                                                     for category in _CATEGORIES
                                                     for channel in ("email", "in_app")}},
    "/publications": _PUBLICATION,
    "/publications/<uuid:publication_id>/edit": _PUBLICATION,
    "/publications/<uuid:publication_id>/publish": {"publish_at": "2030-01-02T03:04"},
    "/publications/<uuid:publication_id>/sections": _SECTION,
    "/publications/<uuid:publication_id>/sections/<uuid:section_id>": _SECTION,
    "/publications/<uuid:publication_id>/sections/<uuid:section_id>/move": {"direction": "down"},
    "/purchases/checkout": {"offer": lambda w, c: f"{w.product_code}|1500|EUR",
                            "card_number": "4242424242424242",
                            "idempotency_key": lambda w, c: uuid.uuid4().hex},
    "/tenancy/signup": {"organisation_name": "Sweep Signup",
                        "slug": lambda w, c: f"sweep-signup-{short_hex()}",
                        "admin_name": "Sweep Admin", "email": lambda w, c: refs.email("signup"),
                        "password": "a signup password 0123"},
    "/translations/admin": {"locale": "de", "key": lambda w, c: w.string_key, "text": "Unsere Worte"},
    "/translations/locale": {"locale": "de"},
}
# What a file field holds when it is valid (the field's value above is the file's name).
FILES = {"upload.txt": b"a small text file\n",
         "people.csv": b"name,work_email\nSweep Import,import@example.com\n"}
# Values that pass many a validator and can still break what comes after it; a function
# makes one from the field's valid value (``code|1500|EUR`` -> ``code|²|EUR``).
_DIGITS = re.compile(r"[0-9]+")
FIELD_CASES: dict[str, str | Callable[[str], str]] = {
    "NUL": NUL,
    "oversized": OVERSIZED,
    "superscript two": "\u00b2",
    "5,000 digits": "9" * 5000,
    "the last day": "9999-12-31",
    "the last minute": "9999-12-31T23:59",
    "the first day": "0001-01-01",
    "minus one": "-1",
    "empty": "",
    "its numbers as superscript two": lambda valid: _DIGITS.sub("\u00b2", valid),
    "its numbers as 5,000 digits": lambda valid: _DIGITS.sub("9" * 5000, valid),
}


# Made values that always hold a number (a made value is only known when made).
NUMBERED_MADE = frozenset({("/purchases/checkout", "offer")})


def _has_numbers(rule: str, name: str, example: Value) -> bool:
    if callable(example):
        return (rule, name) in NUMBERED_MADE
    return any(_DIGITS.search(v) for v in ([example] if isinstance(example, str) else example))


def one_field_params() -> list[Any]:
    params = []
    for rule, valid in VALID_FORMS.items():
        variant = "real" if arguments(rule) else ""
        for name, example in valid.items():
            for case, value in FIELD_CASES.items():
                if callable(value) and not _has_numbers(rule, name, example):
                    continue  # nothing to replace: the post would be the valid form
                test_id = f"POST {rule}{variant_label(rule, variant)}: {name}={case}, the rest valid"
                params.append(param(test_id, KNOWN_DEFECTS, rule, variant, name, value))
    return params


def valid_form(world: World, call: Call, rule: str, csrf_token: str) -> dict[str, Any]:
    """The route's valid form for ``call``, its CSRF token and any file included."""
    data: dict[str, Any] = {"csrf_token": csrf_token}
    for name, value in VALID_FORMS[rule].items():
        made = value(world, call) if callable(value) else value
        data[name] = (io.BytesIO(FILES[made]), made) if isinstance(made, str) and made in FILES else made
    return data


@pytest.mark.parametrize("rule", sorted(VALID_FORMS))
def test_the_valid_form_of_each_route_is_accepted(world: World, browsing: Browsing,
                                                  form_shapes: dict[str, FormShape], rule: str,
                                                  request: pytest.FixtureRequest) -> None:
    assert set(VALID_FORMS[rule]) >= form_shapes[rule].fields, "a field the sweep does not know"
    sending = poster(world, browsing, rule, "real" if arguments(rule) else "")
    data = valid_form(world, sending.call, rule, browsing.csrf_token)
    response, _ = send(sending, data, form_shapes[rule].multipart, request)
    page = response.get_data(as_text=True)
    assert response.status_code < 400, (
        f"{response.status_code}: {pages.errors_by_field(response)} {page[:300]}")
    assert not sent_to_sign_in(response), f"sent to sign in: {response.location}"
    assert pages.errors_by_field(response) == {}


def test_every_route_with_fields_has_a_valid_form(form_shapes: dict[str, FormShape]) -> None:
    assert {rule for rule, shape in form_shapes.items() if shape.fields} == set(VALID_FORMS)


@pytest.mark.parametrize(("rule", "variant", "name", "value"), one_field_params())
def test_a_form_with_one_bad_field_never_gets_a_5xx(
        world: World, browsing: Browsing, form_shapes: dict[str, FormShape],
        request: pytest.FixtureRequest, *, rule: str, variant: str, name: str,
        value: str | Callable[[str], str]) -> None:
    sending = poster(world, browsing, rule, variant)
    data = valid_form(world, sending.call, rule, browsing.csrf_token)
    if callable(value):
        valid = data[name][1] if name == "file" else data[name]
        value = value(valid) if isinstance(valid, str) else [value(v) for v in valid]
        assert value != valid, "nothing spoiled: NUMBERED_MADE lists a field whose value has no numbers"
    data[name] = (io.BytesIO(str(value).encode()), value or "empty") if name == "file" else value
    response, request_id = send(sending, data, form_shapes[rule].multipart, request)
    assert_refused_cleanly(world, response, request_id)
