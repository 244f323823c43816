"""HTML pages of the purchases context: the checkout and a purchase's status.

The checkout posts through the same flow as the API (web.purchases.flows), keyed by a
hidden idempotency key made for each rendering: submitting the same form twice (a double
click, a resubmitted POST) records one purchase and lands on its status page both times.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import g, redirect, render_template, url_for

from domain.errors import DomainError
from domain.purchases import queries
from domain.purchases.errors import IdempotencyKeyReused
from domain.purchases.services import PurchaseRequest
from web.auth import page_requires
from web.db import management_db
from web.forms import place_error
from web.i18n import gettext
from web.purchases import bp, flows
from web.purchases.forms import CheckoutForm, new_idempotency_key

BUY = "purchases:create"
# Where the domain's fields are shown on the form.
_FIELDS = {"product_code": "offer", "amount_minor": "offer", "currency": "offer"}


def _checkout(form: CheckoutForm, status: int = 200) -> tuple[str, int]:
    recent = queries.purchases_of_tenant(management_db(), g.tenant_id, limit=10)
    return render_template("purchases/checkout.html", form=form, purchases=recent), status


@bp.route("/purchases/checkout", methods=["GET", "POST"])
@page_requires(BUY)
def checkout_page() -> Any:
    """Show the products on sale; on a valid post, record the purchase and follow it."""
    form = CheckoutForm()
    form.set_offers(queries.products(management_db()))
    if not form.is_submitted():
        form.idempotency_key.data = new_idempotency_key()
        return _checkout(form)
    if not form.validate():
        return _checkout(form, 422)
    code, amount, currency = form.chosen()
    try:
        recorded = flows.buy(g.caller, PurchaseRequest(code, amount, currency, form.card_digits),
                             form.idempotency_key.data)
    except IdempotencyKeyReused:
        # This rendering was already used for another purchase (a stale page): a new key
        # makes the next submission a new purchase, on purpose.
        form.offer.errors = [
            gettext("this form was already used for another purchase; check and submit again")]
        form.idempotency_key.data = new_idempotency_key()
        return _checkout(form, 422)
    except DomainError as exc:
        place_error(form, exc, form.offer, _FIELDS)
        return _checkout(form, exc.status)
    return redirect(url_for("purchases.purchase_page", purchase_id=recorded.purchase_id), code=303)


@bp.get("/purchases/<uuid:purchase_id>")
@page_requires(BUY)
def purchase_page(purchase_id: uuid.UUID) -> Any:
    """Where a purchase stands; the page reloads itself until the outcome is known."""
    purchase = queries.purchase_of_tenant(management_db(), g.tenant_id, purchase_id)
    return render_template("purchases/status.html", purchase=purchase)
