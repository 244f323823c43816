"""HTML pages of the tenancy context."""
from __future__ import annotations

import uuid
from typing import Any

from flask import g, redirect, render_template, url_for

from domain.errors import DomainError
from domain.tenancy import queries, services
from web.db import management_db, provider, sealer
from web.forms import place_error
from web.ratelimit import limit_sign_up
from web.tenancy import bp
from web.tenancy.forms import SignupForm


@bp.route("/tenancy/signup", methods=["GET", "POST"])
@limit_sign_up
def signup_page() -> Any:
    """Show the signup form; on a valid post, record the signup and follow it."""
    form = SignupForm()
    if form.validate_on_submit():
        request = services.SignupRequest(
            organisation_name=form.organisation_name.data.strip(), slug=form.slug.data.strip(),
            admin_name=form.admin_name.data.strip(), email=form.email.data.strip(),
            password=form.password.data)
        try:
            signup_id = services.sign_up_tenant(management_db(), request, correlation_id=g.request_id,
                                                sealer=sealer())
        except DomainError as exc:
            place_error(form, exc, form.slug)
            return render_template("tenancy/signup.html", form=form), exc.status
        return redirect(url_for("tenancy.signup_status_page", signup_id=signup_id), code=303)
    status = 422 if form.is_submitted() else 200
    return render_template("tenancy/signup.html", form=form), status


@bp.get("/tenancy/signups/<uuid:signup_id>")
def signup_status_page(signup_id: uuid.UUID) -> Any:
    """Each step of a signup; the page follows the status URL until it completes."""
    status = queries.signup_status(provider(), signup_id)
    return render_template("tenancy/signup_status.html", status=status,
                           status_url=url_for("tenancy.signup_status", signup_id=signup_id))
