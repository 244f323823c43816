"""The tenancy handlers act only on what belongs to the tenant their message names: a message
carrying another tenant's signup or purchase changes nothing (``domain.messaging.handling``
already refuses one whose envelope and payload name different tenants). A refund leaves the
plan the purchases still standing give, whichever of a purchase's two events comes first."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, func, select

from domain.db.provider import DataProvider
from domain.messaging import handling
from domain.messaging.contracts import Contract
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox
from domain.tenancy import handlers
from domain.tenancy.models import PlanChange, Promotion, Signup, Tenant
from tests.support import tenants, things
from tests.support.tenants import TenantWithMembers


def _envelope(message: Contract, handler: str) -> Envelope:
    """A delivery of ``message`` to ``handler``, for the tenant it names."""
    return Envelope(id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), type=message.message_type,
                    version=message.version, handler=handler, payload=message.model_dump(mode="json"),
                    origin="management", tenant_id=str(message.tenant_id), correlation_id=None)


def test_a_refund_naming_another_tenant_leaves_the_plan_it_did_not_buy(provider: DataProvider) -> None:
    buyer, other = (tenants.create_tenant(provider, ("owner",)) for _ in range(2))
    purchase_id = uuid.uuid4()
    with provider.management() as session:  # what apply_plan left for the buyer's purchase
        session.add(PlanChange(tenant_id=buyer.id, purchase_id=purchase_id, kind="plan", product_code="pro",
                               plan_before="trial", plan_after="pro"))
        session.get(Tenant, buyer.id).plan = "pro"  # type: ignore[union-attr]
        session.commit()
    refund = PurchaseRefundedV1(purchase_id=purchase_id, tenant_id=other.id,
                                buyer_user_id=other.member("owner").user_id, product_code="pro",
                                product_name="Pro", product_kind="plan", amount_minor=1500, currency="EUR",
                                refund_id="re_1")
    outcome = handling.handle(provider, _envelope(refund, "tenancy.revert_plan"), PurchaseRefundedV1,
                              "management", handlers.revert_plan)
    assert not outcome.duplicate
    with provider.management() as session:
        assert session.get(Tenant, buyer.id).plan == "pro"  # type: ignore[union-attr]
        change = session.query(PlanChange).filter_by(purchase_id=purchase_id).one()
        assert change.reverted_at is None


def test_a_provisioning_naming_another_tenant_than_its_signup_does_nothing(provider: DataProvider) -> None:
    signed_up, other = (tenants.create_tenant(provider, ("owner",)) for _ in range(2))
    signup_id = uuid.uuid4()
    with provider.management() as session:  # a signup of the first tenant, still pending
        session.add(Signup(id=signup_id, tenant_id=signed_up.id, admin_name="Ada", status="pending",
                           admin_email=f"ada-{signup_id.hex[:8]}@example.com", sealed_password=None))
        session.commit()
    command = ProvisionTenantV1(signup_id=signup_id, tenant_id=other.id)
    handling.handle(provider, _envelope(command, "tenancy.provision_tenant"), ProvisionTenantV1,
                    "management", handlers.provision_tenant, ports={"sealer": None})
    with provider.management() as session:
        signup = session.get(Signup, signup_id)
        assert signup is not None and (signup.status, signup.failure_reason) == ("pending", None)


@pytest.fixture
def buyer(provider: DataProvider) -> Iterator[TenantWithMembers]:
    """A trial tenant that buys; the promotions its purchases asked for, and the commands
    they left in the outbox, removed after the test (never sent: no later test's workers or
    beat may find them pending)."""
    tenant = tenants.create_tenant(provider, ("owner",), prefix="buyer")
    yield tenant
    with provider.management() as session:
        session.execute(delete(outbox).where(outbox.c.tenant_id == tenant.id))
        session.execute(delete(Promotion).where(Promotion.tenant_id == tenant.id))
        session.commit()


def _bought(provider: DataProvider, tenant: TenantWithMembers, plan: str | None) -> things.Purchased:
    """A completed purchase of the tenant's: the plan ``plan`` (an add-on for None) at 15.00 EUR."""
    return things.purchase(provider, tenant, things.product(provider, plan=plan), "completed")


def _apply(provider: DataProvider, tenant: TenantWithMembers, paid: things.Purchased) -> None:
    """Deliver the purchase's PurchaseCompleted to apply_plan."""
    view = paid.view
    event = PurchaseCompletedV1(
        purchase_id=view.id, tenant_id=tenant.id, buyer_user_id=view.buyer_user_id,
        product_code=view.product_code, product_name=view.product_name,
        product_kind="plan" if view.plan else "addon", plan=view.plan, amount_minor=view.amount_minor,
        currency=view.currency, charge_id=paid.charge_id)
    handling.handle(provider, _envelope(event, "tenancy.apply_plan"), PurchaseCompletedV1, "management",
                    handlers.apply_plan)


def _revert(provider: DataProvider, tenant: TenantWithMembers, paid: things.Purchased) -> None:
    """Deliver the purchase's PurchaseRefunded to revert_plan."""
    view = paid.view
    event = PurchaseRefundedV1(
        purchase_id=view.id, tenant_id=tenant.id, buyer_user_id=view.buyer_user_id,
        product_code=view.product_code, product_name=view.product_name,
        product_kind="plan" if view.plan else "addon", amount_minor=view.amount_minor,
        currency=view.currency, refund_id=paid.refund_id)
    handling.handle(provider, _envelope(event, "tenancy.revert_plan"), PurchaseRefundedV1, "management",
                    handlers.revert_plan)


def _plan(provider: DataProvider, tenant_id: uuid.UUID) -> str | None:
    with provider.management() as session:
        return session.scalar(select(Tenant.plan).where(Tenant.id == tenant_id))


def _promotions(provider: DataProvider, tenant_id: uuid.UUID) -> int:
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(Promotion)
                              .where(Promotion.tenant_id == tenant_id)) or 0


def _reverted(provider: DataProvider, paid: things.Purchased) -> bool:
    with provider.management() as session:
        change = session.scalars(select(PlanChange).where(PlanChange.purchase_id == paid.view.id)).one()
        return change.reverted_at is not None


def test_a_refund_leaves_the_plan_a_later_purchase_still_pays_for(provider: DataProvider,
                                                                  buyer: TenantWithMembers) -> None:
    first, second = _bought(provider, buyer, "standard"), _bought(provider, buyer, "standard")
    _apply(provider, buyer, first)  # trial -> standard, promoting the tenant
    _apply(provider, buyer, second)  # standard -> standard
    _revert(provider, buyer, first)
    assert _plan(provider, buyer.id) == "standard"  # the second purchase still stands
    assert _reverted(provider, first) and not _reverted(provider, second)
    _revert(provider, buyer, second)
    assert _plan(provider, buyer.id) == "trial"  # nothing stands: the plan before any purchase
    # The promotion the first purchase asked for stands too: a refund does not move the data.
    assert _promotions(provider, buyer.id) == 1


def test_refunds_in_any_order_leave_the_plan_of_the_newest_purchase_standing(
        provider: DataProvider, buyer: TenantWithMembers) -> None:
    standard, addon, pro = (_bought(provider, buyer, plan) for plan in ("standard", None, "pro"))
    for paid in (standard, addon, pro):
        _apply(provider, buyer, paid)
    assert _plan(provider, buyer.id) == "pro"
    _revert(provider, buyer, standard)
    assert _plan(provider, buyer.id) == "pro"
    _revert(provider, buyer, addon)
    assert _plan(provider, buyer.id) == "pro"
    _revert(provider, buyer, pro)  # its plan_before is "standard", which was refunded
    assert _plan(provider, buyer.id) == "trial"


@pytest.mark.parametrize("refund_first", [True, False], ids=["refund first", "apply first"])
def test_a_refunded_plan_is_not_left_applied_whichever_event_comes_first(
        provider: DataProvider, buyer: TenantWithMembers, refund_first: bool) -> None:
    paid = _bought(provider, buyer, "pro")
    if refund_first:
        _revert(provider, buyer, paid)
        _apply(provider, buyer, paid)
    else:
        _apply(provider, buyer, paid)
        _revert(provider, buyer, paid)
    assert _plan(provider, buyer.id) == "trial"
    assert _reverted(provider, paid)
    # Applied first, it asked for the promotion a paid plan gets (a refund keeps the data where
    # it is); refunded first, it never asks for one.
    assert _promotions(provider, buyer.id) == (0 if refund_first else 1)


def test_an_add_on_refunded_before_it_is_applied_is_never_given(provider: DataProvider,
                                                                buyer: TenantWithMembers) -> None:
    paid = _bought(provider, buyer, None)
    _revert(provider, buyer, paid)
    _apply(provider, buyer, paid)
    with provider.management() as session:
        change = session.scalars(select(PlanChange).where(PlanChange.purchase_id == paid.view.id)).one()
        assert (change.kind, change.reverted_at is not None) == ("addon", True)
    assert _plan(provider, buyer.id) == "trial"


def test_a_refund_naming_another_tenant_does_not_keep_the_buyer_from_its_purchase(
        provider: DataProvider, buyer: TenantWithMembers) -> None:
    other = tenants.create_tenant(provider, ("owner",))
    paid = _bought(provider, buyer, "pro")
    refund = PurchaseRefundedV1(purchase_id=paid.view.id, tenant_id=other.id,
                                buyer_user_id=other.member("owner").user_id,
                                product_code=paid.view.product_code, product_name="Pro", product_kind="plan",
                                amount_minor=1500, currency="EUR", refund_id="re_1")
    handling.handle(provider, _envelope(refund, "tenancy.revert_plan"), PurchaseRefundedV1, "management",
                    handlers.revert_plan)
    _apply(provider, buyer, paid)
    assert _plan(provider, buyer.id) == "pro"
    assert not _reverted(provider, paid)
