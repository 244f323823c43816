"""JSON API of the identity context."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from domain.identity import services as identity
from web.api import SLUG, parse_json
from web.auth import issue_access_token
from web.db import management_db
from web.identity import bp
from web.openapi import doc


class SignInBody(BaseModel):
    """Email and password, and the tenant to act in (slug; optional for operators)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr
    password: str = Field(min_length=1, max_length=128)
    tenant: str | None = Field(default=None, pattern=SLUG, description="the tenant's slug")


class TokenOut(BaseModel):
    """An access token."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme, not a secret


@bp.post("/api/v1/identity/tokens")
@doc("Sign in and get an access token", body=SignInBody, responses={200: TokenOut, 401: "bad credentials"})
def create_token() -> Any:
    """Check the credentials and issue an access token for the chosen tenant."""
    body = parse_json(SignInBody)
    signed_in = identity.sign_in(management_db(), body.email, body.password, body.tenant)
    token = issue_access_token(signed_in.user_id, signed_in.tenant_id, signed_in.operator)
    return jsonify(TokenOut(access_token=token).model_dump())
