"""Operator API of the notifications context: the addresses that get no more email (SES's
permanent bounces and complaints, refusals), and letting one go. Platform operators only."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import g, jsonify
from pydantic import BaseModel

from domain.notifications import suppression
from web.api import FromView, Paging, parse_query
from web.auth import operator_required
from web.db import management_db
from web.notifications import bp
from web.openapi import doc

SUPPRESSED = "/api/v1/operations/suppressed-addresses"


class SuppressedOut(FromView):
    """An address that gets no more email, and why."""

    address: str
    reason: str
    detail: str | None
    created_at: datetime


class SuppressedList(BaseModel):
    """Suppressed addresses, newest first."""

    items: list[SuppressedOut]


class SuppressedQuery(Paging):
    """Which suppressed addresses to list."""

    reason: Literal["bounce", "complaint", "refused"] | None = None


@bp.get(SUPPRESSED)
@operator_required
@doc("List the addresses that get no more email (operators)", query=SuppressedQuery,
     responses={200: SuppressedList}, auth=True)
def list_suppressed() -> Any:
    """Newest first, of one reason if asked."""
    query = parse_query(SuppressedQuery)
    found = suppression.listed(management_db(), reason=query.reason, limit=query.limit, offset=query.offset)
    return jsonify(SuppressedList(items=[SuppressedOut.of(s) for s in found]).model_dump(mode="json"))


@bp.get(f"{SUPPRESSED}/<address>")
@operator_required
@doc("Why an address gets no more email (operators)", responses={200: SuppressedOut, 404: "not suppressed"},
     auth=True)
def show_suppressed(address: str) -> Any:
    """The address's suppression (any case)."""
    return jsonify(SuppressedOut.of(suppression.suppressed(management_db(), address)).model_dump(mode="json"))


@bp.delete(f"{SUPPRESSED}/<address>")
@operator_required
@doc("Send email to a suppressed address again (operators)",
     responses={200: SuppressedOut, 404: "not suppressed"}, auth=True)
def let_go(address: str) -> Any:
    """Lift the suppression; answer what it was. Emails suppressed meanwhile are not sent late."""
    lifted = suppression.let_go(management_db(), address, by=g.user_id)
    return jsonify(SuppressedOut.of(lifted).model_dump(mode="json"))
