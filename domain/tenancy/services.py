"""Use cases of the tenancy context."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.db.provider import Writes
from domain.db.sql import Sql, bound_insert, bound_params, violated_constraint
from domain.errors import NotFound
from domain.iam import services as iam
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


_TENANT_COLUMNS = ("id", "slug", "name", "status", "plan")
_SIGNUP_COLUMNS = ("id", "tenant_id", "admin_name", "admin_email", "sealed_password", "status")
# Built and compiled once, and sent straight to the driver: the signup is the hot path of
# the web tier, and building, compiling and binding a statement through SQLAlchemy per
# request cost more than running it.
_SIGNUP = Sql(select(literal_column("1")).add_cte(
    bound_insert(Tenant.__table__, "tenant", _TENANT_COLUMNS),
    bound_insert(Signup.__table__, "signup", _SIGNUP_COLUMNS),
    outbox.insert_template("message")))


def sign_up_tenant(db: Writes, request: SignupRequest, *, correlation_id: str | None,
                   sealer: identity.PasswordSealer) -> uuid.UUID:
    """Record a trial tenant, its signup and the provisioning command; return the signup id.

    The three rows go in as one statement (data-modifying CTEs): one round trip, and the
    slug and live-email uniqueness are enforced by the database, not by a racy pre-check.
    ``db`` is a management session (the caller's transaction) or a ``StatementWriter``
    (the statement commits as it runs). The password is sealed here and hashed by the
    tenancy worker (argon2 is too costly for the request).
    """
    tenant_id, signup_id = uuid.uuid4(), uuid.uuid4()
    (row,), envelopes = outbox.prepare(
        db, ProvisionTenantV1(signup_id=signup_id, tenant_id=tenant_id),
        tenant_id=tenant_id, correlation_id=correlation_id)
    params = {
        **bound_params("tenant", {"id": tenant_id, "slug": request.slug,
                                  "name": request.organisation_name, "status": "trial",
                                  "plan": "trial"}),
        **bound_params("signup", {"id": signup_id, "tenant_id": tenant_id,
                                  "admin_name": request.admin_name,
                                  "admin_email": identity.normalize_email(request.email),
                                  "sealed_password": sealer.seal(request.password),
                                  "status": "pending"}),
        **outbox.template_params("message", row),
    }
    try:
        db.execute_sql(_SIGNUP, params)
    except IntegrityError as exc:
        conflict = _CONFLICTS.get(violated_constraint(exc) or "")
        if conflict is None:
            raise
        raise conflict() from None
    outbox.remember(db, envelopes)
    return signup_id


def assign_reseller(session: Session, tenant_id: uuid.UUID, reseller_id: uuid.UUID | None) -> None:
    """Record which reseller sold a tenant (platform operators only)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", field="tenant_id")
    if reseller_id is not None and not iam.reseller_exists(session, reseller_id):
        raise NotFound("no such reseller", field="reseller_id")
    tenant.reseller_id = reseller_id
    session.flush()
