"""JSON API of the identity context: sign-in, refresh, sessions, password, invitations."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import g, jsonify
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from domain.identity import services as identity
from domain.identity import sessions
from domain.tenancy import queries as tenancy_queries
from web.api import SLUG, LinkToken, PlainText, accepted, parse_json
from web.auth import API, TokenPair, invalidate_permissions, refresh_claims, requires
from web.db import management_db
from web.errors import ApiError
from web.identity import bp, flows
from web.openapi import doc
from web.ratelimit import (
    limit_email_verification,
    limit_password_change,
    limit_password_reset,
    limit_sign_in,
)


class SignInBody(BaseModel):
    """Email and password, and the tenant to act in (its slug; needed only by a member of
    several tenants)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr
    password: str = Field(min_length=1, max_length=128)
    tenant: str | None = Field(default=None, pattern=SLUG, description="the tenant's slug")


class TokensOut(BaseModel):
    """The platform's tokens: a short access token and a single-use refresh token."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme, not a secret
    expires_in: int


class PasswordBody(BaseModel):
    """The current password and the new one."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=8, max_length=128)


class SwitchBody(BaseModel):
    """The tenant to act in next."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(pattern=SLUG, description="the tenant's slug")


class AcceptBody(BaseModel):
    """Accept an invitation: a new account's name and password, or an existing account's
    password."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    token: LinkToken
    name: PlainText = Field(default="", max_length=200)
    password: str = Field(min_length=8, max_length=128)


class VerificationOut(BaseModel):
    """A new verification link, on its way to the address (the link itself only in the email)."""

    email: str
    expires_at: datetime


class VerificationStatusOut(BaseModel):
    """My address and whether it is verified."""

    email: str
    verified: bool


class PasswordResetLinkBody(BaseModel):
    """The address of the account whose password was lost."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr


class PasswordResetLinkOut(BaseModel):
    """The same answer whether an account has the address or not."""

    email: str
    detail: str


class PasswordResetBody(BaseModel):
    """The token of an emailed reset link and the new password."""

    model_config = ConfigDict(extra="forbid")

    token: LinkToken
    new_password: str = Field(min_length=8, max_length=128)


class SessionOut(BaseModel):
    """One of my signed-in sessions."""

    id: uuid.UUID
    tenant: str | None
    method: str
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool


class SessionList(BaseModel):
    """My live sessions, most recently used first."""

    items: list[SessionOut]


class SignedOut(BaseModel):
    """How many sessions were ended."""

    revoked: int


def tokens_response(pair: TokenPair) -> Any:
    """The tokens as the API answers them (never cached)."""
    body = TokensOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                     expires_in=pair.expires_in)
    response = jsonify(body.model_dump())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/v1/identity/tokens")
@limit_sign_in
@doc("Sign in with email and password", body=SignInBody,
     responses={200: TokensOut, 401: "bad credentials", 422: "several tenants: choose one",
                429: "too many attempts"})
def create_token() -> Any:
    """Check the credentials and open a session in the chosen tenant."""
    body = parse_json(SignInBody)
    signed_in = identity.sign_in(management_db(), body.email, body.password, body.tenant)
    return tokens_response(flows.start(signed_in, "password"))


@bp.post("/api/v1/identity/tokens/refresh")
@doc("Swap a refresh token for new tokens (each refresh token works once)",
     responses={200: TokensOut, 401: "refresh token invalid, expired, revoked or reused"}, auth=True)
def refresh_token() -> Any:
    """Rotate: the presented refresh token is spent; a reused one revokes its session."""
    return tokens_response(flows.refresh(refresh_claims(API)))


@bp.post("/api/v1/identity/tenant")
@requires(None, tenant=False)
@doc("Switch to another of my tenants (new tokens)", body=SwitchBody,
     responses={200: TokensOut, 404: "not a member of that tenant"}, auth=True)
def switch_tenant() -> Any:
    """Open a session in another tenant the caller belongs to."""
    body = parse_json(SwitchBody)
    return tokens_response(flows.switch_tenant(g.caller, body.tenant))


@bp.get("/api/v1/identity/sessions")
@requires(None, tenant=False)
@doc("List my sessions", responses={200: SessionList}, auth=True)
def list_sessions() -> Any:
    """The caller's live sessions, in every tenant."""
    db = management_db()
    rows = sessions.live_sessions(db, g.caller.user_id)
    slugs = tenancy_queries.slugs_of(db, [r.tenant_id for r in rows if r.tenant_id])
    items = [SessionOut(id=r.id, tenant=slugs.get(r.tenant_id) if r.tenant_id else None,
                        method=r.method, user_agent=r.user_agent, ip=r.ip,
                        created_at=r.created_at, last_used_at=r.last_used_at,
                        current=r.id == g.caller.session_id) for r in rows]
    return jsonify(SessionList(items=items).model_dump(mode="json"))


@bp.delete("/api/v1/identity/sessions/current")
@requires(None, tenant=False)
@doc("Sign out (this session, and the sessions switched from it)", responses={200: SignedOut}, auth=True)
def sign_out() -> Any:
    """End the caller's session: its tokens are refused from the next request on."""
    return jsonify(SignedOut(revoked=flows.sign_out(g.caller)).model_dump())


@bp.delete("/api/v1/identity/sessions")
@requires(None, tenant=False)
@doc("Sign out everywhere", responses={200: SignedOut}, auth=True)
def sign_out_everywhere() -> Any:
    """End every session of the caller, this one included."""
    count = flows.sign_out_everywhere(g.caller.user_id, "signed out everywhere")
    return jsonify(SignedOut(revoked=count).model_dump())


@bp.delete("/api/v1/identity/sessions/<uuid:session_id>")
@requires(None, tenant=False)
@doc("Sign out one of my sessions (and the sessions switched from it)",
     responses={200: SignedOut, 404: "not my session"}, auth=True)
def sign_out_session(session_id: uuid.UUID) -> Any:
    """End one of the caller's sessions (another device, say)."""
    revoked = flows.sign_out_one(g.caller, session_id)
    if not revoked:
        raise ApiError(404, "not_found", "no such session", "session_id")
    return jsonify(SignedOut(revoked=revoked).model_dump())


@bp.post("/api/v1/identity/password")
@requires(None, tenant=False)
@limit_password_change
@doc("Change my password (signs out every session; returns new tokens)", body=PasswordBody,
     responses={200: TokensOut, 422: "current password wrong"}, auth=True)
def change_password() -> Any:
    """Check the current password, set the new one, cut off every existing token."""
    body = parse_json(PasswordBody)
    return tokens_response(flows.change_password(g.caller, body.current_password, body.new_password))


@bp.post("/api/v1/identity/email-verification")
@requires(None, tenant=False)
@limit_email_verification
@doc("Email me a new link that verifies my address",
     responses={202: VerificationOut, 409: "the address is verified already", 429: "too many links"},
     auth=True)
def request_email_verification() -> Any:
    """Record a new verification link for the caller's address; the notifications worker
    emails it there. Older links stay valid until used or expired."""
    view = flows.request_email_verification(g.caller)
    out = VerificationOut(email=view.email, expires_at=view.expires_at)
    return accepted("/api/v1/identity/email-verification", **out.model_dump(mode="json"))


@bp.get("/api/v1/identity/email-verification")
@requires(None, tenant=False)
@doc("My address and whether it is verified", responses={200: VerificationStatusOut}, auth=True)
def email_verification_status() -> Any:
    """The caller's address, and whether a link (or an invitation, or the provider) proved it."""
    db = management_db()
    user = identity.users_by_id(db, [g.caller.user_id])[g.caller.user_id]
    out = VerificationStatusOut(email=user.email, verified=identity.email_verified(db, user.id))
    return jsonify(out.model_dump())


@bp.post("/api/v1/identity/password-reset-links")
@limit_password_reset
@doc("Email a link that sets a new password to the account with this address, if any",
     body=PasswordResetLinkBody, responses={202: PasswordResetLinkOut, 429: "too many links"})
def request_password_reset() -> Any:
    """Record a reset link for the address's active account and queue its email; the answer
    is the same when no account has the address, so it tells nobody which addresses have one."""
    body = parse_json(PasswordResetLinkBody)
    flows.request_password_reset(body.email)
    out = PasswordResetLinkOut(email=body.email, detail="if an account has this address, a link that "
                               "sets a new password is on its way to it")
    return jsonify(out.model_dump()), 202


@bp.post("/api/v1/identity/password-resets")
@doc("Set a new password with an emailed reset link (signs out every session of the account)",
     body=PasswordResetBody,
     responses={204: "the password is set", 404: "the link is unknown, used or expired"})
def reset_password() -> Any:
    """Use a reset link once: the account's password is replaced and every token of the
    account is cut off; sign in with the new password."""
    body = parse_json(PasswordResetBody)
    flows.reset_password(body.token, body.new_password)
    return "", 204


@bp.post("/api/v1/identity/invitations/accept")
@limit_sign_in
@doc("Accept an invitation (creates the account if needed)", body=AcceptBody,
     responses={200: TokensOut, 403: "whoever invited may no longer grant the role",
                404: "unknown, used or expired invitation",
                409: "the account is deactivated in the tenant (an invitation does not undo it)"})
def accept_invitation() -> Any:
    """Join the inviting tenant and get tokens for it."""
    body = parse_json(AcceptBody)
    signed_in = identity.accept_invitation(management_db(), body.token, name=body.name,
                                           password=body.password)
    invalidate_permissions(signed_in.tenant_id)
    return tokens_response(flows.start(signed_in, "password"))
