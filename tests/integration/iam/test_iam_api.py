"""The IAM API: custom roles, members' roles and standing, invitations, resellers, me;
and every body-taking IAM route refusing bad input with nothing written."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.errors import Conflict
from domain.iam import services as iam
from domain.iam.models import Invitation
from domain.iam.services import BUILTIN_ROLES
from domain.identity.services import PasswordSealer
from domain.messaging.tables import outbox
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.tenants import Account, TenantWithMembers, bearer

ROLES = "/api/v1/iam/roles"
MEMBERS = "/api/v1/iam/members"
INVITATIONS = "/api/v1/iam/invitations"
RESELLERS = "/api/v1/operations/resellers"
# Tables only IAM requests write (whole); the rest is compared for the test's own tenant.
IAM_TABLES = ("invitations", "resellers", "reseller_admins")


@dataclass
class Org:
    """A fresh tenant with one member per built-in role, and tokens of its owner and admin."""

    tenant: TenantWithMembers
    owner: str
    admin: str

    def account(self, role: str) -> Account:
        """The member holding ``role``."""
        return self.tenant.member(role)


@pytest.fixture
def org(api: FlaskClient, provider: DataProvider) -> Org:
    """A tenant of its own for each test: the tests change roles and standing."""
    tenant = tenants.create_tenant(provider, prefix="iam")
    return Org(tenant, tenants.access_token(api, tenant.member("owner")),
               tenants.access_token(api, tenant.member("admin")))


def role_ids(api: FlaskClient, token: str) -> dict[str, str]:
    """The tenant's roles by name."""
    response = api.get(ROLES, headers=bearer(token))
    assert response.status_code == 200
    return {item["name"]: item["id"] for item in response.json["items"]}


def create_role(api: FlaskClient, token: str, name: str, permissions: list[str]) -> dict[str, Any]:
    """POST a custom role; it must be created."""
    response = api.post(ROLES, json={"name": name, "permissions": permissions}, headers=bearer(token))
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def set_roles(api: FlaskClient, token: str, user_id: uuid.UUID, roles: list[str]) -> Any:
    """PUT a member's roles."""
    return api.put(f"{MEMBERS}/{user_id}/roles", json={"roles": roles}, headers=bearer(token))


def me(api: FlaskClient, token: str) -> Any:
    """GET /api/v1/iam/me."""
    return api.get("/api/v1/iam/me", headers=bearer(token))


def fingerprint(provider: DataProvider, org: Org | None = None) -> dict[str, str]:
    """What an IAM request may write: the tenant's rows (roles, memberships, standing,
    invitations, its outbox), its people's accounts and sessions, and resellers."""
    prints = tenants.tables_fingerprint(provider, IAM_TABLES)
    if org is not None:
        prints |= tenants.tenant_fingerprint(provider, org.tenant.id, user_ids=org.tenant.user_ids)
    return prints


def without_emails(prints: dict[str, str]) -> dict[str, str]:
    """``prints`` without the email deliveries, which a sender settles at its own pace."""
    return {table: print_ for table, print_ in prints.items()
            if not table.startswith("management.email_deliveries")}


# --- custom roles ------------------------------------------------------------------------

def test_a_custom_role_is_created_listed_changed_and_deleted(api: FlaskClient, org: Org) -> None:
    created = create_role(api, org.owner, "auditor", ["notifications:read", "employment:read"])
    assert created["name"] == "auditor" and created["builtin"] is False
    assert created["permissions"] == ["employment:read", "notifications:read"]

    listed = api.get(ROLES, headers=bearer(org.owner)).json["items"]
    assert [r["name"] for r in listed if r["builtin"]] == sorted(BUILTIN_ROLES)
    assert listed[-1] == created  # built-in roles first

    changed = api.put(f"{ROLES}/{created['id']}", json={"permissions": ["publications:read"]},
                      headers=bearer(org.owner))
    assert changed.status_code == 200
    assert changed.json == {**created, "permissions": ["publications:read"]}

    assert api.delete(f"{ROLES}/{created['id']}", headers=bearer(org.owner)).status_code == 204
    assert "auditor" not in role_ids(api, org.owner)
    assert_refused(api.delete(f"{ROLES}/{created['id']}", headers=bearer(org.owner)), 404, "role_id")


@pytest.mark.parametrize("permissions", [["users:manage", "root:everything"], ["platform:operator"],
                                         ["subscriptions:manage"]],
                         ids=["unknown", "operator", "reseller-only"])
def test_a_permission_outside_the_vocabulary_is_refused_naming_permissions(
        api: FlaskClient, provider: DataProvider, org: Org, permissions: list[str]) -> None:
    custom = create_role(api, org.owner, "clerk", ["notifications:read"])
    before = fingerprint(provider, org)
    created = api.post(ROLES, json={"name": "rogue", "permissions": permissions}, headers=bearer(org.owner))
    assert permissions[-1] in assert_refused(created, 422, "permissions")["reason"]
    changed = api.put(f"{ROLES}/{custom['id']}", json={"permissions": permissions}, headers=bearer(org.owner))
    assert_refused(changed, 422, "permissions")
    assert fingerprint(provider, org) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Bad Name", "permissions": ["users:manage"]}, "name"),
    ({"name": "x", "permissions": ["users:manage"]}, "name"),
    ({"name": "empty", "permissions": []}, "permissions"),
    ({"name": "listless", "permissions": "users:manage"}, "permissions"),
])
def test_an_invalid_role_is_refused_naming_the_field(api: FlaskClient, provider: DataProvider, org: Org,
                                                     body: dict[str, Any], field: str) -> None:
    before = fingerprint(provider, org)
    assert_refused(api.post(ROLES, json=body, headers=bearer(org.owner)), 422, field)
    assert fingerprint(provider, org) == before


@pytest.mark.parametrize("name", ["owner", "auditor"])
def test_a_role_name_taken_in_the_tenant_is_a_conflict(api: FlaskClient, org: Org, name: str) -> None:
    create_role(api, org.owner, "auditor", ["notifications:read"])
    body = {"name": name, "permissions": ["users:manage"]}
    assert_refused(api.post(ROLES, json=body, headers=bearer(org.owner)), 409, "name")


@pytest.mark.parametrize("role", sorted(BUILTIN_ROLES))
def test_built_in_roles_cannot_be_changed_or_deleted(api: FlaskClient, provider: DataProvider, org: Org,
                                                     role: str) -> None:
    role_id = role_ids(api, org.owner)[role]
    before = fingerprint(provider, org)
    changed = api.put(f"{ROLES}/{role_id}", json={"permissions": ["users:manage"]}, headers=bearer(org.owner))
    assert_refused(changed, 409, "role_id")
    assert_refused(api.delete(f"{ROLES}/{role_id}", headers=bearer(org.owner)), 409, "role_id")
    assert fingerprint(provider, org) == before


def test_a_role_somebody_holds_cannot_be_deleted(api: FlaskClient, provider: DataProvider, org: Org) -> None:
    role = create_role(api, org.owner, "auditor", ["notifications:read"])
    assert set_roles(api, org.owner, org.account("employee").user_id, ["auditor"]).status_code == 200
    before = fingerprint(provider, org)
    body = assert_refused(api.delete(f"{ROLES}/{role['id']}", headers=bearer(org.owner)), 409, "role_id")
    assert "1 member" in body["reason"]
    assert fingerprint(provider, org) == before
    # Once nobody holds it, it goes.
    assert set_roles(api, org.owner, org.account("employee").user_id, ["employee"]).status_code == 200
    assert api.delete(f"{ROLES}/{role['id']}", headers=bearer(org.owner)).status_code == 204


def test_a_role_a_pending_invitation_offers_cannot_be_deleted_and_spent_ones_go_with_it(
        api: FlaskClient, provider: DataProvider, org: Org) -> None:
    # Every invitation keeps its role: deleting a role ever offered in one was a 500 (the
    # invitations' foreign key), and the role could never be deleted.
    role = create_role(api, org.owner, "auditor", ["notifications:read"])
    offered = [api.post(INVITATIONS, json={"email": refs.email(kind), "role": "auditor"},
                        headers=bearer(org.owner)).json for kind in ("accepted", "pending")]
    joined = api.post("/api/v1/identity/invitations/accept", json={
        "token": invitation_token(provider, offered[0]["id"]), "name": "Ada",
        "password": "invitee password 01"})
    assert joined.status_code == 200, joined.get_data(as_text=True)[:300]
    joiner = uuid.UUID(me(api, joined.json["access_token"]).json["user_id"])
    assert set_roles(api, org.owner, joiner, ["employee"]).status_code == 200

    # The invitations' emails are sent meanwhile by the suite's worker: not this request's.
    before = without_emails(fingerprint(provider, org))
    refused = api.delete(f"{ROLES}/{role['id']}", headers=bearer(org.owner))
    assert "1 pending invitation" in assert_refused(refused, 409, "role_id")["reason"]
    assert without_emails(fingerprint(provider, org)) == before
    with provider.management() as session:  # the pending one expires
        session.execute(update(Invitation).where(Invitation.id == uuid.UUID(offered[1]["id"]))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert api.delete(f"{ROLES}/{role['id']}", headers=bearer(org.owner)).status_code == 204
    assert "auditor" not in role_ids(api, org.owner)
    for invitation in offered:  # spent, they went with their role
        assert_refused(api.get(invitation["status_url"], headers=bearer(org.owner)), 404, "invitation_id")
    assert me(api, joined.json["access_token"]).json["permissions"] == sorted(BUILTIN_ROLES["employee"])


def test_changing_a_role_changes_what_its_holders_may_do_at_once(api: FlaskClient, org: Org) -> None:
    role = create_role(api, org.owner, "member_manager", ["users:manage"])
    holder = org.account("employee")
    assert set_roles(api, org.owner, holder.user_id, ["member_manager"]).status_code == 200
    token = tenants.access_token(api, holder)
    assert api.get(MEMBERS, headers=bearer(token)).status_code == 200

    changed = api.put(f"{ROLES}/{role['id']}", json={"permissions": ["notifications:read"]},
                      headers=bearer(org.owner))
    assert changed.status_code == 200
    # The same token, next request: the cached decision was dropped.
    assert_refused(api.get(MEMBERS, headers=bearer(token)), 403, None)
    assert api.get("/api/v1/notifications/notices", headers=bearer(token)).status_code == 200
    assert me(api, token).json["permissions"] == ["notifications:read"]


# --- members' roles ----------------------------------------------------------------------

def test_setting_roles_replaces_them_and_applies_at_once(api: FlaskClient, org: Org) -> None:
    member = org.account("employee")
    token = tenants.access_token(api, member)
    response = set_roles(api, org.owner, member.user_id, ["hr_manager", "employee", "hr_manager"])
    assert response.status_code == 200
    assert response.json["user_id"] == str(member.user_id)
    assert response.json["roles"] == ["employee", "hr_manager"]
    assert response.json["active"] is True and response.json["email"] == member.email
    both = BUILTIN_ROLES["hr_manager"] | BUILTIN_ROLES["employee"]
    assert me(api, token).json["permissions"] == sorted(both)
    listed = {m["user_id"]: m["roles"] for m in api.get(MEMBERS, headers=bearer(org.owner)).json["items"]}
    assert listed == {str(org.account(r).user_id): [r] for r in BUILTIN_ROLES if r != "employee"} | {
        str(member.user_id): ["employee", "hr_manager"]}


def test_the_last_owner_cannot_give_up_the_owner_role(api: FlaskClient, provider: DataProvider,
                                                      org: Org) -> None:
    owner = org.account("owner")
    before = fingerprint(provider, org)
    body = assert_refused(set_roles(api, org.owner, owner.user_id, ["admin"]), 409, "roles")
    assert "last owner" in body["reason"]
    # An admin may not take the owner role from anyone (only owners change owners).
    body = assert_refused(set_roles(api, org.admin, owner.user_id, ["admin"]), 403, "roles")
    assert "only an owner" in body["reason"]
    assert fingerprint(provider, org) == before
    # With a second owner, the first may step down.
    second = org.account("admin")
    assert set_roles(api, org.owner, second.user_id, ["owner"]).status_code == 200
    stepped_down = set_roles(api, org.owner, owner.user_id, ["admin"])
    assert stepped_down.status_code == 200 and stepped_down.json["roles"] == ["admin"]


def test_an_unknown_role_is_not_found_naming_roles(api: FlaskClient, provider: DataProvider,
                                                   org: Org) -> None:
    before = fingerprint(provider, org)
    response = set_roles(api, org.owner, org.account("employee").user_id, ["employee", "wizard"])
    assert "wizard" in assert_refused(response, 404, "roles")["reason"]
    assert fingerprint(provider, org) == before


@pytest.mark.parametrize("case", [
    ([], 422, "roles"), (["employee"] * 21, 422, "roles"), (["Not A Role"], 404, "roles"),
    (["x" * 5000], 404, "roles"), ([7], 422, "roles.0"),
    (["empl\x00oyee"], 422, "roles.0"),  # a NUL used to reach PostgreSQL: a 500
])
def test_an_invalid_role_list_is_refused_naming_roles(api: FlaskClient, provider: DataProvider, org: Org,
                                                      case: tuple[list[Any], int, str]) -> None:
    roles, status, field = case
    before = fingerprint(provider, org)
    response = set_roles(api, org.owner, org.account("employee").user_id, roles)
    assert_refused(response, status, field)
    assert fingerprint(provider, org) == before


def test_a_user_who_is_not_a_member_is_not_found(api: FlaskClient, provider: DataProvider, org: Org) -> None:
    stranger = tenants.create_account(provider)
    for user_id in (stranger.user_id, uuid.uuid4()):
        assert_refused(api.get(f"{MEMBERS}/{user_id}", headers=bearer(org.owner)), 404, "user_id")
        assert_refused(set_roles(api, org.owner, user_id, ["employee"]), 404, "user_id")


# --- standing: deactivate, reactivate, cut off -------------------------------------------

def test_nobody_can_deactivate_themselves(api: FlaskClient, provider: DataProvider, org: Org) -> None:
    before = fingerprint(provider, org)
    for role, token in (("owner", org.owner), ("admin", org.admin)):
        response = api.post(f"{MEMBERS}/{org.account(role).user_id}/deactivate", headers=bearer(token))
        assert_refused(response, 409, "user_id")
    assert fingerprint(provider, org) == before
    assert me(api, org.owner).status_code == 200


def test_the_last_owner_cannot_be_deactivated(api: FlaskClient, provider: DataProvider, org: Org) -> None:
    before = fingerprint(provider, org)
    # Through the API only an owner could try, and an owner cannot deactivate themselves;
    # an admin is refused because only owners change an owner's standing.
    response = api.post(f"{MEMBERS}/{org.account('owner').user_id}/deactivate", headers=bearer(org.admin))
    assert "only an owner" in assert_refused(response, 403, "user_id")["reason"]
    assert fingerprint(provider, org) == before
    assert me(api, org.owner).status_code == 200
    # The rule itself holds for any caller, the platform included.
    with provider.management() as session, pytest.raises(Conflict, match="last owner"):
        iam.set_active(session, org.tenant.id, org.account("owner").user_id, False, changed_by=None)


def test_a_deactivated_member_is_cut_off_until_reactivated(api: FlaskClient, org: Org) -> None:
    member = org.account("employee")
    token = tenants.access_token(api, member)
    deactivated = api.post(f"{MEMBERS}/{member.user_id}/deactivate", headers=bearer(org.owner))
    assert deactivated.status_code == 200
    assert deactivated.json["active"] is False and deactivated.json["roles"] == ["employee"]
    assert_refused(me(api, token), 401, "Authorization")
    refused = api.post(tenants.TOKENS_URL, json={"email": member.email, "password": member.password,
                                                 "tenant": org.tenant.slug})
    assert_refused(refused, 404, "tenant")

    reactivated = api.post(f"{MEMBERS}/{member.user_id}/reactivate", headers=bearer(org.owner))
    assert reactivated.status_code == 200
    assert reactivated.json["active"] is True and reactivated.json["roles"] == ["employee"]
    assert_refused(me(api, token), 401, "Authorization")  # its sessions stay ended
    fresh = tenants.access_token(api, member, org.tenant.slug)
    assert me(api, fresh).json["permissions"] == sorted(BUILTIN_ROLES["employee"])


def test_a_cut_off_member_must_sign_in_again(api: FlaskClient, org: Org) -> None:
    member = org.account("hr_manager")
    tokens = [tenants.access_token(api, member) for _ in range(2)]
    response = api.post(f"{MEMBERS}/{member.user_id}/cut-off", headers=bearer(org.owner))
    assert response.status_code == 200 and response.json == {"revoked": 2}
    for token in tokens:
        assert_refused(me(api, token), 401, "Authorization")
    assert me(api, tenants.access_token(api, member)).status_code == 200


# --- a lesser user manager ---------------------------------------------------------------

def lesser_manager(api: FlaskClient, org: Org) -> str:
    """Make the employee a user manager holding nothing else (the custom role
    ``member_manager``: users:manage only); their token."""
    create_role(api, org.owner, "member_manager", ["users:manage"])
    manager = org.account("employee")
    assert set_roles(api, org.owner, manager.user_id, ["member_manager"]).status_code == 200
    return tenants.access_token(api, manager)


@pytest.mark.parametrize("target", ["admin", "hr_manager", "owner"])
def test_a_lesser_user_manager_cannot_change_a_member_who_holds_more(
        api: FlaskClient, provider: DataProvider, org: Org, target: str) -> None:
    # users:manage was all it took to strip an admin of their roles, deactivate or cut them off.
    token, victim = lesser_manager(api, org), org.account(target).user_id
    before = fingerprint(provider, org)
    for response in (set_roles(api, token, victim, ["member_manager"]),
                     api.post(f"{MEMBERS}/{victim}/deactivate", headers=bearer(token)),
                     api.post(f"{MEMBERS}/{victim}/cut-off", headers=bearer(token))):
        assert "which you do not" in assert_refused(response, 403, "user_id")["reason"]
    assert fingerprint(provider, org) == before
    assert me(api, org.admin).status_code == 200


def test_a_lesser_user_manager_manages_members_who_hold_no_more(
        api: FlaskClient, provider: DataProvider, org: Org) -> None:
    token = lesser_manager(api, org)
    peer = tenants.add_member(provider, org.tenant.id, "member_manager")
    for action in ("deactivate", "reactivate", "cut-off"):
        assert api.post(f"{MEMBERS}/{peer.user_id}/{action}", headers=bearer(token)).status_code == 200
    assert set_roles(api, token, peer.user_id, ["member_manager"]).status_code == 200
    # An admin deactivated by an owner is not brought back by them: their roles count.
    admin = org.account("admin").user_id
    assert api.post(f"{MEMBERS}/{admin}/deactivate", headers=bearer(org.owner)).status_code == 200
    refused = api.post(f"{MEMBERS}/{admin}/reactivate", headers=bearer(token))
    assert_refused(refused, 403, "user_id")
    assert api.get(f"{MEMBERS}/{admin}", headers=bearer(org.owner)).json["active"] is False


# --- invitations -------------------------------------------------------------------------

def invitation_token(provider: DataProvider, invitation_id: str) -> str:
    """The invitation's secret, as the email carries it (read from its outbox message)."""
    with provider.unscoped("management") as session:
        payload = session.scalar(select(outbox.c.payload).where(
            outbox.c.payload["invitation_id"].astext == invitation_id))
    assert payload is not None, "the invitation's email is queued"
    token = PasswordSealer(provider.settings.secret_key).unseal(
        payload["sealed_token"])
    assert token is not None and "sealed_token" in payload and "token" not in payload
    return token


def test_an_invitation_is_accepted_with_a_status_url(api: FlaskClient, provider: DataProvider,
                                                     org: Org) -> None:
    email = refs.email("Invitee").upper()
    response = api.post(INVITATIONS, json={"email": email, "role": "hr_manager"}, headers=bearer(org.owner))
    assert response.status_code == 202
    body = response.json
    assert body["status_url"] == f"{INVITATIONS}/{body['id']}" == response.headers["Location"]
    assert (body["email"], body["role"]) == (email.lower(), "hr_manager")

    status = api.get(body["status_url"], headers=bearer(org.owner))
    assert status.status_code == 200
    assert status.json["status"] == "pending" and status.json["accepted_at"] is None
    assert status.json["expires_at"] == body["expires_at"]

    accepted = api.post("/api/v1/identity/invitations/accept", json={
        "token": invitation_token(provider, body["id"]), "name": "Ivy", "password": "invitee password 01"})
    assert accepted.status_code == 200
    assert me(api, accepted.json["access_token"]).json["tenant_id"] == str(org.tenant.id)
    assert api.get(body["status_url"], headers=bearer(org.owner)).json["status"] == "accepted"


def test_an_invitation_needs_a_role_of_the_tenant(api: FlaskClient, provider: DataProvider, org: Org) -> None:
    before = fingerprint(provider, org)
    body = {"email": refs.email(), "role": "wizard"}
    response = api.post(INVITATIONS, json=body, headers=bearer(org.owner))
    # The body's field is ``role``: the error must name it (today it says ``roles``).
    assert "wizard" in assert_refused(response, 404, "role")["reason"]
    assert fingerprint(provider, org) == before


@pytest.mark.parametrize(("body", "field"), [({"email": "not-an-email", "role": "employee"}, "email"),
                                             ({"email": "a@example.com", "role": "No Role"}, "role"),
                                             ({"role": "employee"}, "email")])
def test_an_invalid_invitation_is_refused(api: FlaskClient, provider: DataProvider, org: Org,
                                          body: dict[str, str], field: str) -> None:
    before = fingerprint(provider, org)
    assert_refused(api.post(INVITATIONS, json=body, headers=bearer(org.owner)), 422, field)
    assert fingerprint(provider, org) == before


def test_an_unknown_invitation_is_not_found(api: FlaskClient, org: Org) -> None:
    assert_refused(api.get(f"{INVITATIONS}/{uuid.uuid4()}", headers=bearer(org.owner)), 404, "invitation_id")


# --- resellers ---------------------------------------------------------------------------

def test_a_reseller_admin_sees_the_tenants_of_its_reseller(api: FlaskClient, provider: DataProvider,
                                                           operator_token: str, org: Org) -> None:
    admin = tenants.create_account(provider, prefix="reseller-admin")
    body = {"name": f"Reseller {refs.slug()}", "admin_email": admin.email.upper()}
    created = api.post(RESELLERS, json=body, headers=bearer(operator_token))
    assert created.status_code == 201
    reseller_id = created.json["id"]
    assigned = api.put(f"/api/v1/operations/tenants/{org.tenant.id}/reseller",
                       json={"reseller_id": reseller_id}, headers=bearer(operator_token))
    assert assigned.status_code == 204

    admin_token = tenants.access_token(api, admin)
    listing = api.get(f"/api/v1/iam/resellers/{reseller_id}/tenants", headers=bearer(admin_token))
    assert listing.status_code == 200
    assert listing.json["items"] == [{"id": str(org.tenant.id), "slug": org.tenant.slug,
                                      "name": org.tenant.name, "plan": "trial"}]

    for other in (org.owner, operator_token, tenants.access_token(api, tenants.create_account(provider))):
        refused = api.get(f"/api/v1/iam/resellers/{reseller_id}/tenants", headers=bearer(other))
        assert_refused(refused, 404, "reseller_id")
    unknown = api.get(f"/api/v1/iam/resellers/{uuid.uuid4()}/tenants", headers=bearer(admin_token))
    assert_refused(unknown, 404, "reseller_id")

    cleared = api.put(f"/api/v1/operations/tenants/{org.tenant.id}/reseller", json={"reseller_id": None},
                      headers=bearer(operator_token))
    assert cleared.status_code == 204
    assert api.get(f"/api/v1/iam/resellers/{reseller_id}/tenants", headers=bearer(admin_token)).json == {
        "items": []}


def test_a_reseller_needs_an_existing_admin_and_a_free_name(api: FlaskClient, provider: DataProvider,
                                                            operator_token: str) -> None:
    admin = tenants.create_account(provider, prefix="reseller-admin")
    before = fingerprint(provider)
    unknown = api.post(RESELLERS, json={"name": "Nobody's", "admin_email": refs.email("nobody")},
                       headers=bearer(operator_token))
    assert_refused(unknown, 422, "admin_email")
    assert fingerprint(provider) == before
    name = f"Reseller {refs.slug()}"
    assert api.post(RESELLERS, json={"name": name, "admin_email": admin.email},
                    headers=bearer(operator_token)).status_code == 201
    between = fingerprint(provider)
    body = {"name": name, "admin_email": admin.email}
    assert_refused(api.post(RESELLERS, json=body, headers=bearer(operator_token)), 409, "name")
    assert fingerprint(provider) == between


@pytest.mark.parametrize("unknown", ["tenant", "reseller"])
def test_assigning_an_unknown_tenant_or_reseller_is_not_found(
        api: FlaskClient, provider: DataProvider, operator_token: str, org: Org, unknown: str) -> None:
    tenant_id = uuid.uuid4() if unknown == "tenant" else org.tenant.id
    before = fingerprint(provider, org)
    response = api.put(f"/api/v1/operations/tenants/{tenant_id}/reseller",
                       json={"reseller_id": str(uuid.uuid4())}, headers=bearer(operator_token))
    assert_refused(response, 404, f"{unknown}_id")
    assert fingerprint(provider, org) == before


# --- me ----------------------------------------------------------------------------------

@pytest.mark.parametrize("role", sorted(BUILTIN_ROLES))
def test_me_names_the_caller_the_tenant_and_the_permissions(api: FlaskClient, org: Org, role: str) -> None:
    account = org.account(role)
    response = me(api, tenants.access_token(api, account))
    assert response.status_code == 200
    assert response.json == {"user_id": str(account.user_id), "tenant_id": str(org.tenant.id),
                             "permissions": sorted(BUILTIN_ROLES[role])}


def test_me_needs_a_tenant_token(api: FlaskClient, operator_token: str) -> None:
    assert_refused(me(api, operator_token), 403, "tenant")
    assert_refused(api.get("/api/v1/iam/me"), 401, "Authorization")


# --- bad input on every body-taking IAM route --------------------------------------------

@dataclass(frozen=True)
class BodyRoute:
    """A route that reads a JSON body, a valid body for it, and who calls it."""

    method: str
    path: Callable[[Org, dict[str, str]], str]
    body: Callable[[Org], dict[str, Any]]
    operator: bool = False


BODY_ROUTES = {
    "set roles": BodyRoute("PUT", lambda o, r: f"{MEMBERS}/{o.account('employee').user_id}/roles",
                           lambda o: {"roles": ["hr_manager"]}),
    "create role": BodyRoute("POST", lambda o, r: ROLES,
                             lambda o: {"name": "fresh_role", "permissions": ["users:manage"]}),
    "change role": BodyRoute("PUT", lambda o, r: f"{ROLES}/{r['auditor']}",
                             lambda o: {"permissions": ["users:manage"]}),
    "invite": BodyRoute("POST", lambda o, r: INVITATIONS,
                        lambda o: {"email": refs.email(), "role": "employee"}),
    "create reseller": BodyRoute("POST", lambda o, r: RESELLERS, lambda o: {
        "name": f"R {refs.slug()}", "admin_email": o.account("admin").email}, operator=True),
    "assign reseller": BodyRoute("PUT", lambda o, r: f"/api/v1/operations/tenants/{o.tenant.id}/reseller",
                                 lambda o: {"reseller_id": None}, operator=True),
}
BAD_INPUT = {
    "malformed JSON": (lambda body: {"data": '{"roles": [', "content_type": "application/json"}, 400, "body"),
    "wrong content type": (lambda body: {"data": "roles=admin", "content_type": "text/plain"}, 415,
                           "Content-Type"),
    "form encoded": (lambda body: {"data": {"roles": "admin"}}, 415, "Content-Type"),
    "not an object": (lambda body: {"json": [body]}, 422, "body"),
    "extra field": (lambda body: {"json": {**body, "surprise": True}}, 422, "surprise"),
}


@pytest.mark.parametrize("case", [(r, b) for r in BODY_ROUTES for b in BAD_INPUT],
                         ids=[f"{r}-{b}" for r in BODY_ROUTES for b in BAD_INPUT])
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
        api: FlaskClient, provider: DataProvider, operator_token: str, org: Org,
        case: tuple[str, str]) -> None:
    route, bad = case
    spec = BODY_ROUTES[route]
    create_role(api, org.owner, "auditor", ["notifications:read"])
    path = spec.path(org, role_ids(api, org.owner))
    token = operator_token if spec.operator else org.owner
    make, status, field = BAD_INPUT[bad]
    before = fingerprint(provider, org)
    response = api.open(path, method=spec.method, headers=bearer(token), **make(spec.body(org)))
    assert_refused(response, status, field)
    assert fingerprint(provider, org) == before
    # The same call with the valid body goes through: the refusal was the input's.
    assert api.open(path, method=spec.method, headers=bearer(token), json=spec.body(org)).status_code < 300
