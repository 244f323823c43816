"""The HTML signup form: CSRF-protected (as in production: the tests' app keeps CSRF on),
errors next to their fields, nothing written on refusal."""
from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from domain.db.provider import DataProvider
from tests.integration.messaging.helpers import tenant_id_of
from tests.integration.web.helpers import written
from tests.support import refs
from tests.support.tenants import page_csrf

FORM = "/tenancy/signup"


def post_form(client: FlaskClient, fields: dict[str, str]) -> tuple[TestResponse, str]:
    """Post the form with a fresh request id; return the response and the id."""
    request_id = refs.slug("req")
    return client.post(FORM, data=fields, headers={"X-Request-Id": request_id}), request_id


def test_the_form_renders_every_field_and_a_csrf_token(client: FlaskClient) -> None:
    page = client.get(FORM).get_data(as_text=True)
    for field in ("organisation_name", "slug", "admin_name", "email", "password"):
        assert f'name="{field}"' in page
    assert page_csrf(client, FORM)


@pytest.mark.parametrize("token", [None, "forged-token"], ids=["no token", "forged token"])
def test_a_post_without_a_valid_csrf_token_is_refused_and_writes_nothing(
        client: FlaskClient, provider: DataProvider, token: str | None) -> None:
    body = refs.signup_body()
    if token:
        body["csrf_token"] = token
    before = written(provider, "")
    response, request_id = post_form(client, body)
    assert response.status_code == 400
    assert tenant_id_of(provider, body["slug"]) is None
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants, before.signups, 0)


def test_invalid_fields_re_render_the_form_with_each_error_next_to_its_field(
        client: FlaskClient, provider: DataProvider) -> None:
    body = refs.signup_body(slug="Not A Slug", password="short", email="nope")
    before = written(provider, "")
    response, request_id = post_form(client, {**body, "csrf_token": page_csrf(client, FORM)})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("slug", "password", "email"):
        assert re.search(rf'<p class="field-error" data-field="{field}">[^<]+</p>', page), field
    assert 'data-field="organisation_name"' not in page
    assert f'value="{body["organisation_name"]}"' in page   # what was typed is kept...
    assert "short" not in re.findall(r'name="password"[^>]*>', page)[0]  # ...except the password
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants, before.signups, 0)


def test_a_taken_slug_re_renders_the_form_with_the_conflict_on_slug(client: FlaskClient,
                                                                    provider: DataProvider) -> None:
    first = refs.signup_body()
    assert post_form(client, {**first, "csrf_token": page_csrf(client, FORM)})[0].status_code == 303
    before = written(provider, "")
    response, request_id = post_form(client, {**refs.signup_body(slug=first["slug"]),
                                               "csrf_token": page_csrf(client, FORM)})
    assert response.status_code == 409
    assert re.search(r'data-field="slug">is already taken<', response.get_data(as_text=True))
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants, before.signups, 0)


def test_a_valid_post_redirects_to_the_status_page(client: FlaskClient, provider: DataProvider) -> None:
    body = refs.signup_body()
    response, request_id = post_form(client, {**body, "csrf_token": page_csrf(client, FORM)})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/tenancy/signups/[0-9a-f-]{36}", location)
    assert tenant_id_of(provider, body["slug"]) is not None
    assert written(provider, request_id).messages == 1
    status_page = client.get(location)
    assert status_page.status_code == 200
    assert body["slug"] in status_page.get_data(as_text=True)
