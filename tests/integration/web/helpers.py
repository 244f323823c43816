"""Helpers of the web tests: what a request wrote, and the one error shape."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from domain.db.provider import DataProvider
from domain.messaging.tables import outbox
from domain.tenancy.models import Signup, Tenant


@dataclass(frozen=True)
class Written:
    """Row counts a signup request could change."""

    tenants: int
    signups: int
    messages: int    # outbox rows carrying the request's id (its correlation id)


def written(provider: DataProvider, request_id: str) -> Written:
    """Count tenants and signups (workers never insert either) and the request's outbox rows
    (counted by correlation id: a background worker may add unrelated outbox rows meanwhile)."""
    with provider.management() as session:
        return Written(
            tenants=session.scalar(select(func.count()).select_from(Tenant)) or 0,
            signups=session.scalar(select(func.count()).select_from(Signup)) or 0,
            messages=session.scalar(select(func.count()).select_from(outbox).where(
                outbox.c.correlation_id == request_id)) or 0,
        )


def assert_refused(response: Any, status: int, field: str | None) -> dict[str, Any]:
    """The response is ``status`` with the one JSON error shape, naming ``field`` and a reason."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.json
    assert {"error", "field", "reason"} <= set(body)
    assert body["field"] == field
    assert isinstance(body["reason"], str) and body["reason"]
    assert isinstance(body["error"], str) and body["error"]
    return body
