"""Use cases of the tenancy context."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.identity import services as identity
from domain.identity.errors import EmailTaken
from domain.messaging import outbox
from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.tenancy.errors import SlugTaken
from domain.tenancy.models import Signup, Tenant

# Unique constraints a signup can hit, and the refusal each one means.
_CONFLICTS = {"uq_tenants_slug": SlugTaken, "uq_signups_live_email": EmailTaken}


@dataclass(frozen=True)
class SignupRequest:
    """A validated trial signup."""

    organisation_name: str
    slug: str
    admin_name: str
    email: str
    password: str


def sign_up_tenant(session: Session, request: SignupRequest, *, correlation_id: str | None,
                   sealer: identity.PasswordSealer) -> uuid.UUID:
    """Record a trial tenant, its signup and the provisioning command; return the signup id.

    The three rows go in as one statement (data-modifying CTEs): one round trip, and the
    slug and live-email uniqueness are enforced by the database, not by a racy pre-check.
    The password is sealed here and hashed by the tenancy worker (argon2 is too costly
    for the request).
    """
    tenant_id, signup_id = uuid.uuid4(), uuid.uuid4()
    tenant = insert(Tenant.__table__).values(
        id=tenant_id, slug=request.slug, name=request.organisation_name, status="trial", plan="trial")
    signup = insert(Signup.__table__).values(
        id=signup_id, tenant_id=tenant_id, admin_name=request.admin_name,
        admin_email=identity.normalize_email(request.email),
        sealed_password=sealer.seal(request.password), status="pending")
    rows, envelopes = outbox.prepare(session, ProvisionTenantV1(signup_id=signup_id, tenant_id=tenant_id),
                                     tenant_id=tenant_id, correlation_id=correlation_id)
    statement = select(literal(1)).add_cte(
        tenant.cte("new_tenant"), signup.cte("new_signup"), *outbox.insert_ctes(rows))
    try:
        session.execute(statement)
    except IntegrityError as exc:
        conflict = _CONFLICTS.get(getattr(exc.orig.diag, "constraint_name", None) or "")
        if conflict is None:
            raise
        raise conflict() from None
    outbox.remember(session, envelopes)
    return signup_id
