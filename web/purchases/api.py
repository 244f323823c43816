"""JSON API of the purchases context for tenants: the catalogue, buying, following a purchase."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from flask import g, jsonify, request, url_for
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from domain.purchases import queries
from domain.purchases.catalogue import CODE
from domain.purchases.errors import IDEMPOTENCY_KEY
from domain.purchases.gateway import card_number_problem, normalise_card_number
from domain.purchases.money import MAX_AMOUNT_MINOR, currency_problem
from domain.purchases.queries import ProductView, PurchaseView
from domain.purchases.services import PurchaseRequest
from web.api import accepted, parse_json
from web.auth import requires
from web.db import management_db
from web.errors import ApiError
from web.openapi import doc
from web.purchases import bp, flows

BUY = "purchases:create"


def _currency(value: str) -> str:
    if (problem := currency_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _card_number(value: str) -> str:
    if (problem := card_number_problem(value)) is not None:
        raise ValueError(problem)
    return normalise_card_number(value)


Currency = Annotated[StrictStr, AfterValidator(_currency)]


class PurchaseBody(BaseModel):
    """A purchase: the product at the price the buyer was shown, and a (sandbox) card."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    product_code: StrictStr = Field(pattern=CODE.pattern, max_length=60)
    amount_minor: StrictInt = Field(ge=0, le=MAX_AMOUNT_MINOR, description="price in minor units")
    currency: Currency
    card_number: Annotated[StrictStr, Field(max_length=40), AfterValidator(_card_number)]
    tenant_id: uuid.UUID | None = Field(default=None, description="the token's tenant, if given")


class Accepted(BaseModel):
    """The purchase is recorded; follow the status URL."""

    id: uuid.UUID
    status_url: str


class ProductOut(BaseModel):
    """A product of the catalogue."""

    code: str
    name: str
    kind: str
    plan: str | None
    price_minor: int
    currency: str
    price: str
    active: bool


class ProductList(BaseModel):
    """Products of the catalogue."""

    items: list[ProductOut]


class PurchaseOut(BaseModel):
    """A purchase and where it stands: pending, completed, failed (with the reason),
    refund_requested or refunded (a completed one whose refund the gateway refused has the
    refusal as its failure_reason)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    product_code: str
    product_name: str
    product_kind: str
    plan: str | None
    amount_minor: int
    currency: str
    amount: str
    card_last4: str
    status: str
    final: bool
    failure_reason: str | None
    refund_reason: str | None
    created_at: datetime
    completed_at: datetime | None
    failed_at: datetime | None
    refunded_at: datetime | None


class PurchaseList(BaseModel):
    """A tenant's purchases, newest first."""

    items: list[PurchaseOut]


def product_json(p: ProductView) -> dict[str, Any]:
    """The API shape of a product."""
    return ProductOut(code=p.code, name=p.name, kind=p.kind, plan=p.plan, price_minor=p.price_minor,
                      currency=p.currency, price=p.price, active=p.active).model_dump(mode="json")


def purchase_json(p: PurchaseView) -> dict[str, Any]:
    """The API shape of a purchase."""
    return PurchaseOut(
        id=p.id, tenant_id=p.tenant_id, product_code=p.product_code, product_name=p.product_name,
        product_kind=p.product_kind, plan=p.plan, amount_minor=p.amount_minor, currency=p.currency,
        amount=p.amount, card_last4=p.card_last4, status=p.status, final=p.final,
        failure_reason=p.failure_reason, refund_reason=p.refund_reason, created_at=p.created_at,
        completed_at=p.completed_at, failed_at=p.failed_at, refunded_at=p.refunded_at,
    ).model_dump(mode="json")


@bp.get("/api/v1/purchases/products")
@requires(BUY)
@doc("List the products on sale", responses={200: ProductList}, auth=True)
def list_products() -> Any:
    """The active products of the catalogue."""
    items = [product_json(p) for p in queries.products(management_db())]
    return jsonify({"items": items})


@bp.post("/api/v1/purchases")
@requires(BUY)
@doc("Buy a product (requires an Idempotency-Key header)", body=PurchaseBody,
     responses={202: Accepted, 404: "tenant_id names another tenant"}, auth=True)
def create_purchase() -> Any:
    """Record a purchase and queue its charge; answer 202 with its status URL.

    The same ``Idempotency-Key`` with the same body answers with the same purchase; with
    another body it is refused (422).
    """
    body = parse_json(PurchaseBody)
    if body.tenant_id is not None and body.tenant_id != g.tenant_id:  # another tenant's: not found
        raise ApiError(404, "not_found", "no such tenant", "tenant_id")
    key = flows.checked_idempotency_key(request.headers.get(IDEMPOTENCY_KEY))
    recorded = flows.buy(g.caller, PurchaseRequest(body.product_code, body.amount_minor, body.currency,
                                                   body.card_number), key)
    response = accepted(url_for("purchases.purchase_status", purchase_id=recorded.purchase_id),
                        id=str(recorded.purchase_id))
    if recorded.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/api/v1/purchases")
@requires(BUY)
@doc("List my tenant's purchases", responses={200: PurchaseList}, auth=True)
def list_purchases() -> Any:
    """The token's tenant's purchases, newest first."""
    items = [purchase_json(p) for p in queries.purchases_of_tenant(management_db(), g.tenant_id)]
    return jsonify({"items": items})


@bp.get("/api/v1/purchases/<uuid:purchase_id>")
@requires(BUY)
@doc("Follow a purchase", responses={200: PurchaseOut, 404: "no such purchase"}, auth=True)
def purchase_status(purchase_id: uuid.UUID) -> Any:
    """Where a purchase of the token's tenant stands (another tenant's is not found)."""
    return jsonify(purchase_json(queries.purchase_of_tenant(management_db(), g.tenant_id, purchase_id)))
