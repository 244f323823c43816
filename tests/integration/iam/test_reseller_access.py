"""The reseller-admin role: what IAM lets a reseller's admins do for the tenants it sold."""
from __future__ import annotations

from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from domain.iam import access
from tests.support import tenants
from tests.support.tenants import Account, bearer

RESELLERS = "/api/v1/operations/resellers"


def test_a_reseller_admin_may_manage_subscriptions_of_its_own_tenants_only(
        api: FlaskClient, provider: DataProvider, operator_token: str) -> None:
    sold, other = tenants.create_tenant(provider, ["owner"]), tenants.create_tenant(provider, ["owner"])
    admin: Account = tenants.create_account(provider, prefix="reseller-admin")
    created = api.post(RESELLERS, json={"name": f"Partner {sold.slug}", "admin_email": admin.email},
                       headers=bearer(operator_token))
    assert created.status_code == 201
    assigned = api.put(f"/api/v1/operations/tenants/{sold.id}/reseller",
                       json={"reseller_id": created.json["id"]}, headers=bearer(operator_token))
    assert assigned.status_code == 204

    with provider.management() as session:
        assert access.reseller_may(session, admin.user_id, sold.id, "subscriptions:manage")
        assert access.reseller_may(session, admin.user_id, sold.id, "purchases:create")
        # Not another reseller's (or no reseller's) tenant, and nothing beyond subscriptions.
        assert not access.reseller_may(session, admin.user_id, other.id, "subscriptions:manage")
        assert not access.reseller_may(session, admin.user_id, sold.id, "users:manage")
        # The tenant's own owner is not a reseller admin.
        assert not access.reseller_may(session, sold.member("owner").user_id, sold.id,
                                       "subscriptions:manage")
        # Being a reseller admin grants nothing inside the tenant itself.
        assert not access.resolve(session, admin.user_id, sold.id).member
