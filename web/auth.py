"""Who is calling, and may they: the platform's JWTs, the revocation check, IAM.

Tokens (flask-jwt-extended, HS256 only): an access token carries the user (``sub``),
their session (``sid``) and when that session ends (``sexp``, its ``expires_at`` in whole
seconds), the tenant it was issued for (``tenant``) and whether the user is a platform
operator (``op``); it expires after ``JWT_ACCESS_TOKEN_EXPIRES`` or at the session's end,
whichever comes first, so no access token outlives its session. A refresh token carries
``sub``, ``sid`` and ``tenant`` and its ``jti`` is the session's one usable refresh token
(domain.identity.sessions, which also refuses it once the session has ended).

Every authenticated request decides afresh: is the session revoked, and what may the
user do in the tenant at its current IAM version. Both come from the process's mirror
of the access state (domain.identity.mirror: fed by Redis pub/sub, drained at the start
of the request, no round trip), or, while the mirror is not live, from one MGET of the
revocation store's ready flag, the session's key and the tenant's IAM version. The
permission decision then comes from the in-process cache for that version, or from the
database once. A token string is verified once per process (``VerifiedTokens``; expiry
is checked on every use). Redis unreachable means 503: access is refused, not granted.

The JSON API reads tokens from the Authorization header only; HTML pages read them
from HttpOnly cookies, and every form POST is CSRF-checked (Flask-WTF, web/__init__).
A page request whose access cookie is about to expire gets a new one, never past the
session's end: the session's own lifetime (``JWT_REFRESH_TOKEN_EXPIRES`` at sign-in) bounds
an open tab too. An access token minted before tokens carried ``sexp`` has its session's
end looked up once, at its renewal; the renewed token carries it.
"""
from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Flask, current_app, g, redirect, request, url_for
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    decode_token,
    get_jwt,
    set_access_cookies,
    set_refresh_cookies,
    unset_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from flask_jwt_extended.exceptions import (
    InvalidHeaderError,
    JWTDecodeError,
    JWTExtendedException,
    NoAuthorizationError,
    WrongTokenError,
)
from jwt.exceptions import ExpiredSignatureError, PyJWTError
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from config import logging as log_context
from config.settings import Settings
from domain.bootstrap import build_revocations
from domain.errors import DomainError, Forbidden
from domain.iam.access import OPERATOR, Access, PermissionCache, resolve, version_key
from domain.identity import sessions
from domain.identity.mirror import AccessMirror
from domain.identity.revocation import RevocationStore, RevocationUnavailable
from domain.identity.sessions import SessionGrant
from web.db import management_db
from web.errors import error_response

jwt = JWTManager()
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
API = ["headers"]
PAGES = ["cookies"]
REFRESH_COOKIE_PATH = "/identity/"
# A page request re-issues its access cookie when less than this is left of it.
_RENEW_BEFORE = timedelta(minutes=5)
# The access token's claim: when its session ends (epoch seconds, rounded down).
SESSION_END = "sexp"


class Unauthorized(DomainError):
    """No valid, unrevoked token for this request."""

    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason, field="Authorization")


# What a request without a valid, unrevoked token raises (pages send it to sign in).
NOT_SIGNED_IN = (Unauthorized, JWTExtendedException, PyJWTError)


class AccessUnavailable(DomainError):
    """The revocation store cannot be reached: access is refused, not granted."""

    status = 503

    def __init__(self) -> None:
        super().__init__("cannot check whether this token was revoked; try again shortly",
                         field="Authorization")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of this request."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    tenant_id: uuid.UUID | None
    operator: bool
    access: Access | None  # what the caller may do in ``tenant_id`` (None without a tenant)

    def may(self, permission: str) -> bool:
        """The IAM decision for this caller in its tenant."""
        if permission == OPERATOR:
            return self.operator
        return self.access is not None and self.access.may(permission)


@dataclass(frozen=True)
class TokenPair:
    """What a sign-in or refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int


def init_app(app: Flask, settings: Settings) -> None:
    """Configure tokens and cookies, the revocation store, the permission cache."""
    app.config.update(
        JWT_SECRET_KEY=settings.secret_key,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.jwt_access_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=settings.jwt_refresh_days),
        JWT_TOKEN_LOCATION=["headers", "cookies"],
        JWT_COOKIE_SECURE=settings.cookie_secure,
        JWT_COOKIE_SAMESITE="Lax",
        JWT_SESSION_COOKIE=False,
        JWT_REFRESH_COOKIE_PATH=REFRESH_COOKIE_PATH,
        # Pages are CSRF-checked by Flask-WTF on every POST; the API ignores cookies.
        JWT_COOKIE_CSRF_PROTECT=False,
    )
    jwt.init_app(app)
    provider = app.extensions["allotment.provider"]
    revocations = build_revocations(settings, provider)
    app.extensions["allotment.revocations"] = revocations
    app.extensions["allotment.permissions"] = PermissionCache(revocations.redis,
                                                              settings.permission_cache_size)
    app.extensions["allotment.access_mirror"] = (AccessMirror(revocations) if settings.access_mirror
                                                 else None)
    app.extensions["allotment.verified_tokens"] = VerifiedTokens()

    def unauthorized(reason: str) -> Any:
        return error_response(401, "unauthorized", reason, "Authorization")

    jwt.unauthorized_loader(unauthorized)
    jwt.invalid_token_loader(unauthorized)
    jwt.expired_token_loader(lambda header, payload: unauthorized("token has expired"))

    @app.after_request
    def _renew_page_cookie(response: Response) -> Response:
        # An active page user keeps a fresh access cookie without touching the session (the
        # refresh token, rotating and single use, is only spent by an explicit refresh), but
        # never past the session's end: then the next page sends them to sign in.
        caller: Caller | None = g.get("caller")
        if caller is None or g.get("caller_via") != "cookies" or response.status_code >= 400:
            return response
        now, expires = time.time(), g.caller_expires
        if expires - now >= _RENEW_BEFORE.total_seconds():
            return response
        ends = g.caller_session_ends
        if ends is None:  # a token minted before tokens carried their session's end
            ends = _session_end(caller.session_id)
        if ends <= now:  # the session is over (a token with ``sexp`` expires with it): drop it
            unset_access_cookies(response)
            return response
        token, renewed = _access_token(caller.user_id, caller.session_id, caller.tenant_id,
                                       caller.operator, ends)
        if renewed > expires:  # nothing to gain once the cookie already ends with the session
            set_access_cookies(response, token)
        return response


def revocations() -> RevocationStore:
    """This process's revocation store."""
    return current_app.extensions["allotment.revocations"]  # type: ignore[no-any-return]


def permission_cache() -> PermissionCache:
    """This process's permission cache."""
    return current_app.extensions["allotment.permissions"]  # type: ignore[no-any-return]


def _access_token(user_id: uuid.UUID, session_id: uuid.UUID, tenant_id: uuid.UUID | None,
                  operator: bool, session_ends: float) -> tuple[str, int]:
    """Every access token is minted here: (the token, its ``exp``). It expires after the
    access lifetime or when its session ends (``session_ends``, epoch seconds), whichever
    is first, and carries that end (``sexp``) for its renewals."""
    ends = math.floor(session_ends)
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    expires = min(int(time.time() + lifetime.total_seconds()), ends)
    token = create_access_token(identity=str(user_id), additional_claims={
        "sid": str(session_id), "tenant": str(tenant_id) if tenant_id else None, "op": operator,
        SESSION_END: ends, "exp": expires})
    return token, expires


def _session_end(session_id: uuid.UUID) -> float:
    """When a session ends, from the database (0 if it was signed out or never existed);
    on a session of its own: the request's unit of work may be committed by now."""
    with current_app.extensions["allotment.provider"].management() as db:
        ends = sessions.session_end(db, session_id)
    return ends.timestamp() if ends else 0.0


def issue_tokens(grant: SessionGrant) -> TokenPair:
    """An access and a refresh token for a session just started or rotated."""
    refresh = create_refresh_token(identity=str(grant.user_id), additional_claims={
        "sid": str(grant.session_id), "jti": grant.refresh_jti,
        "tenant": str(grant.tenant_id) if grant.tenant_id else None})
    access, expires = _access_token(grant.user_id, grant.session_id, grant.tenant_id, grant.operator,
                                    grant.expires_at.timestamp())
    return TokenPair(access, refresh, max(expires - int(time.time()), 0))


def set_token_cookies(response: Response, tokens: TokenPair) -> Response:
    """Put both tokens in HttpOnly cookies (the refresh cookie only reaches /identity/)."""
    set_access_cookies(response, tokens.access_token)
    set_refresh_cookies(response, tokens.refresh_token)
    return response


def clear_token_cookies(response: Response) -> Response:
    """Remove the token cookies."""
    unset_jwt_cookies(response)
    return response


def _uuid(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Unauthorized("token claims are malformed") from None


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _presented_token(location: str) -> str:
    """The access token of this request, from the Authorization header or the cookie."""
    if location == "cookies":
        token = request.cookies.get(current_app.config["JWT_ACCESS_COOKIE_NAME"])
        if not token:
            raise NoAuthorizationError('Missing cookie "access_token_cookie"')
        return token
    header = request.headers.get("Authorization")
    if not header:
        raise NoAuthorizationError("Missing Authorization Header")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token or " " in token:
        raise InvalidHeaderError("Bad Authorization header. Expected 'Authorization: Bearer <JWT>'")
    return token


@dataclass(frozen=True)
class TokenIdentity:
    """What a verified access token says: who, which session, which tenant, until when,
    and when its session ends (None in a token minted before tokens said so)."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    tenant_id: uuid.UUID | None
    operator: bool
    expires: float
    session_ends: float | None


def _identity(claims: dict[str, Any]) -> TokenIdentity:
    if claims.get("sid") is None or claims.get("sub") is None:
        raise Unauthorized("token claims are malformed")
    ends = claims.get(SESSION_END)
    if ends is not None and type(ends) is not int:
        raise Unauthorized("token claims are malformed")
    return TokenIdentity(_uuid(claims["sub"]), _uuid(claims["sid"]),
                         _uuid(claims["tenant"]) if claims.get("tenant") else None,
                         bool(claims.get("op")), claims["exp"], ends)


class VerifiedTokens:
    """Access tokens this process has verified, by token string, with their claims parsed.

    The same token string with the same key always verifies the same way, so each token
    is decoded and parsed once (signature, ``nbf``, type, claims); ``exp`` is checked on
    every use. Revocation and permissions are still decided on every request.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._verified: dict[str, TokenIdentity] = {}

    def identity(self, token: str) -> TokenIdentity:
        """What ``token`` says; the errors flask-jwt-extended raises (or ``Unauthorized``
        for malformed claims) if it is bad."""
        found = self._verified.get(token)
        if found is None:
            claims = decode_token(token)
            if claims.get("type") != "access":
                raise WrongTokenError("Only non-refresh tokens are allowed")
            if type(claims.get("exp")) not in (int, float):  # ours always expire
                raise JWTDecodeError("Missing or malformed claim: exp")
            found = _identity(claims)
            if len(self._verified) >= self.size:
                self._verified.clear()
            self._verified[token] = found
        elif found.expires <= time.time():
            self._verified.pop(token, None)
            raise ExpiredSignatureError("Signature has expired")
        return found


def _access_state(session_id: uuid.UUID, tenant_id: uuid.UUID | None) -> tuple[bool, str | None]:
    """(revoked, IAM version of the tenant): from the process's mirror when it is live,
    else from Redis in one round trip (rebuilding an emptied store first)."""
    mirror: AccessMirror | None = current_app.extensions["allotment.access_mirror"]
    try:
        state = mirror.check(str(session_id), str(tenant_id) if tenant_id else None) if mirror else None
        if state is not None:
            revoked, version, generation = state
            if tenant_id and version is None:
                version = permission_cache().current_version(tenant_id)
                mirror.remember_version(str(tenant_id), version, generation)  # type: ignore[union-attr]
            return revoked, version
        revoked, extra = revocations().read(session_id, [version_key(tenant_id)] if tenant_id else [])
    except (RedisError, RevocationUnavailable):
        raise AccessUnavailable() from None
    return revoked, _text(extra[0]) if tenant_id else None


def authenticate(locations: list[str]) -> Caller:
    """Verify the access token, refuse it if revoked, resolve what the caller may do."""
    tokens: VerifiedTokens = current_app.extensions["allotment.verified_tokens"]
    token = tokens.identity(_presented_token(locations[0]))
    tenant_id = token.tenant_id
    revoked, version = _access_state(token.session_id, tenant_id)
    if revoked:
        raise Unauthorized("token has been revoked")
    access = None
    if tenant_id is not None:
        access = _access(token.user_id, tenant_id, version)
        if not access.member:
            raise Unauthorized("you are no longer a member of this tenant")
    caller = Caller(token.user_id, token.session_id, tenant_id, token.operator, access)
    g.caller, g.caller_via, g.caller_expires = caller, locations[0], token.expires
    g.caller_session_ends = token.session_ends
    g.user_id, g.tenant_id = token.user_id, tenant_id
    log_context.tenant_id.set(str(tenant_id) if tenant_id else None)
    return caller


def _access(user_id: uuid.UUID, tenant_id: uuid.UUID, version: str | None) -> Access:
    cache = permission_cache()
    if version is None:
        try:
            version = cache.current_version(tenant_id)
        except RedisError:
            raise AccessUnavailable() from None
    access = cache.get(user_id, tenant_id, version)
    if access is None:
        access = resolve(management_db(), user_id, tenant_id)
        cache.put(access, version)
    return access


def invalidate_permissions(tenant_id: uuid.UUID) -> None:
    """After this request commits, drop every cached decision for the tenant."""
    g.setdefault("after_commit", []).append(lambda: permission_cache().invalidate(tenant_id))


def revoke_sessions(session_ids: list[uuid.UUID]) -> None:
    """Refuse every token of these sessions from the next request on, in every process.

    Called before the request commits the sessions' revocation in the database: if Redis
    cannot be reached the request fails (503) and nothing is half done.
    """
    try:
        revocations().revoke(session_ids)
    except RevocationUnavailable:
        raise AccessUnavailable() from None


def _guard(permission: str | None, locations: list[str], *, tenant: bool) -> Caller:
    caller = authenticate(locations)
    if tenant and caller.tenant_id is None:
        raise NoTenant()
    if permission is not None and not caller.may(permission):
        raise Forbidden(f"requires {permission}")
    return caller


class NoTenant(Forbidden):
    """A tenant operation with a token issued for no tenant."""

    def __init__(self) -> None:
        super().__init__("this token is not issued for a tenant; sign in to one", field="tenant")


def requires(permission: str | None, *, tenant: bool = True) -> Decorator:
    """API views: refuse unless the bearer token grants ``permission`` in its tenant.

    ``permission=None`` only requires a valid token (and, with ``tenant``, a tenant).
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _guard(permission, API, tenant=tenant)
            return view(*args, **kwargs)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        guarded.auth = "bearer"  # type: ignore[attr-defined]
        return guarded

    return decorate


def operator_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """API views: refuse unless the caller is a platform operator."""
    return requires(OPERATOR, tenant=False)(view)


def page_requires(permission: str | None, *, tenant: bool = True) -> Decorator:
    """HTML pages: like ``requires`` but from cookies; a visitor who is not signed in (or
    whose token expired or was revoked) is sent to the sign-in page."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                _guard(permission, PAGES, tenant=tenant)
            except NOT_SIGNED_IN:
                target = request.full_path if request.method == "GET" else request.path
                response = redirect(url_for("identity.sign_in_page", next=target.rstrip("?")))
                # Only the access cookie: the refresh cookie lets the sign-in page offer
                # "Continue as ..." (a POST that rotates it) to an idle user.
                if request.cookies:
                    unset_access_cookies(response)
                return response
            return view(*args, **kwargs)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        guarded.auth = "cookie"  # type: ignore[attr-defined]
        return guarded

    return decorate


def refresh_claims(locations: list[str]) -> dict[str, Any]:
    """The verified claims of the refresh token presented (signature, expiry, type)."""
    verify_jwt_in_request(refresh=True, locations=locations)
    return get_jwt()


def peek_refresh_cookie() -> dict[str, Any] | None:
    """The claims of a valid refresh cookie, if the browser has one (no state change)."""
    token = request.cookies.get(current_app.config["JWT_REFRESH_COOKIE_NAME"])
    if not token:
        return None
    try:
        claims = decode_token(token)
    except (JWTExtendedException, PyJWTError):
        return None
    return claims if claims.get("type") == "refresh" else None
