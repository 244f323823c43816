"""Bad input never gets a 5xx from an HTML form: a sweep of every form POST.

The standard (DESIGN §7): bad input gets a clear answer naming the field; never a 500, never
a half-written record. Every POST route outside ``/api/``, from ``app.url_map``, is posted
by a browser with a page session and both token cookies: the tenant's owner for a page that
needs a permission, a fresh member for one of the caller's own (password, sessions,
sign-out) or a public one. It posts nothing at all, only its CSRF token, and every field it
expects (of the form classes its view names and of every rendered form that posts to it; a
button's form gets one it does not expect) as NUL-containing text and as 100,001
characters. Never a 5xx, a 403, a 429 or a trip to the sign-in page; a refused post leaves
no outbox row carrying its request id. The app and its world: ``conftest.py`` and
``tests/support/sweep.py``. Known defects are strict xfails in ``KNOWN_DEFECTS``, by test id.
"""
from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask_wtf import FlaskForm
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from wtforms.fields.core import UnboundField

from tests.support import pages, tenants
from tests.support.sweep import (
    NOT_PAGES,
    NUL,
    OVERSIZED,
    REAL,
    Browsing,
    Call,
    World,
    admission,
    arguments,
    browser_of,
    collection_app,
    fill,
    note,
    param,
    sent_to_sign_in,
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
    for rule in world.app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.rule.startswith(NOT_PAGES):
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
