"""Use cases of the tenancy context."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.identity import services as identity
from domain.identity.errors import EmailTaken
from domain.messaging import outbox
from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.tenancy.errors import SlugTaken
from domain.tenancy.models import Signup, Tenant


@dataclass(frozen=True)
class SignupRequest:
    """A validated trial signup."""

    organisation_name: str
    slug: str
    admin_name: str
    email: str
    password: str


def sign_up_tenant(session: Session, request: SignupRequest, correlation_id: str | None) -> Signup:
    """Record a trial tenant and its signup, and queue its provisioning (one transaction)."""
    if session.scalar(select(func.count()).select_from(Tenant).where(Tenant.slug == request.slug)):
        raise SlugTaken()
    email = identity.normalize_email(request.email)
    if identity.email_taken(session, email) or session.scalar(
            select(func.count()).select_from(Signup).where(
                Signup.admin_email == email, Signup.status == "pending")):
        raise EmailTaken()
    tenant = Tenant(id=uuid.uuid4(), slug=request.slug, name=request.organisation_name,
                    status="trial", plan="trial")
    signup = Signup(id=uuid.uuid4(), tenant_id=tenant.id, admin_name=request.admin_name,
                    admin_email=email, password_hash=identity.hash_password(request.password),
                    status="pending")
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent signup took the slug since the check
        if "uq_tenants_slug" in str(exc.orig):
            raise SlugTaken() from None
        raise
    session.add(signup)
    session.flush()
    outbox.record(session, ProvisionTenantV1(signup_id=signup.id, tenant_id=tenant.id),
                  tenant_id=tenant.id, correlation_id=correlation_id)
    return signup
