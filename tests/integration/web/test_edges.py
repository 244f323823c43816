"""Edges of the authenticated API: odd query values, malformed token claims, a broken database."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy import update

from domain.db.provider import DataProvider, dedicated_key, server_label
from domain.tenancy.models import Tenant
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants

NOTICES = "/api/v1/notifications/notices"


@pytest.fixture(scope="module")
def member_token(client_module: FlaskClient, provider: DataProvider) -> str:
    """A token of an employee of a fresh trial tenant."""
    tenant = tenants.create_tenant(provider, ("employee",), prefix="edge")
    return tenants.access_token(client_module, tenant.member("employee"), tenant.slug)


@pytest.fixture(scope="module")
def client_module(app: Flask) -> FlaskClient:
    """A test client shared by this module's fixtures."""
    return app.test_client()


@pytest.mark.parametrize("query", ["limit=%C2%B2", "limit=" + "9" * 5000, "limit=-1", "offset=abc",
                                   "limit=%205", "limit=%2B5", "limit=5.0", "limit=1_0",
                                   "limit=%D9%A3", "limit=201"])
def test_odd_paging_values_are_refused(client: FlaskClient, member_token: str, query: str) -> None:
    response = client.get(f"{NOTICES}?{query}", headers={"Authorization": f"Bearer {member_token}"})
    assert_refused(response, 422, query.split("=", maxsplit=1)[0])


@pytest.mark.parametrize(("key", "named"), [
    ("k" * 100_000, f"categories.{'k' * 61}..."),
    ("k." * 50_000, ("categories." + "k." * 50_000)[:253] + "..."),  # the whole name is cut to 256
], ids=["a long key", "a key of dots"])
def test_a_refusal_echoes_at_most_64_characters_of_a_key_the_caller_made_up(
        client: FlaskClient, member_token: str, key: str, named: str) -> None:
    response = client.put("/api/v1/notifications/preferences",
                          headers={"Authorization": f"Bearer {member_token}"},
                          json={"categories": {key: {"email": True, "in_app": True}}, "digest": False})
    assert_refused(response, 422, named)
    assert len(response.get_data()) < 2000


def test_a_refusal_echoes_at_most_64_characters_of_a_query_parameter_the_caller_made_up(
        client: FlaskClient, member_token: str) -> None:
    response = client.get(f"{NOTICES}?{'x.' * 50_000}=1", headers={"Authorization": f"Bearer {member_token}"})
    assert_refused(response, 422, f"{'x.' * 30}x...")
    assert len(response.get_data()) < 2000


def test_plain_paging_values_are_accepted(client: FlaskClient, member_token: str) -> None:
    response = client.get(f"{NOTICES}?limit=10&offset=0", headers={"Authorization": f"Bearer {member_token}"})
    assert response.status_code == 200
    assert response.json["items"] == []


@pytest.mark.parametrize("path", [NOTICES, "/api/v1/operations/messages"])
def test_a_signed_token_with_malformed_claims_is_unauthorized(app: Flask, client: FlaskClient,
                                                              path: str) -> None:
    with app.app_context():
        token = create_access_token(identity="not-a-uuid",
                                    additional_claims={"tenant": "not-a-uuid", "op": True})
    assert_refused(client.get(path, headers={"Authorization": f"Bearer {token}"}), 401, "Authorization")


@pytest.fixture
def broken_tenant(provider: DataProvider) -> Iterator[str]:
    """A dedicated tenant whose database does not exist; retired after the test."""
    tenant_id, database = uuid.uuid4(), f"missing_{uuid.uuid4().hex[:8]}"
    label = provider.settings.placement_servers[0]
    with provider.management() as session:
        session.add(Tenant(id=tenant_id, slug=refs.slug("broken"), name="Broken", status="dedicated",
                           plan="standard", placement_server=server_label(label), database_name=database))
        session.commit()
    yield dedicated_key(server_label(label), database)
    with provider.management() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(status="deleted"))
        session.commit()


def test_the_message_list_names_a_database_that_does_not_answer(
        client: FlaskClient, provider: DataProvider, broken_tenant: str) -> None:
    token = tenants.access_token(client, tenants.create_account(provider, operator=True))
    response = client.get("/api/v1/operations/messages?state=dead", headers=tenants.bearer(token))
    assert response.status_code == 200
    assert response.json["unreachable"] == [broken_tenant]


@pytest.mark.parametrize("path", ["/identity/sign-in", "/tenancy/signup", "/docs", "/healthz", "/nowhere"])
def test_no_answer_may_be_framed_by_another_site(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.headers.get("Content-Security-Policy") == "frame-ancestors 'none'"
    assert response.headers.get("X-Frame-Options") == "DENY"
