"""JSON API of the tenancy context."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import g, jsonify, url_for
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from domain.tenancy import queries, services
from web.api import SLUG, PlainText, accepted, parse_json
from web.db import management_writer, provider, sealer
from web.openapi import doc
from web.ratelimit import limit_sign_up
from web.tenancy import bp


class SignupBody(BaseModel):
    """A trial signup: the organisation and its first admin."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organisation_name: PlainText = Field(min_length=1, max_length=200)
    slug: str = Field(pattern=SLUG, description="3-63 lower-case letters, digits and dashes")
    admin_name: PlainText = Field(min_length=1, max_length=200)
    email: EmailStr
    password: str = Field(min_length=10, max_length=128)


class Accepted(BaseModel):
    """The request is recorded; follow the status URL."""

    id: uuid.UUID
    status_url: str


class StepOut(BaseModel):
    """One step of the signup."""

    name: str
    done: bool
    at: datetime | None


class SignupStatusOut(BaseModel):
    """Where a signup stands."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    slug: str
    status: str
    failure_reason: str | None
    complete: bool
    steps: list[StepOut]


def signup_status_json(status: queries.SignupStatus) -> dict[str, Any]:
    """The API shape of a signup status."""
    return SignupStatusOut(
        id=status.id, tenant_id=status.tenant_id, slug=status.slug, status=status.status,
        failure_reason=status.failure_reason, complete=status.complete,
        steps=[StepOut(name=s.name, done=s.done, at=s.at) for s in status.steps],
    ).model_dump(mode="json")


@bp.post("/api/v1/tenancy/signups")
@limit_sign_up
@doc("Sign up a trial tenant", body=SignupBody, responses={202: Accepted, 409: "slug or email taken"})
def create_signup() -> Any:
    """Record a trial tenant and queue its provisioning; answer 202 with the status URL."""
    body = parse_json(SignupBody)
    # The signup is one statement (atomic on its own): no BEGIN and COMMIT round trips.
    signup_id = services.sign_up_tenant(management_writer(),
                                        services.SignupRequest(**body.model_dump()),
                                        correlation_id=g.request_id, sealer=sealer())
    return accepted(url_for("tenancy.signup_status", signup_id=signup_id), id=str(signup_id))


@bp.get("/api/v1/tenancy/signups/<uuid:signup_id>")
@doc("Follow a signup", responses={200: SignupStatusOut, 404: "no such signup"})
def signup_status(signup_id: uuid.UUID) -> Any:
    """Each step of a signup as it completes."""
    return jsonify(signup_status_json(queries.signup_status(provider(), signup_id)))
