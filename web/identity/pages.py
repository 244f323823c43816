"""HTML pages of the identity context: sign in and out, my sessions, my password, a new link
verifying my address, accepting an invitation.

The pages call the same flows as the JSON API (web.identity.flows) and keep the tokens in
HttpOnly cookies (web.auth). Every POST is CSRF-checked before it reaches a view
(web/__init__); a GET never changes anything.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask import current_app, flash, g, make_response, redirect, render_template, request, url_for
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from werkzeug.wrappers import Response

from domain import links
from domain.errors import DomainError, NotFound
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity import sessions
from domain.identity.errors import AlreadyVerified
from domain.identity.sessions import SessionRefused
from domain.tenancy import queries as tenancy_queries
from web.auth import (
    NOT_SIGNED_IN,
    PAGES,
    Caller,
    authenticate,
    clear_token_cookies,
    invalidate_permissions,
    page_requires,
    peek_refresh_cookie,
    refresh_claims,
    set_token_cookies,
)
from web.db import management_db
from web.forms import place_error
from web.i18n import gettext
from web.identity import bp, flows
from web.identity.forms import AcceptInvitationForm, PasswordForm, SignInForm
from web.ratelimit import limit_email_verification, limit_password_change, limit_sign_in


def _home() -> str:
    return url_for("identity.sessions_page")


def _see_other(target: str) -> Response:
    return redirect(target, code=303)


def _signed_out(response: Response) -> Response:
    """Clear the token cookies, and keep web.auth from renewing the access cookie of the
    session this request just ended."""
    g.pop("caller", None)
    g.signed_out = True
    return clear_token_cookies(response)


# --- navigation --------------------------------------------------------------------------

@dataclass(frozen=True)
class Navigation:
    """What the header offers: signed-in links, or sign in / sign up."""

    signed_in: bool
    manage_users: bool


def _has_access_cookie() -> bool:
    token = request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"])
    if not token:
        return False
    try:
        current_app.extensions["allotment.verified_tokens"].identity(token)
    except NOT_SIGNED_IN:
        return False
    return True


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    """The header's links for every page (no database or Redis call)."""
    if g.get("signed_out"):
        return {"nav": Navigation(False, False)}
    caller: Caller | None = g.get("caller")
    if caller is not None:
        return {"nav": Navigation(True, caller.may("users:manage"))}
    return {"nav": Navigation(_has_access_cookie(), False)}


# --- sign in and out ---------------------------------------------------------------------

@dataclass(frozen=True)
class SavedSignIn:
    """Who the browser's refresh cookie belongs to, for the "Continue as" button."""

    name: str
    email: str
    tenant: str | None


def _refresh_cookie_session() -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None] | None:
    """(user, session, tenant) of a valid refresh cookie, if the browser has one."""
    claims = peek_refresh_cookie()
    if claims is None:
        return None
    try:
        return (uuid.UUID(str(claims.get("sub"))), uuid.UUID(str(claims.get("sid"))),
                uuid.UUID(str(claims["tenant"])) if claims.get("tenant") else None)
    except ValueError:
        return None


def _saved_sign_in() -> SavedSignIn | None:
    saved = _refresh_cookie_session()
    if saved is None:
        return None
    user_id, session_id, tenant_id = saved
    db = management_db()
    user = identity.users_by_id(db, [user_id]).get(user_id)
    if user is None or not user.active or sessions.is_revoked(db, session_id):
        return None
    slug = tenancy_queries.slugs_of(db, [tenant_id]).get(tenant_id) if tenant_id else None
    return SavedSignIn(user.name, user.email, slug)


def _sign_in_page(form: SignInForm, target: str | None, *, refused: str | None = None) -> str:
    settings = current_app.extensions["allotment.settings"]
    return render_template("identity/sign_in.html", form=form, next=target, refused=refused,
                           saved=None if refused else _saved_sign_in(),
                           oidc_enabled=settings.oidc_enabled)


@bp.route("/identity/sign-in", methods=["GET", "POST"])
@limit_sign_in
def sign_in_page() -> Any:
    """The sign-in form; on valid credentials, token cookies and on to ``next``."""
    form = SignInForm()
    target = flows.local_path(request.args.get("next"))
    if form.validate_on_submit():
        try:
            signed_in = identity.sign_in(management_db(), form.email.data, form.password.data,
                                         form.tenant.data or None)
        except DomainError as exc:
            place_error(form, exc, form.password)
            return _sign_in_page(form, target), exc.status
        tokens = flows.start(signed_in, "password")
        return set_token_cookies(_see_other(target or _home()), tokens)
    return _sign_in_page(form, target), 422 if form.is_submitted() else 200


@bp.post("/identity/refresh")
def refresh_page() -> Any:
    """"Continue as": spend the refresh cookie for new tokens (it is single use)."""
    target = flows.local_path(request.args.get("next"))
    try:
        tokens = flows.refresh(refresh_claims(PAGES))
    except (SessionRefused, JWTExtendedException, PyJWTError) as exc:
        reason = exc.reason if isinstance(exc, DomainError) else \
            gettext("your saved sign-in cannot be used; sign in again")
        page = _sign_in_page(SignInForm(formdata=None), target, refused=reason)
        return _signed_out(make_response(page, 401))
    return set_token_cookies(_see_other(target or _home()), tokens)


def _caller_from_cookies() -> Caller | None:
    """The signed-in caller, else whoever the refresh cookie names (an idle user whose
    access cookie expired), else None."""
    try:
        return authenticate(PAGES)
    except NOT_SIGNED_IN:
        pass
    saved = _refresh_cookie_session()
    return Caller(saved[0], saved[1], None, False, None) if saved else None


@bp.post("/identity/sign-out")
def sign_out_page() -> Any:
    """End this browser's session and forget its tokens."""
    caller = _caller_from_cookies()
    if caller is not None:
        flows.sign_out(caller)
    flash(gettext("You are signed out."))
    return _signed_out(_see_other(url_for("identity.sign_in_page")))


# --- my sessions and password ------------------------------------------------------------

@dataclass(frozen=True)
class SessionView:
    """One of my live sessions as the page lists it."""

    id: uuid.UUID
    tenant: str | None
    method: str
    device: str
    ip: str
    last_used: str
    current: bool


def _sessions_page(form: PasswordForm) -> str:
    caller: Caller = g.caller
    db = management_db()
    rows = sessions.live_sessions(db, caller.user_id)
    slugs = tenancy_queries.slugs_of(db, [r.tenant_id for r in rows if r.tenant_id])
    views = [SessionView(r.id, slugs.get(r.tenant_id) if r.tenant_id else None, r.method,
                         r.user_agent or gettext("unknown device"), r.ip or gettext("unknown"),
                         r.last_used_at.strftime("%Y-%m-%d %H:%M UTC"), r.id == caller.session_id)
             for r in rows]
    user = identity.users_by_id(db, [caller.user_id]).get(caller.user_id)
    return render_template("identity/sessions.html", sessions=views, form=form, user=user,
                           unverified=user is not None and not identity.email_verified(db, user.id))


@bp.get("/identity/sessions")
@page_requires(None, tenant=False)
def sessions_page() -> Any:
    """My live sessions, with sign-out buttons and the change-password form."""
    return _sessions_page(PasswordForm(formdata=None))


@bp.post("/identity/sessions/<uuid:session_id>/revoke")
@page_requires(None, tenant=False)
def revoke_session_page(session_id: uuid.UUID) -> Any:
    """Sign out one of my sessions (this one sends me to the sign-in page)."""
    if not flows.sign_out_one(g.caller, session_id):
        raise NotFound("no such session", field="session_id")
    if session_id == g.caller.session_id:
        flash(gettext("You are signed out."))
        return _signed_out(_see_other(url_for("identity.sign_in_page")))
    flash(gettext("That session is signed out."))
    return _see_other(_home())


@bp.post("/identity/sessions/revoke-all")
@page_requires(None, tenant=False)
def revoke_all_sessions_page() -> Any:
    """Sign out every session of mine, this one included."""
    count = flows.sign_out_everywhere(g.caller.user_id, "signed out everywhere")
    flash(gettext("Signed out of %(count)s session(s) everywhere.", count=count))
    return _signed_out(_see_other(url_for("identity.sign_in_page")))


@bp.post("/identity/password")
@page_requires(None, tenant=False)
@limit_password_change
def password_page() -> Any:
    """Change my password: every session ends and this browser gets a new one."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _sessions_page(form), 422
    try:
        tokens = flows.change_password(g.caller, form.current_password.data, form.new_password.data)
    except DomainError as exc:
        place_error(form, exc, form.current_password)
        return _sessions_page(form), exc.status
    # In the caller's language: the translator is built from g.caller, which goes next.
    flash(gettext("Your password is changed; every other session is signed out."))
    g.pop("caller", None)  # its session is over: web.auth must not renew its access cookie
    return set_token_cookies(_see_other(_home()), tokens)


@bp.post("/identity/email-verification")
@page_requires(None, tenant=False)
@limit_email_verification
def email_verification_page() -> Any:
    """Email me a new link that verifies my address (the button shows while it is not)."""
    try:
        view = flows.request_email_verification(g.caller)
    except AlreadyVerified:
        flash(gettext("Your email address is verified already."))
        return _see_other(_home())
    flash(gettext("A new link that verifies %(email)s is on its way there.", email=view.email))
    return _see_other(_home())


# --- invitations -------------------------------------------------------------------------

def _invitation_page(form: AcceptInvitationForm, token: str, view: iam.InvitationView,
                     new_account: bool) -> str:
    tenant_name = tenancy_queries.name_of(management_db(), view.tenant_id)
    return render_template("identity/invitation.html", form=form, token=token, invitation=view,
                           tenant_name=tenant_name, new_account=new_account)


@bp.route("/identity/invitations/<token>", methods=["GET", "POST"])
@limit_sign_in
def invitation_page(token: str) -> Any:
    """Show a live invitation; accepting it joins the tenant (creating the account if
    needed) and signs in."""
    if not links.well_formed(token):
        raise NotFound("this invitation is unknown, already used or expired", field="token")
    db = management_db()
    view = iam.invitation(db, token)
    new_account = identity.user_by_email(db, view.email) is None
    form = AcceptInvitationForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return _invitation_page(form, token, view, new_account), status
    try:
        signed_in = identity.accept_invitation(db, token, name=form.name.data or "",
                                               password=form.password.data)
    except DomainError as exc:
        if exc.field == "token":
            raise  # used or expired meanwhile: the 404 page
        place_error(form, exc, form.password)
        return _invitation_page(form, token, view, new_account), exc.status
    assert signed_in.tenant_id is not None  # an invitation is always to a tenant
    invalidate_permissions(signed_in.tenant_id)
    flash(gettext("Welcome to %(tenant)s.", tenant=tenancy_queries.name_of(db, signed_in.tenant_id)))
    return set_token_cookies(_see_other(_home()), flows.start(signed_in, "password"))
