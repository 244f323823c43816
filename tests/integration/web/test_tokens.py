"""Sign-in refusals: unknown tenant, wrong password, unknown account, bad input."""
from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants

TOKENS = "/api/v1/identity/tokens"
PASSWORD = "member password 0123"


@pytest.fixture(scope="module")
def account(provider: DataProvider) -> str:
    """The email of an account with PASSWORD and no tenant."""
    return tenants.create_account(provider, password=PASSWORD).email


def test_the_right_password_gets_a_token(client: FlaskClient, account: str) -> None:
    response = client.post(TOKENS, json={"email": account, "password": PASSWORD})
    assert response.status_code == 200
    assert response.json["token_type"] == "Bearer" and response.json["access_token"]


def test_an_unknown_tenant_is_not_found(client: FlaskClient, account: str) -> None:
    body = {"email": account, "password": PASSWORD, "tenant": refs.slug("nowhere")}
    response = client.post(TOKENS, json=body)
    assert_refused(response, 404, "tenant")


def test_a_tenant_the_account_does_not_belong_to_is_not_found(client: FlaskClient, account: str) -> None:
    # Another tenant's slug answers exactly like an unknown one: nothing reveals it exists.
    slug = refs.slug()
    assert client.post("/api/v1/tenancy/signups", json=refs.signup_body(slug=slug)).status_code == 202
    response = client.post(TOKENS, json={"email": account, "password": PASSWORD, "tenant": slug})
    assert_refused(response, 404, "tenant")


@pytest.mark.parametrize("credentials", [
    {"password": "wrong password 0123"},
    {"email": "nobody-at-all@example.com"},
], ids=["wrong password", "unknown email"])
def test_wrong_credentials_are_unauthorized(client: FlaskClient, account: str,
                                            credentials: dict[str, str]) -> None:
    body = {"email": account, "password": PASSWORD, **credentials}
    response = client.post(TOKENS, json=body)
    assert_refused(response, 401, "password")
    assert "access_token" not in response.json


@pytest.mark.parametrize(("body", "field"), [
    ({"password": PASSWORD}, "email"),
    ({"email": "not-an-email", "password": PASSWORD}, "email"),
    ({"email": "a@example.com", "password": ""}, "password"),
    ({"email": "a@example.com", "password": PASSWORD, "role": "operator"}, "role"),
    ({"email": "a@example.com", "password": PASSWORD, "tenant": "a\x00b"}, "tenant"),
    ({"email": "a@example.com", "password": PASSWORD, "tenant": "x" * 200}, "tenant"),
])
def test_bad_sign_in_input_names_the_field(client: FlaskClient, body: dict[str, str], field: str) -> None:
    assert_refused(client.post(TOKENS, json=body), 422, field)
