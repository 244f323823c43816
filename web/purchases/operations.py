"""Operator API of the purchases context: the catalogue, any purchase, refunds, a tenant's
billing ledger. Platform operators only (cross-tenant by design)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from flask import g, jsonify, url_for
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from domain.billing import queries as billing
from domain.purchases import catalogue, queries, services
from domain.purchases.catalogue import CODE, PLAN, ProductSpec
from domain.purchases.money import MAX_AMOUNT_MINOR
from domain.tenancy import queries as tenancy
from web.api import PlainText, accepted, parse_json
from web.auth import operator_required
from web.db import management_db
from web.openapi import doc
from web.purchases import bp
from web.purchases.api import (
    Accepted,
    Currency,
    ProductList,
    ProductOut,
    PurchaseOut,
    product_json,
    purchase_json,
)

PRODUCTS = "/api/v1/operations/products"


class ProductBody(BaseModel):
    """A new product: a plan (names the plan it gives) or an add-on."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: StrictStr = Field(pattern=CODE.pattern, max_length=60, description="unique, e.g. standard-monthly")
    name: PlainText = Field(min_length=1, max_length=200)
    kind: Literal["plan", "addon"]
    plan: StrictStr | None = Field(default=None, pattern=PLAN.pattern,
                                   description="the plan a plan product gives; none for an add-on")
    price_minor: StrictInt = Field(ge=0, le=MAX_AMOUNT_MINOR)
    currency: Currency


class ProductChange(BaseModel):
    """A new name and/or price (what is left out stays); a new currency comes with its price_minor."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: PlainText | None = Field(default=None, min_length=1, max_length=200)
    price_minor: StrictInt | None = Field(default=None, ge=0, le=MAX_AMOUNT_MINOR)
    currency: Currency | None = None

    @model_validator(mode="after")
    def _something(self) -> ProductChange:
        if self.name is None and self.price_minor is None and self.currency is None:
            raise ValueError("give a name, a price_minor or a currency to change")
        return self


class RefundBody(BaseModel):
    """Why the purchase is refunded."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: PlainText = Field(min_length=1, max_length=500)


class EntryOut(BaseModel):
    """A ledger entry: a charge (positive) or a refund (negative)."""

    id: uuid.UUID
    purchase_id: uuid.UUID
    kind: str
    amount_minor: int
    currency: str
    product_code: str
    description: str
    reference: str
    created_at: datetime


class BalanceOut(BaseModel):
    """What a tenant paid in one currency, refunds deducted."""

    currency: str
    amount_minor: int


class LedgerOut(BaseModel):
    """A tenant's billing ledger and balance."""

    tenant_id: uuid.UUID
    entries: list[EntryOut]
    balance: list[BalanceOut]


@bp.get(PRODUCTS)
@operator_required
@doc("List the catalogue, retired products included (operators)", responses={200: ProductList}, auth=True)
def list_catalogue() -> Any:
    """Every product, active or retired."""
    items = [product_json(p) for p in queries.products(management_db(), include_retired=True)]
    return jsonify({"items": items})


@bp.post(PRODUCTS)
@operator_required
@doc("Add a product (operators)", body=ProductBody, responses={201: ProductOut, 409: "code taken"},
     auth=True)
def create_product() -> Any:
    """Add a plan or an add-on to the catalogue."""
    body = parse_json(ProductBody)
    product = catalogue.create_product(management_db(), ProductSpec(**body.model_dump()))
    return jsonify(product_json(product)), 201


@bp.patch(f"{PRODUCTS}/<product_code>")
@operator_required
@doc("Rename or reprice a product (operators)", body=ProductChange,
     responses={200: ProductOut, 404: "no such product"}, auth=True)
def update_product(product_code: str) -> Any:
    """Change a product's name or price; purchases already recorded keep theirs."""
    body = parse_json(ProductChange)
    product = catalogue.update_product(management_db(), product_code, name=body.name,
                                       price_minor=body.price_minor, currency=body.currency)
    return jsonify(product_json(product))


@bp.post(f"{PRODUCTS}/<product_code>/retire")
@operator_required
@doc("Retire a product (operators)", responses={200: ProductOut, 404: "no such product"}, auth=True)
def retire_product(product_code: str) -> Any:
    """The product can no longer be bought."""
    return jsonify(product_json(catalogue.set_active(management_db(), product_code, False)))


@bp.post(f"{PRODUCTS}/<product_code>/reactivate")
@operator_required
@doc("Offer a retired product again (operators)", responses={200: ProductOut, 404: "no such product"},
     auth=True)
def reactivate_product(product_code: str) -> Any:
    """The product can be bought again."""
    return jsonify(product_json(catalogue.set_active(management_db(), product_code, True)))


@bp.get("/api/v1/operations/purchases/<uuid:purchase_id>")
@operator_required
@doc("Any tenant's purchase (operators)", responses={200: PurchaseOut, 404: "no such purchase"}, auth=True)
def show_any_purchase(purchase_id: uuid.UUID) -> Any:
    """Where a purchase stands, whichever tenant made it."""
    return jsonify(purchase_json(queries.purchase(management_db(), purchase_id)))


@bp.post("/api/v1/operations/purchases/<uuid:purchase_id>/refund")
@operator_required
@doc("Refund a completed purchase (operators)", body=RefundBody,
     responses={202: Accepted, 404: "no such purchase", 409: "not completed"}, auth=True)
def refund_purchase(purchase_id: uuid.UUID) -> Any:
    """Record the refund request and queue it; answer 202 with the purchase's status URL."""
    body = parse_json(RefundBody)
    services.request_refund(management_db(), purchase_id, reason=body.reason, requested_by=g.user_id,
                            correlation_id=g.request_id)
    return accepted(url_for("purchases.show_any_purchase", purchase_id=purchase_id), id=str(purchase_id))


@bp.get("/api/v1/operations/tenants/<uuid:tenant_id>/ledger")
@operator_required
@doc("A tenant's billing ledger and balance (operators)", responses={200: LedgerOut, 404: "no such tenant"},
     auth=True)
def show_tenant_ledger(tenant_id: uuid.UUID) -> Any:
    """Every charge and refund of a tenant, oldest first, and what it paid per currency."""
    db = management_db()
    tenancy.name_of(db, tenant_id)  # NotFound for an unknown tenant
    ledger = billing.ledger_of(db, tenant_id)
    body = LedgerOut(tenant_id=tenant_id, entries=[EntryOut(**e.__dict__) for e in ledger.entries],
                     balance=[BalanceOut(currency=c, amount_minor=a) for c, a in ledger.balances.items()])
    return jsonify(body.model_dump(mode="json"))
