"""The OpenAPI document, built from the pydantic models the views declare, and its page."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, send_from_directory
from pydantic import BaseModel
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"


def openapi_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path: ``<uuid:signup_id>`` -> ``{signup_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def doc(summary: str, *, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
        responses: dict[int, str | type[BaseModel]] | None = None,
        auth: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a JSON view for the OpenAPI document: its body, and the query string model
    it reads with ``web.api.parse_query``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        view.openapi = {"summary": summary, "body": body, "query": query,  # type: ignore[attr-defined]
                        "responses": responses or {200: "OK"}, "auth": auth}
        return view

    return decorate


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def build_spec(app: Flask) -> dict[str, Any]:
    """OpenAPI 3.1 for every documented rule of ``app``."""
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    error = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    components["Error"] = {"type": "object", "required": ["error", "reason"], "properties": {
        "error": {"type": "string"}, "field": {"type": ["string", "null"]},
        "reason": {"type": "string"}}}
    for rule in app.url_map.iter_rules():
        meta = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if meta is None:
            continue
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {"summary": meta["summary"], "operationId": rule.endpoint,
                                  "tags": [rule.endpoint.split(".")[0]], "responses": {}}
            params = [{"name": arg, "in": "path", "required": True, "schema": {"type": "string"}}
                      for arg in sorted(rule.arguments)]
            if meta["query"] is not None:
                params += _query_parameters(meta["query"], components)
            if params:
                op["parameters"] = params
            if meta["body"] is not None:
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": _schema(meta["body"], components)}}}
            for status, answer in meta["responses"].items():
                if isinstance(answer, type):
                    op["responses"][str(status)] = {"description": answer.__doc__ or "", "content": {
                        "application/json": {"schema": _schema(answer, components)}}}
                else:
                    op["responses"][str(status)] = {"description": answer}
            for status in ("400", "415", "422") if meta["body"] is not None else ():
                op["responses"].setdefault(status, {"description": "bad input", "content": error})
            if meta["query"] is not None:
                op["responses"].setdefault("422", {"description": "bad query parameter", "content": error})
            if meta["auth"]:
                op["security"] = [{"bearer": []}]
                op["responses"].setdefault("401", {"description": "unauthorized", "content": error})
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Allotment API", "version": "1"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


@bp.get("/openapi.json")
def openapi_json() -> Any:
    """The OpenAPI document of the JSON API: built from the app's routes on the first request
    and kept (the routes do not change; building it cost each anonymous request 0.2-0.3 s)."""
    served = current_app.extensions.get("allotment.openapi")
    if served is None:
        served = current_app.extensions["allotment.openapi"] = json.dumps(build_spec(current_app))
    return current_app.response_class(served, mimetype="application/json")


@bp.get("/docs")
def docs() -> str:
    """A browsable page of the API (Swagger UI, served from the bundled package)."""
    return render_template("openapi.html")


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Any:
    """Swagger UI's own assets."""
    return send_from_directory(str(swagger_ui_path), filename)
