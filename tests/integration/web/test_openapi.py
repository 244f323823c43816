"""The OpenAPI document lists every API route; the docs page and its assets load; health answers."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from tests.support.apps import web_app
from web import openapi
from web.openapi import openapi_path

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    """The served OpenAPI document."""
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json  # type: ignore[no-any-return]


def refs_in(node: Any) -> Iterator[str]:
    """Every ``$ref`` anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def test_the_document_is_built_once_per_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Anyone may fetch it: building it per request cost 0.2-0.3 s of a web worker each time.
    built: list[Flask] = []
    build = openapi.build_spec

    def counted(app: Flask) -> dict[str, Any]:
        built.append(app)
        return build(app)

    monkeypatch.setattr(openapi, "build_spec", counted)
    with web_app(settings) as app:
        client = app.test_client()
        first, second = client.get("/openapi.json"), client.get("/openapi.json")
        assert first.status_code == second.status_code == 200 and second.mimetype == "application/json"
        assert first.json == second.json == counted(app) and first.json["paths"]
        assert len(built) == 2  # once for the two requests, once for the comparison


def test_the_document_is_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_api_route_of_the_app_is_documented(app: Flask, spec: dict[str, Any]) -> None:
    routes = {(openapi_path(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
              for method in (rule.methods or set()) - IGNORED_METHODS}
    documented = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert len(routes) >= 6
    assert routes <= documented, sorted(routes - documented)
    assert all(path.startswith("/api/v1/") for path, _ in documented)


def test_every_operation_is_complete(spec: dict[str, Any]) -> None:
    operation_ids = []
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            operation_ids.append(operation["operationId"])
            assert operation["summary"]
            assert any(status.startswith("2") for status in operation["responses"]), (path, operation)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{([^}]+)}", path))
    assert len(operation_ids) == len(set(operation_ids))


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    references = set(refs_in(spec))
    assert references
    for reference in references:
        assert reference.startswith("#/components/schemas/")
        assert reference.rsplit("/", 1)[1] in spec["components"]["schemas"], reference


def test_bodies_and_guards_are_described(spec: dict[str, Any]) -> None:
    signup = spec["paths"]["/api/v1/tenancy/signups"]["post"]
    schema_ref = signup["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"organisation_name", "slug", "admin_name", "email", "password"}
    assert {"202", "400", "409", "415", "422"} <= set(signup["responses"])
    messages = spec["paths"]["/api/v1/operations/messages"]["get"]
    assert messages["security"] == [{"bearer": []}] and "401" in messages["responses"]


def test_query_parameters_are_described(spec: dict[str, Any]) -> None:
    notices = spec["paths"]["/api/v1/notifications/notices"]["get"]
    described = {p["name"]: p for p in notices["parameters"] if p["in"] == "query"}
    assert described["limit"]["schema"] == {"default": 50, "maximum": 200, "minimum": 0, "title": "Limit",
                                            "type": "integer"}
    assert described["offset"]["required"] is False and "422" in notices["responses"]
    messages = spec["paths"]["/api/v1/operations/messages"]["get"]
    (state,) = messages["parameters"]
    assert state["in"] == "query" and state["schema"]["enum"] == ["dead", "overdue"]
    employees = spec["paths"]["/api/v1/employment/employees"]["get"]
    assert {p["name"] for p in employees["parameters"]} == {"q", "page", "per_page", "org_unit_id"}


def test_the_docs_page_loads_with_its_assets(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for url in assets:
        with client.get(url) as asset:  # closes the served file
            assert asset.status_code == 200, url
            assert asset.get_data(), url
    spec_url = re.search(r'data-spec="([^"]+)"', html)
    assert spec_url and client.get(spec_url.group(1)).status_code == 200


@pytest.mark.parametrize(("url", "status"), [("/healthz", "ok"), ("/readyz", "ready")])
def test_health_and_readiness(client: FlaskClient, url: str, status: str) -> None:
    response = client.get(url)
    assert response.status_code == 200 and response.json == {"status": status}


# A part that does not answer, at an address (user, port, database) the answer must not show.
DOWN = {
    "the management database": {"database_url": "postgresql+psycopg://probe-user@127.0.0.1:9/probe-db"},
    "the broker": {"broker_url": "redis://127.0.0.1:9/0"},
}


@pytest.mark.parametrize("part", list(DOWN))
def test_not_ready_names_the_part_and_nothing_of_where_it_is(settings: Settings, part: str) -> None:
    with web_app(settings.model_copy(update=DOWN[part])) as app:
        response = app.test_client().get("/readyz", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json["reason"] == f"{part} does not answer"
    said = response.get_data(as_text=True)
    assert not [leak for leak in ("127.0.0.1", ":9", "probe", "Error") if leak in said], said
