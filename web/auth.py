"""Who is calling: the platform's JWTs (flask-jwt-extended) and permission checks via IAM.

A token carries the user (``sub``), the tenant it was issued for (``tenant``) and whether
the user is a platform operator (``op``). ``requires(permission)`` resolves the tenant and
asks IAM; ``operator_required`` guards cross-tenant operations.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Flask, g
from flask_jwt_extended import JWTManager, create_access_token, get_jwt, verify_jwt_in_request

from config import logging as log_context
from config.settings import Settings
from domain.iam import services as iam
from web.db import management_db
from web.errors import error_response

jwt = JWTManager()


def init_app(app: Flask, settings: Settings) -> None:
    """Configure token signing, lifetimes and the 401 shape."""
    app.config.update(
        JWT_SECRET_KEY=settings.secret_key,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.jwt_access_minutes),
        JWT_TOKEN_LOCATION=["headers"],
    )
    jwt.init_app(app)

    def unauthorized(reason: str) -> Any:
        return error_response(401, "unauthorized", reason, "Authorization")

    jwt.unauthorized_loader(unauthorized)
    jwt.invalid_token_loader(unauthorized)
    jwt.expired_token_loader(lambda header, payload: unauthorized("token has expired"))


def issue_access_token(user_id: uuid.UUID, tenant_id: uuid.UUID | None, operator: bool) -> str:
    """A short-lived access token for ``user_id`` acting in ``tenant_id``."""
    claims = {"tenant": str(tenant_id) if tenant_id else None, "op": operator}
    return create_access_token(identity=str(user_id), additional_claims=claims)


def requires(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Refuse the view unless the caller's token grants ``permission`` in its tenant."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            claims = get_jwt()
            if not claims.get("tenant"):
                return error_response(403, "forbidden", "token is not issued for a tenant", "tenant")
            try:
                user_id, tenant_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["tenant"])
            except (ValueError, TypeError, AttributeError):
                return error_response(401, "unauthorized", "token claims are malformed", "Authorization")
            if permission not in iam.permissions_of(management_db(), user_id, tenant_id):
                return error_response(403, "forbidden", f"requires {permission}", None)
            g.user_id, g.tenant_id = user_id, tenant_id
            log_context.tenant_id.set(str(tenant_id))
            return view(*args, **kwargs)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        return guarded

    return decorate


def operator_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse the view unless the caller is a platform operator."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        verify_jwt_in_request()
        if not get_jwt().get("op"):
            return error_response(403, "forbidden", "platform operators only", None)
        try:
            g.user_id = uuid.UUID(get_jwt()["sub"])
        except (ValueError, TypeError, AttributeError):
            return error_response(401, "unauthorized", "token claims are malformed", "Authorization")
        return view(*args, **kwargs)

    guarded.required_permission = "platform:operator"  # type: ignore[attr-defined]
    return guarded
