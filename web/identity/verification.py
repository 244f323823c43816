"""The page of the link that verifies an account's email address (the welcome email's).

``GET /identity/verify/<verification_token>`` shows the address and asks for the account's
password; the POST (CSRF-checked, as every page's) uses the link once and records the address as
verified (``identity.verify_email``). Both the email and the password are needed: someone
who signed up under another person's address has the password but not the email, and that
person has the email but not the password, so neither can make such an account verified
(and so linkable by email to an external identity). A GET changes nothing. An unknown,
used or expired link is a 404 page naming ``token``.
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from domain import links
from domain.errors import DomainError
from domain.identity import services as identity
from domain.identity.errors import UnknownVerification
from domain.identity.services import LinkView
from web.db import management_db
from web.forms import PageForm, place_error
from web.i18n import _l, gettext
from web.identity import bp
from web.ratelimit import limit_sign_in_as


class VerifyEmailForm(PageForm):
    """The password of the account whose address the link verifies."""

    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])


def _page(form: VerifyEmailForm, token: str, view: LinkView) -> str:
    return render_template("identity/verify_email.html", form=form, token=token, verification=view)


def _address_of_link() -> str | None:
    """The address of the link the request names (its account's sign-in counters count the
    password guesses made here); None for a link that is not live."""
    token = (request.view_args or {}).get("verification_token", "")
    if not links.well_formed(token):
        return None
    try:
        return identity.email_verification(management_db(), token).email
    except UnknownVerification:
        return None


@bp.route("/identity/verify/<verification_token>", methods=["GET", "POST"])
@limit_sign_in_as(_address_of_link)
def verify_email_page(verification_token: str) -> Any:
    """Show a live verification link; with the account's password, verify its address."""
    token = verification_token
    if not links.well_formed(token):
        raise UnknownVerification()
    db = management_db()
    view = identity.email_verification(db, token)
    form = VerifyEmailForm()
    if not form.validate_on_submit():
        return _page(form, token, view), 422 if form.is_submitted() else 200
    try:
        identity.verify_email(db, token, form.password.data)
    except DomainError as exc:
        if exc.field == "token":
            raise  # used or expired meanwhile: the 404 page
        place_error(form, exc, form.password)
        return _page(form, token, view), exc.status
    flash(gettext("Your email address %(email)s is verified.", email=view.email))
    return redirect(url_for("identity.sign_in_page"), code=303)
