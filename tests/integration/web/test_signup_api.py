"""Bad input on the signup API: a 4xx naming the field and the reason, and nothing written."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg import pq
from sqlalchemy import select

from config.settings import Settings
from domain.db.provider import DataProvider, TenantMoved
from tests.integration.web.helpers import assert_refused, written
from tests.support import refs
from tests.support.apps import web_app
from web.db import management_db, management_writer, tenant_db

SIGNUPS = "/api/v1/tenancy/signups"
Body = dict[str, Any]


def without(field: str) -> Callable[[Body], dict[str, Any]]:
    """A JSON body missing ``field``."""
    return lambda body: {"json": {k: v for k, v in body.items() if k != field}}


def with_(**changes: Any) -> Callable[[Body], dict[str, Any]]:
    """A JSON body with ``changes``."""
    return lambda body: {"json": {**body, **changes}}


JSON = "application/json"
BAD_REQUESTS = [
    pytest.param(lambda b: {"data": json.dumps(b)[:-5], "content_type": JSON}, 400, "body",
                 id="malformed JSON"),
    pytest.param(lambda b: {"data": b'{"slug": "\xff"}', "content_type": JSON}, 400, "body", id="not UTF-8"),
    pytest.param(lambda b: {"data": b"", "content_type": JSON}, 400, "body", id="empty body"),
    pytest.param(lambda b: {"data": json.dumps(b), "content_type": "text/plain"}, 415, "Content-Type",
                 id="text/plain"),
    pytest.param(lambda b: {"data": b}, 415, "Content-Type", id="form encoded"),
    pytest.param(lambda b: {"data": json.dumps(b)}, 415, "Content-Type", id="no content type"),
    pytest.param(lambda b: {"json": [b]}, 422, "body", id="a JSON array"),
    pytest.param(lambda b: {"data": "null", "content_type": JSON}, 422, "body", id="a JSON null"),
    pytest.param(without("organisation_name"), 422, "organisation_name", id="missing organisation_name"),
    pytest.param(without("email"), 422, "email", id="missing email"),
    pytest.param(without("password"), 422, "password", id="missing password"),
    pytest.param(with_(slug="Not A Slug"), 422, "slug", id="slug with capitals and spaces"),
    pytest.param(with_(slug="ab"), 422, "slug", id="slug too short"),
    pytest.param(with_(slug="acme-"), 422, "slug", id="slug ending in a dash"),
    pytest.param(with_(email="not-an-email"), 422, "email", id="invalid email"),
    pytest.param(with_(password="short"), 422, "password", id="short password"),
    pytest.param(with_(organisation_name="   "), 422, "organisation_name", id="blank organisation name"),
    pytest.param(with_(admin_name=42), 422, "admin_name", id="a number for a name"),
    pytest.param(with_(plan="enterprise"), 422, "plan", id="an unknown field"),
    pytest.param(with_(organisation_name="Acme\x00Corp"), 422, "organisation_name", id="NUL in a name"),
    pytest.param(with_(admin_name="Ada\x1bAdmin"), 422, "admin_name", id="control character in a name"),
    pytest.param(lambda b: {"data": "[" * 100_000 + "]" * 100_000, "content_type": JSON}, 400, "body",
                 id="deeply nested JSON"),
]


@pytest.mark.parametrize(("make", "status", "field"), BAD_REQUESTS)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
        client: FlaskClient, provider: DataProvider, make: Callable[[Body], dict[str, Any]],
        status: int, field: str) -> None:
    request_id = refs.slug("req")
    before = written(provider, request_id)
    response = client.post(SIGNUPS, headers={"X-Request-Id": request_id}, **make(refs.signup_body()))
    assert_refused(response, status, field)
    assert written(provider, request_id) == before


def test_an_oversized_body_is_refused_before_it_is_read(client: FlaskClient, provider: DataProvider,
                                                        settings: Settings) -> None:
    request_id = refs.slug("req")
    before = written(provider, request_id)
    body = refs.signup_body(organisation_name="x" * settings.max_content_length)
    response = client.post(SIGNUPS, json=body, headers={"X-Request-Id": request_id})
    assert_refused(response, 413, "body")
    assert written(provider, request_id) == before


def test_every_invalid_field_is_listed(client: FlaskClient) -> None:
    response = client.post(SIGNUPS, json=refs.signup_body(slug="NO", email="nope", password="x"))
    body = assert_refused(response, 422, "slug")
    assert {e["field"] for e in body["errors"]} == {"slug", "email", "password"}


@pytest.mark.parametrize("encoded", [
    '{"email": "\ud800@example.com"}'.encode("utf-8", "surrogatepass"),   # a lone surrogate's UTF-8 bytes
    '{"email": "\\ud800@example.com"}'.encode("utf-16-le"),             # UTF-16: the escape hidden
    '{"email": "ada@example.com"}'.encode("utf-32"),
    b'{"email": "\xff@example.com"}',
], ids=["surrogate-bytes", "utf-16", "utf-32", "not-utf-8"])
def test_a_body_that_is_not_utf_8_is_malformed(client: FlaskClient, encoded: bytes) -> None:
    response = client.post(SIGNUPS, data=encoded, content_type="application/json")
    assert_refused(response, 400, "body")


def test_a_lone_surrogate_escape_is_refused_naming_its_field_and_a_pair_is_text(client: FlaskClient) -> None:
    body = json.dumps({**refs.signup_body(), "admin_name": "Ada \ud83d\ude00",
                       "organisation_name": "Org \ud800"})
    response = client.post(SIGNUPS, data=body, content_type="application/json")
    assert_refused(response, 422, "organisation_name")
    body = json.dumps({**refs.signup_body(), "admin_name": "Ada \ud83d\ude00"})  # an emoji, escaped
    assert client.post(SIGNUPS, data=body, content_type="application/json").status_code == 202


def test_a_body_of_many_mistakes_lists_the_first_twenty(client: FlaskClient) -> None:
    unknown = {f"unknown{n:05}": n for n in range(20_000)}
    response = client.post(SIGNUPS, json={**refs.signup_body(), **unknown})
    body = assert_refused(response, 422, "unknown00000")
    assert [e["field"] for e in body["errors"]] == [f"unknown{n:05}" for n in range(20)]
    assert len(response.get_data()) < 4096


def signup(client: FlaskClient, body: Body) -> tuple[Any, str]:
    """Post a signup with a fresh request id; return the response and the id."""
    request_id = refs.slug("req")
    return client.post(SIGNUPS, json=body, headers={"X-Request-Id": request_id}), request_id


def test_a_taken_slug_is_a_conflict_on_slug(client: FlaskClient, provider: DataProvider) -> None:
    first = refs.signup_body()
    assert signup(client, first)[0].status_code == 202
    before = written(provider, "")
    response, request_id = signup(client, refs.signup_body(slug=first["slug"]))
    assert_refused(response, 409, "slug")
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants, before.signups, 0)


def test_an_email_with_a_live_signup_is_a_conflict_on_email(client: FlaskClient,
                                                            provider: DataProvider) -> None:
    first = refs.signup_body()
    assert signup(client, first)[0].status_code == 202
    before = written(provider, "")
    response, request_id = signup(client, refs.signup_body(email=f"  {first['email'].upper()} "))
    assert_refused(response, 409, "email")
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants, before.signups, 0)


def test_a_valid_signup_writes_one_tenant_one_signup_one_message(client: FlaskClient,
                                                                 provider: DataProvider) -> None:
    # The counterpart of "nothing written": the counts do move when a request succeeds.
    request_id = refs.slug("req")
    before = written(provider, request_id)
    response = client.post(SIGNUPS, json=refs.signup_body(), headers={"X-Request-Id": request_id})
    assert response.status_code == 202
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants + 1, before.signups + 1, 1)


def test_an_unknown_signup_is_not_found(client: FlaskClient) -> None:
    assert_refused(client.get(f"{SIGNUPS}/{uuid.uuid4()}"), 404, "signup_id")


def test_a_malformed_signup_id_is_not_found(client: FlaskClient) -> None:
    assert_refused(client.get(f"{SIGNUPS}/not-a-uuid"), 404, None)


def test_the_wrong_method_is_refused_as_json(client: FlaskClient) -> None:
    assert_refused(client.delete(SIGNUPS), 405, None)


@pytest.mark.parametrize("given", ["a\x00b", "x" * 8000, "spaces are not ids"])
def test_an_unusable_request_id_is_replaced_not_stored(client: FlaskClient, given: str) -> None:
    """The caller's X-Request-Id goes into logs and messages only if it is a short token."""
    response = client.post(SIGNUPS, json=refs.signup_body(), headers={"X-Request-Id": given})
    assert response.status_code == 202
    assert response.headers["X-Request-Id"] != given
    assert len(response.headers["X-Request-Id"]) == 32


# --- The signup's one-statement unit of work -------------------------------------------------

def test_the_signups_connection_goes_back_to_the_pool_transactional(settings: Settings) -> None:
    # The signup commits its one statement as it runs (autocommit); the pooled connection
    # it used must come back in transaction mode for the next request's unit of work.
    with web_app(settings.model_copy(update={"db_pool_size": 1})) as app:
        assert app.test_client().post(SIGNUPS, json=refs.signup_body()).status_code == 202
        provider: DataProvider = app.extensions["allotment.provider"]
        with provider.management() as session:
            pool = session.get_bind().pool  # type: ignore[union-attr]
            assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # the signup's connection
            session.execute(select(1))
            dbapi = session.connection().connection.dbapi_connection
            assert dbapi is not None and dbapi.info.transaction_status == pq.TransactionStatus.INTRANS


def test_an_autocommit_request_writes_nothing_else(app: Flask) -> None:
    with app.test_request_context():
        management_writer()
        with pytest.raises(RuntimeError):
            management_db()  # a transactional caller would get statements committed one by one
        with pytest.raises(RuntimeError):
            tenant_db(uuid.uuid4())


def test_a_request_whose_writer_may_have_committed_is_not_run_again_when_a_tenant_moved(
        settings: Settings) -> None:
    # TenantMoved makes the unit of work run the view again; a writer's statement commits as
    # it runs, so a second run would write it twice. Answered 503 instead, the view run once.
    runs: list[int] = []

    def view() -> Any:
        management_writer()
        runs.append(1)
        raise TenantMoved(uuid.uuid4())

    with web_app(settings) as app:  # an app of its own: routes are added before its first request
        app.add_url_rule("/api/v1/test/writer-then-moved", "writer_then_moved", view, methods=["POST"])
        answer = app.test_client().post("/api/v1/test/writer-then-moved", json={})
    assert (answer.status_code, runs) == (503, [1])


def test_a_transactional_request_gets_no_one_statement_writer(app: Flask) -> None:
    # Its statement would commit at once, outside the unit of work the request may roll back.
    with app.test_request_context():
        management_db()
        with pytest.raises(RuntimeError):
            management_writer()
    signup = app.test_client().post(SIGNUPS, json=refs.signup_body()).get_json()
    tenant_id = app.test_client().get(f"{SIGNUPS}/{signup['id']}").get_json()["tenant_id"]
    with app.test_request_context():
        tenant_db(uuid.UUID(tenant_id))
        with pytest.raises(RuntimeError):
            management_writer()
