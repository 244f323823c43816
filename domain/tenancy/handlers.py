"""Message handlers of the tenancy context."""
from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity.errors import EmailTaken
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import ProvisionTenantV1, TenantProvisionedV2
from domain.messaging.handling import HandlerContext
from domain.purchases import queries as purchases
from domain.tenancy import promotion, queries
from domain.tenancy.models import PlanChange, Signup, Tenant

TRIAL_PLAN = "trial"


def provision_tenant(ctx: HandlerContext, msg: ProvisionTenantV1) -> None:
    """Create a new tenant's default roles and first admin, then announce it.

    The admin's address is not verified: anyone can sign up under any address. The
    announcement carries, sealed, a link that verifies it (the welcome email's).
    """
    session = ctx.session
    signup = session.get(Signup, msg.signup_id, with_for_update=True)
    tenant = session.get(Tenant, msg.tenant_id)
    if signup is None or tenant is None or signup.tenant_id != tenant.id or signup.status != "pending":
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
    verification, token = identity.start_email_verification(
        session, user.id, ctx.ports["email_verification_lifetime"])
    signup.status, signup.provisioned_at = "provisioned", utcnow()
    ctx.emit(TenantProvisionedV2(tenant_id=tenant.id, tenant_name=tenant.name,
                                 admin_user_id=user.id, admin_name=user.name,
                                 admin_email=user.email, sealed_verification_token=sealer.seal(token),
                                 verification_expires_at=verification.expires_at), tenant_id=tenant.id)


def apply_plan(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Give the tenant what it bought; a paid plan promotes a trial tenant.

    Under the tenant's lock, as ``revert_plan``: a purchase refunded first has its change
    recorded already (reverted), and is given nothing.
    """
    session = ctx.session
    tenant = session.get(Tenant, msg.tenant_id, with_for_update=True)
    if tenant is None or tenant.status == "deleted":
        return
    # Another tenant's purchase gives this one nothing (and must not spend that purchase's
    # plan change, which is unique by purchase).
    if not purchases.is_purchase_of(session, tenant.id, msg.purchase_id):
        return
    if session.scalar(select(PlanChange.id).where(PlanChange.purchase_id == msg.purchase_id)):
        return
    # Stamped under the lock by the database's clock: the changes of a tenant are ordered as
    # they were applied (a transaction's now() is when it began, maybe before a wait here).
    applied_at = func.clock_timestamp()
    if msg.product_kind == "plan" and msg.plan:
        session.add(PlanChange(tenant_id=tenant.id, purchase_id=msg.purchase_id, kind="plan",
                               product_code=msg.product_code, plan_before=tenant.plan,
                               plan_after=msg.plan, created_at=applied_at))
        tenant.plan = msg.plan
        # A tenant being offboarded keeps its plan change but is not moved: its data is
        # about to be deleted (and the offboarding would drop the database it moved to).
        if (msg.plan != TRIAL_PLAN and msg.amount_minor > 0 and tenant.status == "trial"
                and queries.offboarding_under_way(session, tenant.id) is None):
            promotion.request_promotion(session, tenant.id, reason="purchase",
                                        purchase_id=msg.purchase_id, requested_by=msg.buyer_user_id,
                                        correlation_id=ctx.envelope.correlation_id)
    else:
        session.add(PlanChange(tenant_id=tenant.id, purchase_id=msg.purchase_id, kind="addon",
                               product_code=msg.product_code, created_at=applied_at))
    session.flush()


def revert_plan(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Undo what a refunded purchase gave: an add-on goes away, and the tenant's plan is the
    one its newest plan purchase still standing gave (none left: the plan it had before).

    Under the tenant's lock, as ``apply_plan``. A purchase refunded before it was applied gets
    its change recorded as reverted, so that ``apply_plan`` gives it nothing (nor promotes).
    The tenant's data stays where it is: a refunded plan does not move a promoted tenant
    back to the trial database (an operator offboards or keeps it).
    """
    session = ctx.session
    tenant = session.get(Tenant, msg.tenant_id, with_for_update=True)
    # Another tenant's purchase is not this one's to revert, nor to mark reverted for good.
    if tenant is None or not purchases.is_purchase_of(session, tenant.id, msg.purchase_id):
        return
    change = session.scalar(select(PlanChange).where(PlanChange.purchase_id == msg.purchase_id))
    if change is None:
        session.add(PlanChange(tenant_id=tenant.id, purchase_id=msg.purchase_id, kind=msg.product_kind,
                               product_code=msg.product_code, created_at=func.clock_timestamp(),
                               reverted_at=utcnow()))
        session.flush()
        return
    if change.reverted_at is not None:
        return
    change.reverted_at = utcnow()
    session.flush()
    if change.kind == "plan":
        tenant.plan = _standing_plan(session, tenant.id) or tenant.plan


def _standing_plan(session: Session, tenant_id: uuid.UUID) -> str | None:
    """The plan the tenant's newest plan change not reverted gave; with none left, the plan it
    had before its first (None when no purchase ever gave it a plan)."""
    plans = select(PlanChange).where(PlanChange.tenant_id == tenant_id, PlanChange.kind == "plan",
                                     PlanChange.plan_after.is_not(None))  # not a refund-first's mark
    newest = session.scalar(plans.where(PlanChange.reverted_at.is_(None))
                            .order_by(PlanChange.created_at.desc(), PlanChange.id.desc()).limit(1))
    if newest is not None:
        return newest.plan_after
    first = session.scalar(plans.order_by(PlanChange.created_at, PlanChange.id).limit(1))
    return None if first is None else first.plan_before or TRIAL_PLAN
