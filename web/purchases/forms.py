"""HTML forms of the purchases context: the checkout."""
from __future__ import annotations

import secrets

from wtforms import Field, Form, HiddenField, RadioField, StringField
from wtforms.validators import DataRequired, Regexp, ValidationError

from domain.purchases.gateway import card_number_problem, normalise_card_number
from domain.purchases.queries import ProductView
from domain.text import whole_number
from web.forms import PageForm, strip
from web.i18n import _l

# What the buyer was shown, posted back as the choice: "<code>|<price_minor>|<currency>".
_SEP = "|"


def offer_value(product: ProductView) -> str:
    """The radio value of a product at the price shown."""
    return _SEP.join((product.code, str(product.price_minor), product.currency))


def new_idempotency_key() -> str:
    """A fresh key for one rendering of the form: a second submission of it is the same purchase."""
    return secrets.token_urlsafe(24)


def _card_number(form: Form, field: Field) -> None:
    if field.data and (problem := card_number_problem(field.data)) is not None:
        raise ValidationError(problem)


def _offer(form: Form, field: Field) -> None:
    parts = (field.data or "").split(_SEP)
    if len(parts) != 3 or whole_number(parts[1], 13) is None:
        raise ValidationError(_l("choose one of the products"))


class CheckoutForm(PageForm):
    """Buy a product: which one (at the price shown), the card, and the form's own key."""

    offer = RadioField(_l("Product"), validate_choice=False,
                       validators=[DataRequired(message=_l("choose one of the products")), _offer])
    card_number = StringField(_l("Card number"), filters=[strip], validators=[DataRequired(), _card_number])
    idempotency_key = HiddenField(validators=[
        DataRequired(), Regexp(r"^[\x20-\x7e]{1,255}\Z", message=_l("the form is damaged; reload it"))])

    def set_offers(self, products: list[ProductView]) -> None:
        """Offer ``products`` at their current prices."""
        self.offer.choices = [(offer_value(p), f"{p.name} — {p.price}") for p in products]

    def chosen(self) -> tuple[str, int, str]:
        """(product code, price in minor units, currency) as the buyer was shown them."""
        code, price, currency = self.offer.data.split(_SEP)
        return code, int(price), currency

    @property
    def card_digits(self) -> str:
        """The card number without spaces or dashes."""
        return normalise_card_number(self.card_number.data or "")
