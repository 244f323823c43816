"""Promotion through the web: operators start one, tenant admins and operators follow it
(JSON), and the tenant's admin page shows its progress."""
from __future__ import annotations

import uuid
from typing import Any

from flask import g, jsonify, render_template, url_for
from pydantic import BaseModel

from domain.errors import NotFound
from domain.tenancy import promotion, queries
from web.api import accepted
from web.auth import operator_required, page_requires, requires
from web.db import management_db
from web.openapi import doc
from web.tenancy import bp


class PromotionOut(BaseModel):
    """Where a promotion stands: its last step done and how far along it is."""

    promotion_id: uuid.UUID
    tenant_id: uuid.UUID
    status: str  # pending | running | completed | failed
    step: str
    percent: int
    rows_total: int
    rows_copied: int
    server: str | None
    database: str | None
    write_stall_ms: int | None
    error: str | None


class PromotionAccepted(BaseModel):
    """The promotion is recorded; follow the status URL."""

    id: uuid.UUID
    status_url: str


def _json(progress: promotion.Progress) -> Any:
    return jsonify(PromotionOut(**progress.as_dict()).model_dump(mode="json"))


@bp.post("/api/v1/operations/tenants/<uuid:tenant_id>/promotions")
@operator_required
@doc("Promote a trial tenant to a database of its own", auth=True,
     responses={202: PromotionAccepted, 404: "no such tenant", 409: "not on trial"})
def start_promotion(tenant_id: uuid.UUID) -> Any:
    """Record the promotion and queue it on the tenancy pool (a running one is returned)."""
    promotion_id = promotion.request_promotion(management_db(), tenant_id, reason="operator",
                                               requested_by=g.user_id, correlation_id=g.request_id)
    return accepted(url_for("tenancy.promotion_status", promotion_id=promotion_id), id=str(promotion_id))


@bp.get("/api/v1/operations/promotions/<uuid:promotion_id>")
@operator_required
@doc("Follow a promotion", auth=True, responses={200: PromotionOut, 404: "no such promotion"})
def promotion_status(promotion_id: uuid.UUID) -> Any:
    """A promotion's step and percentage."""
    return _json(promotion.progress(management_db(), promotion_id))


@bp.get("/api/v1/tenancy/promotion")
@requires("tenant:admin")
@doc("Follow my tenant's promotion", auth=True, responses={200: PromotionOut, 404: "never promoted"})
def my_promotion() -> Any:
    """The latest promotion of the token's tenant."""
    progress = promotion.latest_progress(management_db(), g.tenant_id)
    if progress is None:
        raise NotFound("this tenant was never promoted", field="promotion")
    return _json(progress)


@bp.get("/tenancy/admin")
@page_requires("tenant:admin")
def admin_page() -> Any:
    """The tenant's plan, where its data lives, and its promotion's progress."""
    tenant_id = g.caller.tenant_id
    session = management_db()
    return render_template("tenancy/admin.html", tenant=queries.overview(session, tenant_id),
                           promotion=promotion.latest_progress(session, tenant_id))
