"""The product catalogue, as platform operators manage it: create, reprice, rename,
retire and reactivate. A purchase copies what it bought, so a change here never alters a
purchase already recorded."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.sql import violated_constraint
from domain.purchases.errors import InvalidProduct, ProductCodeTaken, ProductNotFound
from domain.purchases.models import Product
from domain.purchases.money import MAX_AMOUNT_MINOR, currency_problem
from domain.purchases.queries import ProductView, product_view

# A product code: 2-60 lower-case letters, digits and dashes, no dash at either end.
CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])$")
# A plan code, as tenants carry it ("standard", "professional").
PLAN = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
KINDS = ("plan", "addon")


@dataclass(frozen=True)
class ProductSpec:
    """A new product."""

    code: str
    name: str
    kind: str
    plan: str | None
    price_minor: int
    currency: str


def _check_price(price_minor: int, currency: str) -> None:
    if not 0 <= price_minor <= MAX_AMOUNT_MINOR:
        raise InvalidProduct(f"must be from 0 to {MAX_AMOUNT_MINOR} (minor units)", field="price_minor")
    if (problem := currency_problem(currency)) is not None:
        raise InvalidProduct(problem, field="currency")


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidProduct("must be 1 to 200 characters", field="name")
    return name


def _check(spec: ProductSpec) -> None:
    if not CODE.fullmatch(spec.code):
        raise InvalidProduct("must be 2-60 lower-case letters, digits and dashes", field="code")
    if spec.kind not in KINDS:
        raise InvalidProduct("must be 'plan' or 'addon'", field="kind")
    if spec.kind == "plan" and (spec.plan is None or not PLAN.fullmatch(spec.plan)):
        raise InvalidProduct("a plan product names the plan it gives (e.g. 'standard')", field="plan")
    if spec.kind == "addon" and spec.plan is not None:
        raise InvalidProduct("an add-on gives no plan; leave it out", field="plan")
    _check_price(spec.price_minor, spec.currency)


def create_product(session: Session, spec: ProductSpec) -> ProductView:
    """Add a product to the catalogue (active); its code is unique."""
    _check(spec)
    product = Product(code=spec.code, name=_check_name(spec.name), kind=spec.kind, plan=spec.plan,
                      price_minor=spec.price_minor, currency=spec.currency, active=True)
    session.add(product)
    try:
        session.flush()
    except IntegrityError as exc:
        if violated_constraint(exc) == "uq_products_code":
            raise ProductCodeTaken() from None
        raise
    return product_view(product)


def product_row(session: Session, code: str, *, lock: bool = False) -> Product | None:
    """The product with ``code`` (its row locked with ``lock``), or None. A code no product
    can have is not looked for (nor a NUL PostgreSQL would refuse)."""
    if not CODE.fullmatch(code):
        return None
    query = select(Product).where(Product.code == code)
    return session.scalar(query.with_for_update() if lock else query)


def _locked(session: Session, code: str) -> Product:
    product = product_row(session, code, lock=True)
    if product is None:
        raise ProductNotFound()
    return product


def update_product(session: Session, code: str, *, name: str | None = None,
                   price_minor: int | None = None, currency: str | None = None) -> ProductView:
    """Rename or reprice a product (what is not given stays). A new currency needs its price:
    the same minor units are another amount in another currency (1500 is 15.00 EUR, 1500 JPY)."""
    product = _locked(session, code)
    if price_minor is not None or currency is not None:
        price = product.price_minor if price_minor is None else price_minor
        currency = currency or product.currency
        _check_price(price, currency)
        if price_minor is None and currency != product.currency:
            raise InvalidProduct(f"give the price in {currency} too (a new currency needs its price)",
                                 field="price_minor")
        product.price_minor, product.currency = price, currency
    if name is not None:
        product.name = _check_name(name)
    product.updated_at = utcnow()
    session.flush()
    return product_view(product)


def set_active(session: Session, code: str, active: bool) -> ProductView:
    """Retire a product (it can no longer be bought) or offer it again."""
    product = _locked(session, code)
    if product.active != active:
        product.active, product.updated_at = active, utcnow()
        session.flush()
    return product_view(product)
