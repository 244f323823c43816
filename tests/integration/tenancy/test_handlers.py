"""The tenancy handlers act only on what belongs to the tenant their message names: a message
carrying another tenant's signup or purchase changes nothing (``domain.messaging.handling``
already refuses one whose envelope and payload name different tenants)."""
from __future__ import annotations

import uuid

from domain.db.provider import DataProvider
from domain.messaging import handling
from domain.messaging.contracts.purchases import PurchaseRefundedV1
from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.messaging.outbox import Envelope
from domain.tenancy import handlers
from domain.tenancy.models import PlanChange, Signup, Tenant
from tests.support import tenants


def _envelope(message: PurchaseRefundedV1 | ProvisionTenantV1, handler: str) -> Envelope:
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
