"""The pages of a lost password: ask for a link, and the emailed link's page.

``/identity/password-reset`` asks for the address and answers alike whether an account has
it or not (a link goes only to an account's own address). The email's link leads to
``/identity/password-reset/<reset_token>``: a GET shows the address and changes nothing;
the POST (CSRF-checked, as every page's) sets the new password once, ends every session
of the account (web.identity.flows.reset_password) and sends the browser to sign in. An
unknown, used or expired link is a 404 page naming ``token``. Neither page sends its
address (with the token) on as a referrer.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, flash, make_response, redirect, render_template, url_for
from werkzeug.wrappers import Response

from domain import links
from domain.errors import DomainError
from domain.identity import recovery
from domain.identity.errors import UnknownPasswordReset
from domain.identity.services import LinkView
from web.auth import clear_token_cookies
from web.db import management_db
from web.forms import place_error
from web.i18n import gettext
from web.identity import bp, flows
from web.identity.forms import PasswordResetForm, PasswordResetLinkForm
from web.ratelimit import limit_password_reset


@bp.route("/identity/password-reset", methods=["GET", "POST"])
@limit_password_reset
def password_reset_link_page() -> Any:
    """Ask for a link that sets a new password; the same answer for every address."""
    form = PasswordResetLinkForm()
    if not form.validate_on_submit():
        return _link_page(form), 422 if form.is_submitted() else 200
    flows.request_password_reset(form.email.data)
    return _link_page(form, sent=form.email.data)


def _link_page(form: PasswordResetLinkForm, *, sent: str | None = None) -> str:
    minutes = round(current_app.extensions["allotment.settings"].password_reset_minutes)
    return render_template("identity/password_reset_link.html", form=form, sent=sent, minutes=minutes)


@bp.route("/identity/password-reset/<reset_token>", methods=["GET", "POST"])
def password_reset_page(reset_token: str) -> Any:
    """Show a live reset link; with a new password (twice), set it and sign everyone out."""
    if not links.well_formed(reset_token):
        raise UnknownPasswordReset()
    view = recovery.password_reset(management_db(), reset_token)
    form = PasswordResetForm()
    if not form.validate_on_submit():
        return _reset_page(form, reset_token, view), 422 if form.is_submitted() else 200
    try:
        flows.reset_password(reset_token, form.new_password.data)
    except DomainError as exc:
        if exc.field == "token":
            raise  # used or expired meanwhile: the 404 page
        place_error(form, exc, form.new_password)
        return _reset_page(form, reset_token, view), exc.status
    flash(gettext("The password of %(email)s is changed and every session of the account is signed "
                  "out. Sign in with the new password.", email=view.email))
    response: Response = redirect(url_for("identity.sign_in_page"), code=303)
    return clear_token_cookies(response)


def _reset_page(form: PasswordResetForm, token: str, view: LinkView) -> Response:
    # The page's address holds the token: no cache keeps it, no link followed from it
    # carries it on (the template's meta tag says it too, for browsers that read only that).
    response = make_response(render_template("identity/password_reset.html", form=form, token=token,
                                             reset=view))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
