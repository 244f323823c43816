"""Sign-in through the external OpenID Connect provider (OIDC_ISSUER, Auth0-compatible).

Either way the provider only vouches for who the user is: its ID token is verified by
``domain.identity.oidc.IdTokenVerifier`` (signature against the issuer's JWKS, issuer,
audience, lifetime, nonce), the external identity is linked to an account, and the
platform opens its own session and issues its own tokens (method ``oidc``).

An identity is linked by (issuer, subject), or on its first use by email: to the account
with the provider's verified email only if that account's own address is verified too
(``identity.link_external_identity``); otherwise 409 naming ``email``, nothing written.

- API: ``POST /api/v1/identity/oidc/tokens`` with ``{id_token, nonce, tenant?}``, for
  clients (mobile, SPA) that ran the provider's flow themselves; answers the same tokens
  as a password sign-in.
- Browser: ``GET /identity/oidc/login?next=/path`` redirects to the provider
  (authorization code flow with PKCE S256, state and nonce, through Authlib's Flask
  client; the state, verifier and nonce wait in the signed session cookie);
  ``GET /identity/oidc/callback`` exchanges the code, verifies the ID token, sets the
  token cookies and sends the browser on to ``next`` (a local path only). A member of
  several tenants is asked to start again with ``?tenant=<slug>``.

Unconfigured (no OIDC_ISSUER), every endpoint here answers 404.
"""
from __future__ import annotations

import re
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, redirect, request, url_for
from flask import session as browser_session
from flask.blueprints import BlueprintSetupState
from pydantic import BaseModel, ConfigDict, Field

from config.settings import Settings
from domain.identity import services as identity
from domain.identity.errors import ChooseTenant
from domain.identity.oidc import MAX_TOKEN_LENGTH, ExternalClaims, IdTokenVerifier
from domain.identity.services import SignIn
from web.api import SLUG, PlainText, parse_json
from web.auth import set_token_cookies
from web.db import management_db
from web.errors import ApiError
from web.identity import bp, flows
from web.identity.api import TokensOut, tokens_response
from web.openapi import doc
from web.ratelimit import limit_sign_in

VERIFIER = "allotment.oidc"
CLIENT = "allotment.oidc_client"
SCOPE = "openid email profile"


def init_app(app: Flask, settings: Settings) -> None:
    """With a provider configured: the ID-token verifier and the Authlib client of ``app``.

    Nothing is fetched here: the provider's metadata and keys are loaded on first use.
    """
    if not settings.oidc_enabled:
        return
    verifier = IdTokenVerifier(settings.oidc_issuer, settings.oidc_client_id,
                               cache_seconds=settings.oidc_jwks_cache_seconds)
    oauth = OAuth(app)
    client = oauth.register(
        "oidc", client_id=settings.oidc_client_id, client_secret=settings.oidc_client_secret or None,
        server_metadata_url=verifier.discovery_url,
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "default_timeout": 10})
    app.extensions[VERIFIER] = verifier
    app.extensions[CLIENT] = client


def _on_register(state: BlueprintSetupState) -> None:
    init_app(state.app, state.app.extensions["allotment.settings"])


# Set up once per app, when create_app registers the identity blueprint.
bp.record_once(_on_register)


class OidcTokenBody(BaseModel):
    """An ID token the provider issued to this application, and the nonce the client sent
    in its authorization request; the tenant to act in (needed only by a member of
    several)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    nonce: PlainText | None = Field(default=None, max_length=512,
                                    description="required: a token without a matching nonce is refused")
    tenant: str | None = Field(default=None, pattern=SLUG, description="the tenant's slug")


def _not_configured(field: str | None) -> ApiError:
    return ApiError(404, "not_found", "OpenID Connect sign-in is not configured", field)


def verifier(field: str | None = "id_token") -> IdTokenVerifier:
    """This app's ID-token verifier; 404 when no provider is configured."""
    found: IdTokenVerifier | None = current_app.extensions.get(VERIFIER)
    if found is None:
        raise _not_configured(field)
    return found


def _client() -> Any:
    found = current_app.extensions.get(CLIENT)
    if found is None:
        raise _not_configured(None)
    return found


def _sign_in(claims: ExternalClaims, tenant_slug: str | None) -> SignIn:
    """The account the verified claims belong to (linked on first use) and its tenant."""
    return identity.sign_in_external(management_db(), claims, tenant_slug)


@bp.post("/api/v1/identity/oidc/tokens")
@limit_sign_in
@doc("Sign in with an ID token of the configured OpenID Connect provider", body=OidcTokenBody,
     responses={200: TokensOut, 401: "ID token refused (signature, issuer, audience, expiry, nonce) "
                "or no verified email for a new account",
                403: "the address is a platform operator's, whose account signs in with its password",
                404: "OIDC not configured, or not a member of that tenant",
                409: "an account with this email exists but its address is not verified (it is linked "
                "once verified)", 422: "several tenants: choose one",
                429: "too many attempts", 503: "the provider's keys cannot be fetched"})
def create_oidc_token() -> Any:
    """Verify the provider's ID token, link the account, open a session with our tokens."""
    checker = verifier()
    body = parse_json(OidcTokenBody)
    claims = checker.verify(body.id_token, body.nonce)
    return tokens_response(flows.start(_sign_in(claims, body.tenant), "oidc"))


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else "/" (no open redirect)."""
    return flows.local_path(value) or "/"


def _callback_url() -> str:
    settings: Settings = current_app.extensions["allotment.settings"]
    return settings.public_url.rstrip("/") + url_for("identity.oidc_callback")


def _unreachable() -> ApiError:
    return ApiError(503, "provider_unavailable", "cannot reach the identity provider; try again "
                    "shortly", None)


@bp.get("/identity/oidc/login")
def oidc_login() -> Any:
    """Send the browser to the provider (code flow, PKCE S256, state and nonce)."""
    client = _client()
    tenant = request.args.get("tenant") or None
    if tenant is not None and not re.fullmatch(SLUG, tenant):
        raise ApiError(422, "invalid", "is not a tenant slug", "tenant")
    redirect_uri = _callback_url()
    try:
        started = client.create_authorization_url(redirect_uri)
    except (requests.RequestException, AuthlibBaseError, RuntimeError, ValueError):
        raise _unreachable() from None
    # Kept in the signed session cookie until the callback: state, nonce, PKCE verifier.
    client.save_authorize_data(redirect_uri=redirect_uri, next=safe_next(request.args.get("next")),
                               tenant=tenant, state=started["state"], nonce=started["nonce"],
                               code_verifier=started["code_verifier"])
    response = redirect(started["url"], 302)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/identity/oidc/callback")
def oidc_callback() -> Any:
    """Back from the provider: exchange the code, verify the ID token, sign in."""
    client = _client()
    state = request.args.get("state", "")
    started = client.framework.get_state_data(browser_session, state) if state else None
    if not started:
        raise ApiError(400, "state_mismatch", "this sign-in was not started in this browser or "
                       "has already been used; start again", "state")
    client.framework.clear_state_data(browser_session, state)
    if request.args.get("error"):
        said = request.args.get("error_description") or request.args["error"]
        raise ApiError(401, "provider_refused", f"the identity provider refused: {said[:200]}", None)
    code = request.args.get("code")
    if not code:
        raise ApiError(400, "invalid", "the provider sent no authorization code", "code")
    claims = verifier().verify(_exchange(client, code, started), started.get("nonce"))
    try:
        signed_in = _sign_in(claims, started.get("tenant"))
    except ChooseTenant as choose:
        raise ApiError(422, "choose_tenant", f"{choose.reason}; sign in again from "
                       f"{url_for('identity.oidc_login')}?tenant=<slug>", "tenant") from None
    response = redirect(started.get("next") or "/", 303)
    response.headers["Cache-Control"] = "no-store"
    return set_token_cookies(response, flows.start(signed_in, "oidc"))


def _exchange(client: Any, code: str, started: dict[str, Any]) -> str:
    """The ID token the provider returns for ``code`` (sent with the PKCE verifier)."""
    try:
        token = client.fetch_access_token(redirect_uri=started.get("redirect_uri"), code=code,
                                          code_verifier=started.get("code_verifier"))
    except AuthlibBaseError as exc:
        raise ApiError(401, "provider_refused", "the identity provider refused the code: "
                       f"{(exc.description or exc.error or 'no reason')[:200]}", "code") from None
    except (requests.RequestException, ValueError):
        raise _unreachable() from None
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        raise ApiError(401, "provider_refused", "the identity provider returned no ID token",
                       "id_token")
    return id_token
