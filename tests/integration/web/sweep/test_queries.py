"""Bad query strings never get a 5xx: a sweep of every query parameter of the JSON API and of
every HTML page.

- **JSON**: every operation of the app's own OpenAPI document with query parameters (a view
  declares its model with ``doc(query=...)`` and reads it with ``web.api.parse_query``; a
  test below holds the two together). Each parameter gets a NUL, 100,001 characters, an
  empty value (unless it is free text), and by its schema: for an integer "x", "²" (a digit
  to ``str.isdigit()``, not to ``int()``), "+5", "5.0", "1_0", 2**64 and one below its
  minimum; for a boolean "maybe"; for an enum or a pattern a value outside it; for a uuid
  "not-a-uuid". Each operation also gets a parameter it does not declare. Path arguments are
  real things (``REAL``), the caller whoever the view admits (as in the JSON body sweep).
  The answer must be a 4xx in the one JSON error shape naming the parameter; not 403, not a
  401 about the token, not 429; and nothing written (``Footprint``, as in the JSON sweep). An
  operation is sent its required parameters, and one that writes (the raw upload) a body,
  valid (``VALID_REQUESTS``), so that the swept parameter is what is wrong.
- **HTML**: every page (a GET route outside ``/api/`` whose path arguments the sweep can
  make real, the OpenID Connect ones included), read by the tenant's owner, with each query
  parameter the web tier reads (found in its source: ``request.args``), one at a time, as
  "²", 5,000 digits (past the 4,300 ``int()`` takes from text), a NUL and 100,001
  characters. Never a 5xx, a 403, a 429 or a trip to the sign-in page. A test holds every
  page found without a query string (``UNREACHED`` would list one the sweep cannot open, and
  why), so a 404 cannot pass for an answer of the view. A reader's page of a publication
  needs one published, with a processed attachment: ``published`` runs those two workers'
  handlers in this process.

The app and its world: ``conftest.py`` and ``tests/support/sweep.py``. Known defects are
strict xfails in ``KNOWN_DEFECTS``, by test id.
"""
from __future__ import annotations

import functools
import inspect
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from werkzeug.test import TestResponse

from domain.assets import handlers as assets_handlers
from domain.assets.storage import build_storage
from domain.messaging import handling
from domain.messaging.contracts import Contract
from domain.messaging.contracts.assets import ProcessAssetV1
from domain.messaging.contracts.publications import PublishPublicationV1
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox
from domain.publications import handlers as publications_handlers
from tests.integration.web.helpers import assert_refused
from tests.support import tenants
from tests.support.sweep import (
    NOT_PAGES,
    NUL,
    OVERSIZED,
    Browsing,
    Call,
    World,
    admission,
    arguments,
    assert_no_5xx,
    browser_of,
    caller_for,
    collection_app,
    documented_operations,
    fill,
    note,
    pages_to_read,
    param,
    sent_to_sign_in,
    short_hex,
    value_schema,
)
from tests.support.tenants import bearer

ROOT = Path(__file__).resolve().parents[4]
UNDECLARED = "sweep_undeclared"



@dataclass(frozen=True)
class ValidRequest:
    """What an operation is sent besides the bad parameter: its required parameters and, for
    one that writes, its body; valid, so that the swept parameter is what is wrong."""

    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None


VALID_REQUESTS = {
    "assets.upload_asset": ValidRequest({"filename": "notes.txt"}, b"a line of text\n", "text/plain"),
}

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
    required: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule}"


@functools.cache
def query_operations() -> tuple[QueryOperation, ...]:
    """Every operation of the served OpenAPI document with query parameters."""
    operations, components = documented_operations()
    found = []
    for rule, method, operation in operations:
        query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
        if query:
            found.append(QueryOperation(
                method, rule, operation["operationId"],
                {p["name"]: value_schema(p["schema"], components) for p in query},
                frozenset(p["name"] for p in query if p.get("required"))))
    return tuple(sorted(found, key=lambda o: (o.rule, o.method)))


def bad_values(schema: dict[str, Any]) -> dict[str, str]:
    """Case name -> a value the parameter's schema refuses."""
    cases = {"NUL": NUL, "oversized": OVERSIZED}
    kind = schema.get("type")
    if kind != "string" or schema.get("minLength") or "pattern" in schema or "enum" in schema:
        cases["empty"] = ""
    if kind == "integer":
        cases |= {"x": "x", "superscript two": "²", "2**64": str(2**64), "with a plus": "+5",
                  "with a decimal point": "5.0", "with an underscore": "1_0"}
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


@pytest.mark.parametrize(("operation", "name", "value"), query_params())
def test_a_bad_query_parameter_is_refused_with_a_4xx_naming_it(
        world: World, operation: QueryOperation, name: str, value: str,
        request: pytest.FixtureRequest) -> None:
    auth, permission = admission(world.app, operation.rule, operation.method)
    caller, token = caller_for(world, auth, permission)
    path = fill(operation.rule, "real" if arguments(operation.rule) else "", Call(world, caller, token))
    request_id = uuid.uuid4().hex
    headers = {"X-Request-Id": request_id, **(bearer(token) if token else {})}
    valid = VALID_REQUESTS.get(operation.endpoint, ValidRequest())
    _, before = world.footprint.take(world)
    response = world.client.open(f"{path}?{urlencode(valid.query | {name: value})}", method=operation.method,
                                 headers=headers, data=valid.body, content_type=valid.content_type)
    note(request, "answer", f"{response.status_code} {response.get_data(as_text=True)[:200]}")
    assert 400 <= response.status_code < 500 and response.status_code not in (403, 429), (
        response.status_code, response.get_data(as_text=True)[:400])
    assert_refused(response, response.status_code, name)  # the one error shape, naming the parameter
    messages, after = world.footprint.take(world, request_id)
    assert messages == 0, "a refused request left outbox rows"
    assert tenants.changed(before, after) == [], "a refused request wrote"


def test_the_sweep_sends_each_operation_an_otherwise_valid_request() -> None:
    # A bad query must be the only thing wrong with the request: the required parameters and
    # the body of an operation that writes are in VALID_REQUESTS, and nothing else is.
    needing = {o.endpoint: o for o in query_operations() if o.required or o.method != "GET"}
    assert set(needing) == set(VALID_REQUESTS), set(needing) ^ set(VALID_REQUESTS)
    for endpoint, operation in needing.items():
        valid = VALID_REQUESTS[endpoint]
        assert operation.required <= set(valid.query), (endpoint, operation.required)
        assert (valid.body is not None) == (operation.method != "GET"), endpoint


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
# The OpenID Connect routes are pages too here (their redirects leave the site, their errors
# do not); the rest of NOT_PAGES is not HTML.
PAGE_EXCLUDED = tuple(prefix for prefix in NOT_PAGES if prefix != "/identity/oidc/")
# Pages the tenant's owner cannot open with the things the sweep makes (a 404 before the
# view reads its query), and why: the test below holds each of them not found and every other
# page found, so the sweep reaches the views it claims to. None today.
UNREACHED: dict[str, str] = {}


@dataclass(frozen=True)
class Published:
    """A publication addressed to the tenant's owner, out, with a processed attachment."""

    publication_id: str
    asset_id: str


# Pages whose arguments are things a worker makes (``published``), not REAL's.
READER_PAGES = {
    "/publications/<uuid:publication_id>": lambda p: {"publication_id": p.publication_id},
    "/publications/<uuid:publication_id>/attachments/<uuid:asset_id>":
        lambda p: {"publication_id": p.publication_id, "asset_id": p.asset_id},
}


def handle_here(world: World, contract: type[Contract], handler: Any, key: str, value: str) -> None:
    """Run, in this process, the handler of the command a request of the sweep queued (the one
    whose payload's ``key`` is ``value``), through the inbox and outbox as its worker would
    (``domain.messaging.handling``): the sweep's broker has no worker. What it emits stays in
    the outbox."""
    with world.provider.tenant(world.tenant.id) as db:
        row = db.execute(select(outbox).where(outbox.c.type == contract.message_type,
                                              outbox.c.payload[key].astext == value)).one()
        origin = db.info["db_key"]
    envelope = Envelope(id=str(row.id), event_id=str(row.event_id), type=row.type, version=row.version,
                        handler=row.handler, payload=row.payload, origin=origin,
                        tenant_id=str(world.tenant.id), correlation_id=row.correlation_id)
    outcome = handling.handle(world.provider, envelope, contract, "tenant", handler,
                              ports={"storage": build_storage(world.provider.settings)})
    assert not outcome.duplicate and outcome.refused is None, outcome


@pytest.fixture(scope="module")
def published(world: World) -> Published:
    """Made through the API, as the owner would, with the assets and publications handlers run
    here: an employee record of the owner (so the audience reaches the owner's account), an
    uploaded file processed until ready, a publication for everyone attaching it, published."""
    owner = world.tenant.member("owner")
    world.api("POST", "/api/v1/employment/employees", {"name": "Sweep Owner", "work_email": owner.email})
    uploaded = world.client.post("/api/v1/assets?filename=notes.txt", data=b"A line of text.\n",
                                 headers={**bearer(world.owner_token), "Content-Type": "text/plain"})
    assert uploaded.status_code == 202, uploaded.get_data(as_text=True)[:300]
    asset_id = uploaded.json["id"]  # type: ignore[index]
    handle_here(world, ProcessAssetV1, assets_handlers.process_asset, "asset_id", asset_id)
    assert world.api("GET", f"/api/v1/assets/{asset_id}", status=200)["status"] == "ready"
    made = world.api("POST", "/api/v1/publications", {"title": f"Sweep read {short_hex()}", "body": "News.",
                                                       "attachments": [asset_id]})
    world.api("POST", f"/api/v1/publications/{made['id']}/publish", {}, status=202)
    handle_here(world, PublishPublicationV1, publications_handlers.publish_publication, "publication_id",
                str(made["id"]))
    return Published(str(made["id"]), asset_id)
# A page that answers something else when opened with no query string, and what.
WITHOUT_QUERY = {"/identity/oidc/callback": 400}  # the provider's state and code are missing


def swept_pages() -> list[str]:
    return [rule for rule in pages_to_read(collection_app(), PAGE_EXCLUDED) if rule not in UNREACHED]


def page_params() -> list[Any]:
    return [param(f"GET {rule}: {name}={case}", KNOWN_DEFECTS, rule, name, value)
            for rule in swept_pages() for name in page_query_names() for case, value in PAGE_VALUES.items()]


def read_page(world: World, browsing: Browsing, published: Published, rule: str,
              query: dict[str, str]) -> TestResponse:
    """The page of ``rule`` (its things real) read by the tenant's owner with ``query``."""
    owner = world.tenant.member("owner")
    given = READER_PAGES[rule](published) if rule in READER_PAGES else {}
    path = fill(rule, "real" if arguments(rule) else "", Call(world, owner, world.owner_token, given))
    return browser_of(world, browsing, browsing.owner).get(f"{path}?{urlencode(query)}" if query else path)


def test_the_sweep_reaches_every_page_it_reads(world: World, browsing: Browsing,
                                                published: Published) -> None:
    # Without a query string, every swept page opens (or leaves for the provider); the ones
    # listed as out of reach are not found, so the list cannot go stale.
    for rule in pages_to_read(world.app, PAGE_EXCLUDED):
        response = read_page(world, browsing, published, rule, {})
        if rule in UNREACHED:
            assert response.status_code == 404, (rule, response.status_code)
        elif rule in WITHOUT_QUERY:
            assert response.status_code == WITHOUT_QUERY[rule], (rule, response.status_code)
        else:
            assert response.status_code in (200, 302, 303), (rule, response.status_code)
            assert not sent_to_sign_in(response), rule


@pytest.mark.parametrize(("rule", "name", "value"), page_params())
def test_a_page_with_a_bad_query_parameter_never_gets_a_5xx(
        world: World, browsing: Browsing, published: Published, request: pytest.FixtureRequest, *,
        rule: str, name: str, value: str) -> None:
    response = read_page(world, browsing, published, rule, {name: value})
    note(request, "answer", f"{response.status_code} {response.headers.get('Location', '')}")
    assert_no_5xx(response)


def test_the_page_sweep_reads_the_parameters_and_pages_it_should() -> None:
    # The names come from the source, the pages from the routes: the ones everyone knows are there.
    assert {"page", "next", "q", "sub_units", "locale", "state", "code"} <= set(page_query_names())
    assert {"/notifications", "/employment/employees", "/publications", "/identity/oidc/callback",
            "/employment/imports/<uuid:import_id>", "/purchases/<uuid:purchase_id>",
            *READER_PAGES} <= set(swept_pages())
