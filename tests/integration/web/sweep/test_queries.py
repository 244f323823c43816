"""Bad query strings never get a 5xx: a sweep of every query parameter of the JSON API and of
every HTML page.

- **JSON**: every operation of the app's own OpenAPI document with query parameters (a view
  declares its model with ``doc(query=...)`` and reads it with ``web.api.parse_query``; a
  test below holds the two together). Each parameter gets a NUL, 100,001 characters, an
  empty value, and by its schema: for an integer "x", "²" (a digit to ``str.isdigit()``, not
  to ``int()``), 2**64 and one below its minimum; for a boolean "maybe"; for an enum or a
  pattern a value outside it; for a uuid "not-a-uuid". Each operation also gets a parameter
  it does not declare. Path arguments are real things (``REAL``), the caller whoever the
  view admits (as in the JSON body sweep). The answer must be a 4xx in the one JSON error
  shape naming the parameter; not 403, not a 401 about the token, not 429. A request that
  only reads has nothing to leave half-written.
- **HTML**: every page (a GET route outside ``/api/`` whose path arguments the sweep can
  make real), read by the tenant's owner, with every query parameter the web tier reads
  (found in its source: ``request.args``) set at once to "²", 5,000 digits (past the 4,300
  ``int()`` takes from text), a NUL, and 100,001 characters. Never a 5xx, a 403, a 429 or a
  trip to the sign-in page.

The app and its world: ``conftest.py`` and ``tests/support/sweep.py``. Known defects are
strict xfails in ``KNOWN_DEFECTS``, by test id.
"""
from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from werkzeug.test import TestResponse

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
    caller_for,
    collection_app,
    fill,
    note,
    param,
    sent_to_sign_in,
    served_spec,
    value_schema,
)
from tests.support.tenants import bearer
from web.openapi import openapi_path

ROOT = Path(__file__).resolve().parents[4]
UNDECLARED = "sweep_undeclared"

# Cases the app gets wrong today (test id -> what happens): strict xfails, to be fixed. Empty
# when none is known; an entry must name a swept case (tested below).
KNOWN_DEFECTS: dict[str, str] = {}


# --- the JSON API's query parameters ----------------------------------------------------------------

@dataclass(frozen=True)
class QueryOperation:
    """An operation that reads a query string, and the parameters it declares."""

    method: str
    rule: str
    endpoint: str
    parameters: dict[str, dict[str, Any]]  # name -> schema

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule}"


@functools.cache
def query_operations() -> tuple[QueryOperation, ...]:
    """Every operation of the served OpenAPI document with query parameters."""
    app = collection_app()
    spec = served_spec(app)
    components = spec["components"]["schemas"]
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"]: value_schema(p["schema"], components)
                        for p in operation.get("parameters", []) if p["in"] == "query"}
            if not declared:
                continue
            (rule,) = [r.rule for r in app.url_map.iter_rules(operation["operationId"])
                       if openapi_path(r.rule) == path]
            found.append(QueryOperation(method.upper(), rule, operation["operationId"], declared))
    return tuple(sorted(found, key=lambda o: (o.rule, o.method)))


def bad_values(schema: dict[str, Any]) -> dict[str, str]:
    """Case name -> a value the parameter's schema refuses."""
    cases = {"NUL": NUL, "oversized": OVERSIZED}
    kind = schema.get("type")
    if kind != "string" or schema.get("minLength") or "pattern" in schema or "enum" in schema:
        cases["empty"] = ""
    if kind == "integer":
        cases |= {"x": "x", "superscript two": "²", "2**64": str(2**64)}
        if "minimum" in schema:
            cases["below its minimum"] = str(schema["minimum"] - 1)
    elif kind == "boolean":
        cases["maybe"] = "maybe"
    elif "enum" in schema:
        cases["not one of its values"] = "nope"
    elif "pattern" in schema:
        cases["outside its pattern"] = "!!"
    elif schema.get("format") == "uuid":
        cases["not a uuid"] = "not-a-uuid"
    return cases


def query_params() -> list[Any]:
    params = []
    for operation in query_operations():
        for name, schema in operation.parameters.items():
            for case, value in bad_values(schema).items():
                test_id = f"{operation.label}: {name}={case}"
                params.append(param(test_id, KNOWN_DEFECTS, operation, name, value))
        test_id = f"{operation.label}: a parameter it does not declare"
        params.append(param(test_id, KNOWN_DEFECTS, operation, UNDECLARED, "1"))
    return params


def assert_refused_naming(response: TestResponse, name: str) -> None:
    """A 4xx in the one JSON error shape naming the parameter ``name``."""
    text = response.get_data(as_text=True)[:400]
    assert 400 <= response.status_code < 500, f"{response.status_code}: {text}"
    assert response.status_code not in (403, 429), f"the caller is refused, not the input: {text}"
    assert response.mimetype == "application/json", text
    body = response.json
    assert isinstance(body, dict) and {"error", "field", "reason"} <= set(body), text
    assert isinstance(body["reason"], str) and body["reason"], text
    assert body["field"] == name, f"names {body['field']!r}, not {name!r}: {text}"


@pytest.mark.parametrize(("operation", "name", "value"), query_params())
def test_a_bad_query_parameter_is_refused_with_a_4xx_naming_it(
        world: World, operation: QueryOperation, name: str, value: str,
        request: pytest.FixtureRequest) -> None:
    auth, permission = admission(world.app, operation.rule, operation.method)
    caller, token = caller_for(world, auth, permission)
    path = fill(operation.rule, "real" if arguments(operation.rule) else "", Call(world, caller, token))
    response = world.client.open(f"{path}?{urlencode({name: value})}", method=operation.method,
                                 headers=bearer(token) if token else {})
    note(request, "answer", f"{response.status_code} {response.get_data(as_text=True)[:200]}")
    assert_refused_naming(response, name)


def test_every_view_that_reads_a_query_declares_it() -> None:
    # The sweep reads the parameters from the OpenAPI document: a view that parses a query
    # model must name the same model in doc(query=...), and one that names a model parses it.
    app = collection_app()
    for endpoint, view in app.view_functions.items():
        code = inspect.unwrap(view).__code__
        names = set(code.co_names)
        declared = (getattr(view, "openapi", None) or {}).get("query")
        if "parse_query" in names:
            assert declared is not None, f"{endpoint} parses a query it does not declare"
        if declared is not None:
            assert "parse_query" in names and declared.__name__ in names, (
                f"{endpoint} declares {declared.__name__} but does not parse it")
    assert len(query_operations()) >= 9


def test_every_known_defect_names_a_swept_case() -> None:
    ids = {p.id for p in query_params() + page_params()}
    assert set(KNOWN_DEFECTS) <= ids, sorted(set(KNOWN_DEFECTS) - ids)


# --- the pages' query parameters ------------------------------------------------------------------------

_READ = re.compile(r"""request\.args(?:\.get\(\s*|\[)["']([^"']+)["']""")


@functools.cache
def page_query_names() -> tuple[str, ...]:
    """Every query parameter the web tier reads by name (``request.args.get("page")``)."""
    names = {m for path in (ROOT / "web").rglob("*.py") for m in _READ.findall(path.read_text())}
    return tuple(sorted(names))


PAGE_VALUES = {
    "superscript two": "²",
    "5,000 digits": "9" * 5000,
    "NUL": NUL,
    "oversized": OVERSIZED,
}


def html_pages(app: Flask) -> list[str]:
    """Every GET route outside the API whose path arguments the sweep can make real."""
    return sorted({r.rule for r in app.url_map.iter_rules()
                   if "GET" in (r.methods or set()) and not r.rule.startswith(NOT_PAGES)
                   and all(name in REAL for _, name in arguments(r.rule))})


def page_params() -> list[Any]:
    return [param(f"GET {rule}: every parameter={case}", KNOWN_DEFECTS, rule, value)
            for rule in html_pages(collection_app()) for case, value in PAGE_VALUES.items()]


@pytest.mark.parametrize(("rule", "value"), page_params())
def test_a_page_with_a_bad_query_string_never_gets_a_5xx(world: World, browsing: Browsing, rule: str,
                                                         value: str, request: pytest.FixtureRequest) -> None:
    owner = world.tenant.member("owner")
    path = fill(rule, "real" if arguments(rule) else "", Call(world, owner, world.owner_token))
    browser = browser_of(world, browsing, browsing.owner)
    response = browser.get(f"{path}?{urlencode(dict.fromkeys(page_query_names(), value))}")
    note(request, "answer", f"{response.status_code} {response.headers.get('Location', '')}")
    text = response.get_data(as_text=True)[:400]
    assert response.status_code < 500, f"{response.status_code}: {text}"
    assert response.status_code not in (403, 429), f"{response.status_code}: {text}"
    assert not sent_to_sign_in(response), f"sent to sign in: {response.location}"


def test_the_page_sweep_reads_the_parameters_and_pages_it_should() -> None:
    # The names come from the source, the pages from the routes: the ones everyone knows are there.
    assert {"page", "next", "q", "sub_units", "locale"} <= set(page_query_names())
    pages = html_pages(collection_app())
    assert {"/notifications", "/employment/employees", "/publications", "/employment/imports/<uuid:import_id>"
            } <= set(pages)
