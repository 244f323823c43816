"""One error shape: ``{"error", "field", "reason"}`` for the API, re-rendered pages for HTML."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from domain.db.sql import timed_out
from domain.errors import DomainError

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 2  # after a database timeout: the lock or load behind it is often gone by then


class ApiError(Exception):
    """A refused API request: HTTP status, the offending field, and why."""

    def __init__(self, status: int, error: str, reason: str, field: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.field = status, error, reason, field
        self.details = details or []


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.endswith(".json") or \
        request.accept_mimetypes.best == "application/json"


def cut(text: str, limit: int = 64) -> str:
    """``text``, or its first ``limit - 3`` characters and "...": a field's name can hold text
    the caller made up (a map's key, a query parameter's name), which an answer need not
    echo whole."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bounded(field: str | None) -> str | None:
    """A field's name, each dotted part cut to 64 characters and the whole to 256."""
    if field is None:
        return None
    return cut(".".join(cut(part) for part in field.split(".")), 256)


# The errors an answer lists: a body of a hundred thousand unknown keys is one mistake made
# many times, and its answer need not be megabytes.
MAX_DETAILS = 20


def error_response(status: int, error: str, reason: str, field: str | None = None,
                   details: list[dict[str, Any]] | None = None) -> Any:
    """The JSON error body and status (or an HTML page for browsers); at most ``MAX_DETAILS``
    of the errors, the first ones."""
    field = _bounded(field)
    details = [{**d, "field": _bounded(d.get("field"))} for d in (details or [])[:MAX_DETAILS]]
    if _wants_json():
        body: dict[str, Any] = {"error": error, "field": field, "reason": reason}
        if details:
            body["errors"] = details
        return jsonify(body), status
    return render_template("error.html", status=status, reason=reason, field=field), status


def register_error_handlers(app: Flask) -> None:
    """Map API, domain and HTTP errors to the one shape."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.error, exc.reason, exc.field, exc.details)

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> Any:
        name = type(exc).__name__.replace("Error", "")
        error = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
        return error_response(exc.status, error, exc.reason, exc.field)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return error_response(400, "csrf_failed", exc.description, "csrf_token")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        error = (exc.name or "error").lower().replace(" ", "_")
        field = "body" if exc.code == 413 else None
        return error_response(exc.code or 500, error, exc.description or error, field)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if timed_out(exc):  # WEB_STATEMENT_TIMEOUT_MS / WEB_LOCK_TIMEOUT_MS: rolled back, retryable
            return timeout_response(exc)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")


def timeout_response(exc: BaseException) -> Any:
    """503 ``database_timeout`` with Retry-After, for a statement PostgreSQL cancelled (a view's,
    or its unit of work's commit)."""
    log.warning("a database statement of %s %s timed out: %s", request.method, request.path,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    body, status = error_response(503, "database_timeout",
                                  "the database did not answer in time; try again shortly")
    return make_response(body, status, {"Retry-After": str(RETRY_AFTER_SECONDS)})
