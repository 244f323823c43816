"""Message handlers of the tenancy context."""
from __future__ import annotations

from domain.db.base import utcnow
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity.errors import EmailTaken
from domain.messaging.contracts.tenancy import ProvisionTenantV1, TenantProvisionedV1
from domain.messaging.handling import HandlerContext
from domain.tenancy.models import Signup, Tenant


def provision_tenant(ctx: HandlerContext, msg: ProvisionTenantV1) -> None:
    """Create a new tenant's default roles and first admin, then announce it."""
    session = ctx.session
    signup = session.get(Signup, msg.signup_id, with_for_update=True)
    tenant = session.get(Tenant, msg.tenant_id)
    if signup is None or tenant is None or signup.status != "pending":
        return
    sealer: identity.PasswordSealer = ctx.ports["sealer"]
    password = sealer.unseal(signup.sealed_password) if signup.sealed_password else None
    signup.sealed_password = None  # never kept past this transaction
    if password is None:
        signup.status, signup.failure_reason = "failed", "the signup expired; please sign up again"
        return
    iam.create_default_roles(session, tenant.id)
    try:
        with session.begin_nested():
            user = identity.create_user(session, email=signup.admin_email, name=signup.admin_name,
                                        password_hash=identity.hash_password(password))
    except EmailTaken as exc:
        signup.status, signup.failure_reason = "failed", f"email {exc.reason}"
        return
    iam.grant_role(session, user.id, tenant.id, "owner")
    signup.status, signup.provisioned_at = "provisioned", utcnow()
    ctx.emit(TenantProvisionedV1(tenant_id=tenant.id, tenant_name=tenant.name,
                                 admin_user_id=user.id, admin_name=user.name,
                                 admin_email=user.email), tenant_id=tenant.id)
