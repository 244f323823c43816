"""The assets pages: the upload form (multipart, read as a stream, CSRF token checked from
the stream before the file is stored), an asset's page with its progress and then its
download links, the admin's usage, deleting."""
from __future__ import annotations

import io
import re
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.integration.assets import samples
from tests.integration.assets.conftest import MAX_UPLOAD_BYTES, World
from tests.support.tenants import TenantWithMembers
from tests.support.waiting import wait_for

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def tenant(local_world: World) -> TenantWithMembers:
    """A tenant for the pages."""
    return local_world.tenant("owner", "employee")


def _browser(world: World, tenant: TenantWithMembers, role: str) -> tuple[FlaskClient, str]:
    """A client holding the member's access cookie, and the CSRF token of its upload form."""
    client = world.client
    client.set_cookie(world.app.config["JWT_ACCESS_COOKIE_NAME"], world.token(tenant, role))
    page = client.get("/assets")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    token = CSRF.search(page.get_data(as_text=True))
    assert token is not None
    return client, unescape(token.group(1))


def _form(csrf: str | None, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
    """A multipart body as a browser sends it (the token first), encoded in memory."""
    fields: dict[str, object] = {} if csrf is None else {"csrf_token": csrf}
    boundary, body = encode_multipart({**fields, "file": FileStorage(io.BytesIO(data), filename,
                                                                     content_type=content_type)})
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def test_upload_through_the_form_then_follow_the_asset(local_world: World,
                                                      tenant: TenantWithMembers) -> None:
    client, csrf = _browser(local_world, tenant, "employee")
    photo = samples.jpeg(orientation=6)
    response = client.post("/assets", **_form(csrf, "portrait.jpg", photo, "image/jpeg"))
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    page_url = response.headers["Location"]

    def ready_page() -> str | None:
        html = client.get(page_url).get_data(as_text=True)
        return html if 'data-status="ready"' in html else None

    html = wait_for(ready_page, message="the asset page to show it ready")
    assert "portrait.jpg" in html and 'data-rendition="original"' in html and 'data-rendition="32"' in html
    asset_id = page_url.rstrip("/").rsplit("/", 1)[1]
    assert len(local_world.files(tenant.id, asset_id)) == 4
    listing = client.get("/assets").get_data(as_text=True)
    assert f'data-asset="{asset_id}"' in listing and 'id="usage"' not in listing  # an employee


def test_a_form_without_its_csrf_token_stores_nothing(local_world: World,
                                                      tenant: TenantWithMembers) -> None:
    client, _ = _browser(local_world, tenant, "employee")
    before = local_world.files(tenant.id)
    for csrf in (None, "forged-token"):
        response = client.post("/assets", **_form(csrf, "a.png", samples.png(), "image/png"))
        assert response.status_code == 400
    assert local_world.files(tenant.id) == before


def test_form_refusals_are_shown_beside_the_file(local_world: World, tenant: TenantWithMembers) -> None:
    client, csrf = _browser(local_world, tenant, "employee")
    before = local_world.files(tenant.id)
    too_big = client.post("/assets", **_form(csrf, "big.bin", b"z" * (MAX_UPLOAD_BYTES + 1), "text/plain"))
    assert too_big.status_code == 413
    assert 'data-field="file"' in too_big.get_data(as_text=True)
    bad_name = client.post("/assets", **_form(csrf, "a\x1bb.png", samples.png(), "image/png"))
    assert bad_name.status_code == 422 and 'data-field="filename"' in bad_name.get_data(as_text=True)
    assert local_world.files(tenant.id) == before


def test_the_admin_sees_usage_and_every_asset_and_may_delete(local_world: World,
                                                             tenant: TenantWithMembers) -> None:
    client, csrf = _browser(local_world, tenant, "owner")
    listing = client.get("/assets").get_data(as_text=True)
    assert 'id="usage"' in listing
    employee_assets = re.findall(r'data-asset="([0-9a-f-]+)"', listing)
    assert employee_assets  # the employee's uploads of this module
    victim = employee_assets[0]
    deleted = client.post(f"/assets/{victim}/delete", headers={"X-CSRFToken": csrf})
    assert deleted.status_code == 303
    assert f'data-asset="{victim}"' not in client.get("/assets").get_data(as_text=True)
    assert client.get(f"/assets/{victim}").status_code == 404


def test_a_visitor_is_sent_to_sign_in(local_world: World) -> None:
    response = local_world.client.get("/assets")
    assert response.status_code == 302 and "/identity/" in response.headers["Location"]
