"""Operator endpoints and health checks."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from flask import current_app, jsonify, request
from pydantic import BaseModel

from domain.messaging import relay
from web.auth import operator_required
from web.db import provider
from web.errors import ApiError, error_response
from web.openapi import doc
from web.operations import bp
from workers.publisher import publish


class MessageOut(BaseModel):
    """An outbox delivery as operators see it."""

    id: uuid.UUID
    database: str
    type: str
    handler: str
    tenant_id: uuid.UUID | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    dead_at: datetime | None
    last_error: str | None


class MessageList(BaseModel):
    """Dead or overdue deliveries."""

    state: Literal["dead", "overdue"]
    items: list[MessageOut]
    unreachable: list[str]  # databases that did not answer


@bp.get("/healthz")
def healthz() -> Any:
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """The management database and the broker answer."""
    try:
        provider().ping()
        with current_app.extensions["allotment.celery"].connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return error_response(503, "not_ready", f"{type(exc).__name__}: {exc}", None)
    return jsonify({"status": "ready"})


@bp.get("/api/v1/operations/messages")
@operator_required
@doc("List dead or overdue messages", responses={200: MessageList}, auth=True)
def list_messages() -> Any:
    """Dead (out of attempts) or overdue (past their lease) deliveries, across every database."""
    state = request.args.get("state", "dead")
    if state not in ("dead", "overdue"):
        raise ApiError(422, "validation_failed", "must be 'dead' or 'overdue'", "state")
    listing = relay.list_all(provider(), state)
    body = MessageList(state=state, items=[MessageOut(**r.__dict__) for r in listing.rows],  # type: ignore[arg-type]
                       unreachable=listing.unreachable)
    return jsonify(body.model_dump(mode="json"))


@bp.post("/api/v1/operations/messages/<path:database>/<uuid:message_id>/retry")
@operator_required
@doc("Retry a dead message", responses={202: "re-sent", 404: "no such message", 409: "not dead"}, auth=True)
def retry_message(database: str, message_id: uuid.UUID) -> Any:
    """Bring a dead delivery back and send it again."""
    settings = current_app.extensions["allotment.settings"]
    envelope = relay.revive_in(provider(), database, message_id, settings.message_lease_seconds)
    publish(current_app.extensions["allotment.celery"], [envelope])
    return jsonify({"id": envelope.id, "status": "resent"}), 202
