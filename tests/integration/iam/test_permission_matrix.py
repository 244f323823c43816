"""Who may call what: every protected route against every built-in role, a custom role and
a platform operator.

``PROTECTED`` lists each protected route (a view whose ``required_permission``, set by
``web.auth.requires`` / ``page_requires``, is a permission string) with that permission,
how to call it and what a principal holding the permission gets. A principal holding it
gets exactly that answer; one lacking it gets exactly 403 and nothing is written. A view
added with a permission and missing from the table fails ``test_the_table_covers_every_
protected_view`` by name.
"""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.iam.access import OPERATOR
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.tenants import Account, TenantWithMembers, bearer, call_as

MEMBERS = "/api/v1/iam/members"
BUY = "purchases:create"
PUB, PUBLISH, READ_PUB = "/api/v1/publications", "publications:publish", "publications:read"
UPLOAD, ADMIN = "assets:upload", "tenant:admin"
READ_NOTICES = "notifications:read"
EMP_READ, EMP_WRITE = "employment:read", "employment:write"

SUPPRESSED = "/api/v1/operations/suppressed-addresses"


def _u() -> uuid.UUID:
    """An id nothing has."""
    return uuid.uuid4()
ROLES = "/api/v1/iam/roles"
# Tables no worker writes, compared whole; the rest is compared for the matrix tenant.
WHOLE_TABLES = ("invitations", "resellers", "reseller_admins")


@dataclass
class Matrix:
    """The tenant every principal acts in, their tokens, and fresh targets for each call."""

    provider: DataProvider
    tenant: TenantWithMembers
    tokens: dict[str, str]
    people: list[uuid.UUID]  # every account the matrix made, members or not

    def fresh_member(self) -> Account:
        """A new member of the tenant (a target nobody else uses) holding the custom
        member_manager role: no more than any users:manage holder, who may therefore change
        their roles and standing (a member who holds more is refused, test_iam_api)."""
        account = tenants.add_member(self.provider, self.tenant.id, MEMBER_MANAGER)
        self.people.append(account.user_id)
        return account

    def fresh_account(self) -> Account:
        """A new account of no tenant."""
        account = tenants.create_account(self.provider)
        self.people.append(account.user_id)
        return account

    def fingerprint(self) -> dict[str, str]:
        """What a request of the matrix could write."""
        return tenants.tables_fingerprint(self.provider, WHOLE_TABLES) | tenants.tenant_fingerprint(
            self.provider, self.tenant.id, user_ids=self.people)

    def fresh_role(self) -> uuid.UUID:
        """A new custom role nobody holds."""
        with self.provider.management() as session:
            row = iam.create_role(session, self.tenant.id, f"r_{secrets.token_hex(5)}",
                                  ["notifications:read"], granted_by=None)
            session.commit()
        return row.id

    def fresh_invitation(self) -> uuid.UUID:
        """A new pending invitation of the tenant."""
        with self.provider.management() as session:
            view, _ = iam.invite(session, self.tenant.id, email=refs.email("invitee"), role_name="employee",
                                 invited_by=self.tenant.member("owner").user_id, lifetime=timedelta(days=1))
            session.commit()
        return view.id


@dataclass(frozen=True)
class Call:
    """One concrete request."""

    method: str
    path: str
    json: Any = None
    form: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Protected:
    """A protected route: its permission, how to call it, and what a holder gets."""

    permission: str
    holder_status: int
    call: Callable[[Matrix], Call]


def _member_call(method: str, suffix: str, json: Any = None) -> Callable[[Matrix], Call]:
    return lambda m: Call(method, f"{MEMBERS}/{m.fresh_member().user_id}{suffix}", json)


def _account_call(action: str) -> Callable[[Matrix], Call]:
    return lambda m: Call("POST", f"/api/v1/operations/users/{m.fresh_account().user_id}/{action}")


# Grants in the calls below stay within what every users:manage holder holds (the custom
# member_manager role, the users:manage permission): granting more is an escalation,
# refused with 403 whatever the route (test_a_member_manager_cannot_grant_...).
PROTECTED: dict[tuple[str, str], Protected] = {
    # IAM: members, roles, invitations (users:manage)
    ("/api/v1/iam/members", "GET"): Protected("users:manage", 200, lambda m: Call("GET", MEMBERS)),
    ("/api/v1/iam/members/<uuid:user_id>", "GET"): Protected("users:manage", 200, _member_call("GET", "")),
    ("/api/v1/iam/members/<uuid:user_id>/roles", "PUT"): Protected(
        "users:manage", 200, _member_call("PUT", "/roles", {"roles": ["member_manager"]})),
    ("/api/v1/iam/members/<uuid:user_id>/deactivate", "POST"): Protected(
        "users:manage", 200, _member_call("POST", "/deactivate")),
    ("/api/v1/iam/members/<uuid:user_id>/reactivate", "POST"): Protected(
        "users:manage", 200, _member_call("POST", "/reactivate")),
    ("/api/v1/iam/members/<uuid:user_id>/cut-off", "POST"): Protected(
        "users:manage", 200, _member_call("POST", "/cut-off")),
    ("/api/v1/iam/roles", "GET"): Protected("users:manage", 200, lambda m: Call("GET", ROLES)),
    ("/api/v1/iam/roles", "POST"): Protected("users:manage", 201, lambda m: Call(
        "POST", ROLES, {"name": f"r_{secrets.token_hex(5)}", "permissions": ["users:manage"]})),
    ("/api/v1/iam/roles/<uuid:role_id>", "PUT"): Protected("users:manage", 200, lambda m: Call(
        "PUT", f"{ROLES}/{m.fresh_role()}", {"permissions": ["users:manage"]})),
    ("/api/v1/iam/roles/<uuid:role_id>", "DELETE"): Protected("users:manage", 204, lambda m: Call(
        "DELETE", f"{ROLES}/{m.fresh_role()}")),
    ("/api/v1/iam/invitations", "POST"): Protected("users:manage", 202, lambda m: Call(
        "POST", "/api/v1/iam/invitations", {"email": refs.email("invitee"), "role": "member_manager"})),
    ("/api/v1/iam/invitations/<uuid:invitation_id>", "GET"): Protected("users:manage", 200, lambda m: Call(
        "GET", f"/api/v1/iam/invitations/{m.fresh_invitation()}")),
    # IAM pages (cookie and CSRF; a holder's change is answered with 303 See Other)
    ("/iam/users", "GET"): Protected("users:manage", 200, lambda m: Call("GET", "/iam/users")),
    ("/iam/users/<uuid:user_id>/roles", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", f"/iam/users/{m.fresh_member().user_id}/roles", form={"roles": ["member_manager"]})),
    ("/iam/users/<uuid:user_id>/deactivate", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", f"/iam/users/{m.fresh_member().user_id}/deactivate")),
    ("/iam/users/<uuid:user_id>/reactivate", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", f"/iam/users/{m.fresh_member().user_id}/reactivate")),
    ("/iam/users/<uuid:user_id>/cut-off", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", f"/iam/users/{m.fresh_member().user_id}/cut-off")),
    ("/iam/users/invite", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", "/iam/users/invite", form={"email": refs.email("invitee"), "role": "member_manager"})),
    ("/iam/roles", "GET"): Protected("users:manage", 200, lambda m: Call("GET", "/iam/roles")),
    ("/iam/roles", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", "/iam/roles",
        form={"name": f"r_{secrets.token_hex(5)}", "permissions": ["users:manage"]})),
    ("/iam/roles/<uuid:role_id>/delete", "POST"): Protected("users:manage", 303, lambda m: Call(
        "POST", f"/iam/roles/{m.fresh_role()}/delete")),
    # Notifications
    ("/api/v1/notifications/notices", "GET"): Protected("notifications:read", 200, lambda m: Call(
        "GET", "/api/v1/notifications/notices")),
    # Operators (platform:operator), across tenants by design
    ("/api/v1/operations/messages", "GET"): Protected(OPERATOR, 200, lambda m: Call(
        "GET", "/api/v1/operations/messages?state=dead")),
    ("/api/v1/operations/messages/<path:database>/<uuid:message_id>/retry", "POST"): Protected(
        OPERATOR, 404,  # no such message: a holder gets past the permission check
        lambda m: Call("POST", f"/api/v1/operations/messages/management/{uuid.uuid4()}/retry")),
    ("/api/v1/operations/resellers", "POST"): Protected(OPERATOR, 201, lambda m: Call(
        "POST", "/api/v1/operations/resellers",
        {"name": f"Reseller {refs.slug()}", "admin_email": m.fresh_account().email})),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/reseller", "PUT"): Protected(OPERATOR, 204, lambda m: Call(
        "PUT", f"/api/v1/operations/tenants/{m.tenant.id}/reseller", {"reseller_id": None})),
    ("/api/v1/operations/users/<uuid:user_id>/cut-off", "POST"): Protected(
        OPERATOR, 200, _account_call("cut-off")),
    ("/api/v1/operations/users/<uuid:user_id>/deactivate", "POST"): Protected(
        OPERATOR, 200, _account_call("deactivate")),
    ("/api/v1/operations/users/<uuid:user_id>/reactivate", "POST"): Protected(
        OPERATOR, 200, _account_call("reactivate")),
    # Tenancy: promotion, export, offboarding (a holder gets past the check to the 404 of an
    # unknown tenant or job, so nothing is written)
    ("/api/v1/operations/tenants/<uuid:tenant_id>/promotions", "POST"): Protected(
        OPERATOR, 404, lambda m: Call("POST", f"/api/v1/operations/tenants/{uuid.uuid4()}/promotions")),
    ("/api/v1/operations/promotions/<uuid:promotion_id>", "GET"): Protected(
        OPERATOR, 404, lambda m: Call("GET", f"/api/v1/operations/promotions/{uuid.uuid4()}")),
    ("/api/v1/tenancy/promotion", "GET"): Protected(  # the tenant was never promoted
        "tenant:admin", 404, lambda m: Call("GET", "/api/v1/tenancy/promotion")),
    ("/tenancy/admin", "GET"): Protected("tenant:admin", 200, lambda m: Call("GET", "/tenancy/admin")),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/exports", "POST"): Protected(
        OPERATOR, 404, lambda m: Call("POST", f"/api/v1/operations/tenants/{uuid.uuid4()}/exports")),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/offboard", "POST"): Protected(
        OPERATOR, 404, lambda m: Call("POST", f"/api/v1/operations/tenants/{uuid.uuid4()}/offboard",
                                      {"confirm_slug": "x"})),
    ("/api/v1/operations/migrations", "GET"): Protected(
        OPERATOR, 200, lambda m: Call("GET", "/api/v1/operations/migrations")),
    # Purchases (a holder gets as far as the request's own checks; nothing is written)
    ("/api/v1/purchases/products", "GET"): Protected(
        BUY, 200, lambda m: Call("GET", "/api/v1/purchases/products")),
    ("/api/v1/purchases", "GET"): Protected(BUY, 200, lambda m: Call("GET", "/api/v1/purchases")),
    ("/api/v1/purchases", "POST"): Protected(BUY, 400, lambda m: Call(  # no Idempotency-Key
        "POST", "/api/v1/purchases", {"product_code": "no-such-product", "amount_minor": 100,
                                      "currency": "EUR", "card_number": "4242424242424242"})),
    ("/api/v1/purchases/<uuid:purchase_id>", "GET"): Protected(
        BUY, 404, lambda m: Call("GET", f"/api/v1/purchases/{uuid.uuid4()}")),
    ("/purchases/checkout", "GET"): Protected(BUY, 200, lambda m: Call("GET", "/purchases/checkout")),
    ("/purchases/checkout", "POST"): Protected(BUY, 422, lambda m: Call(
        "POST", "/purchases/checkout", form={"offer": "no-such-product|100|EUR",
                                             "card_number": "4242424242424242",
                                             "idempotency_key": secrets.token_hex(16)})),
    ("/purchases/<uuid:purchase_id>", "GET"): Protected(
        BUY, 404, lambda m: Call("GET", f"/purchases/{uuid.uuid4()}")),
    ("/api/v1/operations/products", "GET"): Protected(
        OPERATOR, 200, lambda m: Call("GET", "/api/v1/operations/products")),
    ("/api/v1/operations/suppressed-addresses", "GET"): Protected(
        OPERATOR, 200, lambda m: Call("GET", "/api/v1/operations/suppressed-addresses")),
    ("/api/v1/operations/suppressed-addresses/<address>", "GET"): Protected(
        OPERATOR, 404, lambda m: Call("GET", f"{SUPPRESSED}/nobody@example.com")),
    ("/api/v1/operations/suppressed-addresses/<address>", "DELETE"): Protected(
        OPERATOR, 404, lambda m: Call("DELETE", f"{SUPPRESSED}/nobody@example.com")),
    ("/api/v1/operations/products", "POST"): Protected(OPERATOR, 201, lambda m: Call(
        "POST", "/api/v1/operations/products",
        {"code": f"matrix-{secrets.token_hex(4)}", "name": "Matrix add-on", "kind": "addon", "plan": None,
         "price_minor": 100, "currency": "EUR"})),
    ("/api/v1/operations/products/<product_code>", "PATCH"): Protected(OPERATOR, 404, lambda m: Call(
        "PATCH", "/api/v1/operations/products/no-such-product", {"price_minor": 1})),
    ("/api/v1/operations/products/<product_code>/retire", "POST"): Protected(
        OPERATOR, 404, lambda m: Call("POST", "/api/v1/operations/products/no-such-product/retire")),
    ("/api/v1/operations/products/<product_code>/reactivate", "POST"): Protected(
        OPERATOR, 404, lambda m: Call("POST", "/api/v1/operations/products/no-such-product/reactivate")),
    ("/api/v1/operations/purchases/<uuid:purchase_id>", "GET"): Protected(OPERATOR, 404, lambda m: Call(
        "GET", f"/api/v1/operations/purchases/{uuid.uuid4()}")),
    ("/api/v1/operations/purchases/<uuid:purchase_id>/refund", "POST"): Protected(
        OPERATOR, 404, lambda m: Call("POST", f"/api/v1/operations/purchases/{uuid.uuid4()}/refund",
                                      {"reason": "matrix"})),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/ledger", "GET"): Protected(
        OPERATOR, 200, lambda m: Call("GET", f"/api/v1/operations/tenants/{m.tenant.id}/ledger")),
    # Publications (a holder gets past the check to the 404 of an unknown publication)
    (PUB, "GET"): Protected(PUBLISH, 200, lambda m: Call("GET", PUB)),
    (PUB, "POST"): Protected(PUBLISH, 201, lambda m: Call("POST", PUB, {"title": "Matrix"})),
    (f"{PUB}/<uuid:publication_id>", "GET"): Protected(PUBLISH, 404, lambda m: Call("GET", f"{PUB}/{_u()}")),
    (f"{PUB}/<uuid:publication_id>", "PUT"): Protected(
        PUBLISH, 404, lambda m: Call("PUT", f"{PUB}/{_u()}", {"title": "M"})),
    (f"{PUB}/<uuid:publication_id>", "DELETE"): Protected(
        PUBLISH, 404, lambda m: Call("DELETE", f"{PUB}/{_u()}")),
    (f"{PUB}/<uuid:publication_id>/sections", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"{PUB}/{_u()}/sections", {"heading": "M"})),
    (f"{PUB}/<uuid:publication_id>/sections/<uuid:section_id>", "PUT"): Protected(
        PUBLISH, 404, lambda m: Call("PUT", f"{PUB}/{_u()}/sections/{_u()}", {"heading": "M"})),
    (f"{PUB}/<uuid:publication_id>/sections/<uuid:section_id>", "DELETE"): Protected(
        PUBLISH, 404, lambda m: Call("DELETE", f"{PUB}/{_u()}/sections/{_u()}")),
    (f"{PUB}/<uuid:publication_id>/sections/order", "PUT"): Protected(
        PUBLISH, 404, lambda m: Call("PUT", f"{PUB}/{_u()}/sections/order", {"section_ids": []})),
    (f"{PUB}/<uuid:publication_id>/publish", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"{PUB}/{_u()}/publish", {})),
    (f"{PUB}/<uuid:publication_id>/unschedule", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"{PUB}/{_u()}/unschedule")),
    (f"{PUB}/received", "GET"): Protected(READ_PUB, 200, lambda m: Call("GET", f"{PUB}/received")),
    (f"{PUB}/received/<uuid:publication_id>", "GET"): Protected(
        READ_PUB, 404, lambda m: Call("GET", f"{PUB}/received/{_u()}")),
    (f"{PUB}/received/<uuid:publication_id>/attachments/<uuid:asset_id>", "GET"): Protected(
        READ_PUB, 404, lambda m: Call("GET", f"{PUB}/received/{_u()}/attachments/{_u()}")),
    ("/publications", "GET"): Protected(READ_PUB, 200, lambda m: Call("GET", "/publications")),
    ("/publications/<uuid:publication_id>", "GET"): Protected(
        READ_PUB, 404, lambda m: Call("GET", f"/publications/{_u()}")),
    ("/publications/<uuid:publication_id>/attachments/<uuid:asset_id>", "GET"): Protected(
        READ_PUB, 404, lambda m: Call("GET", f"/publications/{_u()}/attachments/{_u()}")),
    ("/publications/manage", "GET"): Protected(PUBLISH, 200, lambda m: Call("GET", "/publications/manage")),
    ("/publications/new", "GET"): Protected(PUBLISH, 200, lambda m: Call("GET", "/publications/new")),
    ("/publications", "POST"): Protected(PUBLISH, 303, lambda m: Call(
        "POST", "/publications", form={"title": "Matrix", "audience_kind": "everyone"})),
    ("/publications/<uuid:publication_id>/edit", "GET"): Protected(
        PUBLISH, 404, lambda m: Call("GET", f"/publications/{_u()}/edit")),
    ("/publications/<uuid:publication_id>/edit", "POST"): Protected(PUBLISH, 404, lambda m: Call(
        "POST", f"/publications/{_u()}/edit", form={"title": "M", "audience_kind": "everyone"})),
    ("/publications/<uuid:publication_id>/sections", "POST"): Protected(PUBLISH, 404, lambda m: Call(
        "POST", f"/publications/{_u()}/sections", form={"heading": "M"})),
    ("/publications/<uuid:publication_id>/sections/<uuid:section_id>", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"/publications/{_u()}/sections/{_u()}", form={"heading": "M"})),
    ("/publications/<uuid:publication_id>/sections/<uuid:section_id>/move", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"/publications/{_u()}/sections/{_u()}/move",
                                     form={"direction": "up"})),
    ("/publications/<uuid:publication_id>/sections/<uuid:section_id>/delete", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"/publications/{_u()}/sections/{_u()}/delete")),
    ("/publications/<uuid:publication_id>/publish", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"/publications/{_u()}/publish", form={})),
    ("/publications/<uuid:publication_id>/unschedule", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"/publications/{_u()}/unschedule")),
    ("/publications/<uuid:publication_id>/delete", "POST"): Protected(
        PUBLISH, 404, lambda m: Call("POST", f"/publications/{_u()}/delete")),
    # Assets (id routes: a holder gets past the check to the 404 of an unknown asset)
    ("/api/v1/assets", "GET"): Protected(UPLOAD, 200, lambda m: Call("GET", "/api/v1/assets")),
    ("/api/v1/assets", "POST"): Protected(  # no filename
        UPLOAD, 422, lambda m: Call("POST", "/api/v1/assets")),
    ("/api/v1/assets/uploads", "POST"): Protected(
        UPLOAD, 422, lambda m: Call("POST", "/api/v1/assets/uploads", {})),
    ("/api/v1/assets/<uuid:asset_id>", "GET"): Protected(
        UPLOAD, 404, lambda m: Call("GET", f"/api/v1/assets/{_u()}")),
    ("/api/v1/assets/<uuid:asset_id>", "DELETE"): Protected(
        UPLOAD, 404, lambda m: Call("DELETE", f"/api/v1/assets/{_u()}")),
    ("/api/v1/assets/<uuid:asset_id>/confirm", "POST"): Protected(
        UPLOAD, 404, lambda m: Call("POST", f"/api/v1/assets/{_u()}/confirm")),
    ("/api/v1/assets/<uuid:asset_id>/download", "GET"): Protected(
        UPLOAD, 404, lambda m: Call("GET", f"/api/v1/assets/{_u()}/download")),
    ("/api/v1/assets/usage", "GET"): Protected(ADMIN, 200, lambda m: Call("GET", "/api/v1/assets/usage")),
    ("/api/v1/assets/policy", "PUT"): Protected(
        ADMIN, 422, lambda m: Call("PUT", "/api/v1/assets/policy", {})),
    ("/api/v1/operations/tenants/<uuid:tenant_id>/asset-quota", "PUT"): Protected(
        OPERATOR, 404, lambda m: Call("PUT", f"/api/v1/operations/tenants/{_u()}/asset-quota",
                                      {"quota_bytes": 1})),
    ("/assets", "GET"): Protected(UPLOAD, 200, lambda m: Call("GET", "/assets")),
    ("/assets", "POST"): Protected(UPLOAD, 415, lambda m: Call("POST", "/assets", form={})),  # not multipart
    ("/assets/<uuid:asset_id>", "GET"): Protected(UPLOAD, 404, lambda m: Call("GET", f"/assets/{_u()}")),
    ("/assets/<uuid:asset_id>/delete", "POST"): Protected(
        UPLOAD, 404, lambda m: Call("POST", f"/assets/{_u()}/delete")),
    # Notifications and translations
    ("/api/v1/notifications/notices/unread-count", "GET"): Protected(
        READ_NOTICES, 200, lambda m: Call("GET", "/api/v1/notifications/notices/unread-count")),
    ("/api/v1/notifications/notices/<uuid:notice_id>/read", "POST"): Protected(
        READ_NOTICES, 404, lambda m: Call("POST", f"/api/v1/notifications/notices/{_u()}/read")),
    ("/api/v1/notifications/notices/read-all", "POST"): Protected(
        READ_NOTICES, 200, lambda m: Call("POST", "/api/v1/notifications/notices/read-all")),
    ("/api/v1/notifications/preferences", "GET"): Protected(
        READ_NOTICES, 200, lambda m: Call("GET", "/api/v1/notifications/preferences")),
    ("/api/v1/notifications/preferences", "PUT"): Protected(  # no change asked: the preferences back
        READ_NOTICES, 200, lambda m: Call("PUT", "/api/v1/notifications/preferences", {})),
    ("/api/v1/notifications/branding", "GET"): Protected(
        ADMIN, 200, lambda m: Call("GET", "/api/v1/notifications/branding")),
    ("/api/v1/notifications/branding", "PUT"): Protected(
        ADMIN, 422, lambda m: Call("PUT", "/api/v1/notifications/branding", {"nonsense": 1})),
    ("/notifications", "GET"): Protected(READ_NOTICES, 200, lambda m: Call("GET", "/notifications")),
    ("/notifications/unread-count", "GET"): Protected(
        READ_NOTICES, 200, lambda m: Call("GET", "/notifications/unread-count")),
    ("/notifications/<uuid:notice_id>/read", "POST"): Protected(
        READ_NOTICES, 404, lambda m: Call("POST", f"/notifications/{_u()}/read")),
    ("/notifications/read-all", "POST"): Protected(
        READ_NOTICES, 303, lambda m: Call("POST", "/notifications/read-all")),
    ("/notifications/preferences", "GET"): Protected(
        READ_NOTICES, 200, lambda m: Call("GET", "/notifications/preferences")),
    ("/notifications/preferences", "POST"): Protected(
        READ_NOTICES, 303, lambda m: Call("POST", "/notifications/preferences", form={})),
    ("/api/v1/translations/strings", "GET"): Protected(
        ADMIN, 200, lambda m: Call("GET", "/api/v1/translations/strings")),
    ("/api/v1/translations/overrides", "GET"): Protected(
        ADMIN, 200, lambda m: Call("GET", "/api/v1/translations/overrides")),
    ("/api/v1/translations/overrides", "PUT"): Protected(
        ADMIN, 422, lambda m: Call("PUT", "/api/v1/translations/overrides", {})),
    ("/api/v1/translations/overrides/<uuid:override_id>", "DELETE"): Protected(
        ADMIN, 404, lambda m: Call("DELETE", f"/api/v1/translations/overrides/{_u()}")),
    ("/translations/admin", "GET"): Protected(ADMIN, 200, lambda m: Call("GET", "/translations/admin")),
    ("/translations/admin", "POST"): Protected(
        ADMIN, 422, lambda m: Call("POST", "/translations/admin", form={})),
    ("/translations/admin/<uuid:override_id>/delete", "POST"): Protected(
        ADMIN, 404, lambda m: Call("POST", f"/translations/admin/{_u()}/delete")),
    # Employment (id routes: a holder gets past the check to the 404 of an unknown thing)
    ("/api/v1/employment/employees", "GET"): Protected(
        EMP_READ, 200, lambda m: Call("GET", "/api/v1/employment/employees")),
    ("/api/v1/employment/employees", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/api/v1/employment/employees", {})),
    ("/api/v1/employment/employees/<uuid:employee_id>", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/employees/{_u()}")),
    ("/api/v1/employment/employees/<uuid:employee_id>", "PUT"): Protected(
        EMP_WRITE, 404, lambda m: Call("PUT", f"/api/v1/employment/employees/{_u()}",
                                       {"name": "M", "work_email": "m@example.com"})),
    ("/api/v1/employment/employees/<uuid:employee_id>", "DELETE"): Protected(
        EMP_WRITE, 404, lambda m: Call("DELETE", f"/api/v1/employment/employees/{_u()}")),
    ("/api/v1/employment/job-types", "GET"): Protected(
        EMP_READ, 200, lambda m: Call("GET", "/api/v1/employment/job-types")),
    ("/api/v1/employment/job-types", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/api/v1/employment/job-types", {})),
    ("/api/v1/employment/job-types/<uuid:job_type_id>", "PUT"): Protected(
        EMP_WRITE, 404, lambda m: Call("PUT", f"/api/v1/employment/job-types/{_u()}", {"name": "M"})),
    ("/api/v1/employment/job-types/<uuid:job_type_id>", "DELETE"): Protected(
        EMP_WRITE, 404, lambda m: Call("DELETE", f"/api/v1/employment/job-types/{_u()}")),
    ("/api/v1/employment/org-units", "GET"): Protected(
        EMP_READ, 200, lambda m: Call("GET", "/api/v1/employment/org-units")),
    ("/api/v1/employment/org-units", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/api/v1/employment/org-units", {})),
    ("/api/v1/employment/org-units/<uuid:org_unit_id>", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/org-units/{_u()}")),
    ("/api/v1/employment/org-units/<uuid:org_unit_id>", "PUT"): Protected(
        EMP_WRITE, 404, lambda m: Call("PUT", f"/api/v1/employment/org-units/{_u()}", {"name": "M"})),
    ("/api/v1/employment/org-units/<uuid:org_unit_id>", "DELETE"): Protected(
        EMP_WRITE, 404, lambda m: Call("DELETE", f"/api/v1/employment/org-units/{_u()}")),
    ("/api/v1/employment/imports", "POST"): Protected(  # not multipart
        EMP_WRITE, 415, lambda m: Call("POST", "/api/v1/employment/imports")),
    ("/api/v1/employment/imports", "GET"): Protected(
        EMP_WRITE, 200, lambda m: Call("GET", "/api/v1/employment/imports")),
    ("/api/v1/employment/imports/<uuid:import_id>", "GET"): Protected(
        EMP_WRITE, 404, lambda m: Call("GET", f"/api/v1/employment/imports/{_u()}")),
    ("/employment/imports", "GET"): Protected(
        EMP_WRITE, 200, lambda m: Call("GET", "/employment/imports")),
    ("/employment/imports", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/employment/imports", form={})),
    ("/employment/imports/<uuid:import_id>", "GET"): Protected(
        EMP_WRITE, 404, lambda m: Call("GET", f"/employment/imports/{_u()}")),
    ("/employment/employees", "GET"): Protected(
        EMP_READ, 200, lambda m: Call("GET", "/employment/employees")),
    ("/employment/employees/new", "GET"): Protected(
        EMP_WRITE, 200, lambda m: Call("GET", "/employment/employees/new")),
    ("/employment/employees", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/employment/employees", form={})),
    ("/employment/employees/<uuid:employee_id>", "GET"): Protected(
        EMP_WRITE, 404, lambda m: Call("GET", f"/employment/employees/{_u()}")),
    ("/employment/employees/<uuid:employee_id>", "POST"): Protected(
        EMP_WRITE, 404, lambda m: Call("POST", f"/employment/employees/{_u()}", form={})),
    ("/employment/employees/<uuid:employee_id>/delete", "POST"): Protected(
        EMP_WRITE, 404, lambda m: Call("POST", f"/employment/employees/{_u()}/delete")),
    ("/employment/structure", "GET"): Protected(
        EMP_READ, 200, lambda m: Call("GET", "/employment/structure")),
    ("/employment/job-types", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/employment/job-types", form={})),
    ("/employment/job-types/<uuid:job_type_id>/delete", "POST"): Protected(
        EMP_WRITE, 404, lambda m: Call("POST", f"/employment/job-types/{_u()}/delete")),
    ("/employment/org-units", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/employment/org-units", form={})),
    ("/employment/org-units/<uuid:org_unit_id>", "GET"): Protected(
        EMP_WRITE, 404, lambda m: Call("GET", f"/employment/org-units/{_u()}")),
    ("/employment/org-units/<uuid:org_unit_id>", "POST"): Protected(
        EMP_WRITE, 404, lambda m: Call("POST", f"/employment/org-units/{_u()}", form={})),
    ("/employment/org-units/<uuid:org_unit_id>/delete", "POST"): Protected(
        EMP_WRITE, 404, lambda m: Call("POST", f"/employment/org-units/{_u()}/delete")),
    ("/employment/org-units/<uuid:org_unit_id>/chart", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/employment/org-units/{_u()}/chart")),
    ("/api/v1/employment/relations", "POST"): Protected(
        EMP_WRITE, 422, lambda m: Call("POST", "/api/v1/employment/relations", {})),
    ("/api/v1/employment/relations/<relation>/<uuid:from_id>/<uuid:to_id>", "DELETE"): Protected(
        EMP_WRITE, 404, lambda m: Call("DELETE", f"/api/v1/employment/relations/reports_to/{_u()}/{_u()}")),
    ("/api/v1/employment/employees/<uuid:employee_id>/relations", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/employees/{_u()}/relations")),
    ("/api/v1/employment/employees/<uuid:employee_id>/direct-reports", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/employees/{_u()}/direct-reports")),
    ("/api/v1/employment/employees/<uuid:employee_id>/chain", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/employees/{_u()}/chain")),
    ("/api/v1/employment/employees/<uuid:employee_id>/subordinates", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/employees/{_u()}/subordinates")),
    ("/api/v1/employment/org-units/<uuid:org_unit_id>/chart", "GET"): Protected(
        EMP_READ, 404, lambda m: Call("GET", f"/api/v1/employment/org-units/{_u()}/chart")),
    ("/api/v1/operations/exports/<uuid:export_id>", "GET"): Protected(
        OPERATOR, 404, lambda m: Call("GET", f"/api/v1/operations/exports/{uuid.uuid4()}")),
}

MEMBER_MANAGER = "member_manager"  # a custom role holding users:manage only
# What each principal holds (the operator's token is issued for no tenant).
PRINCIPALS: dict[str, frozenset[str]] = {
    **iam.BUILTIN_ROLES, MEMBER_MANAGER: frozenset({"users:manage"}), "operator": frozenset({OPERATOR})}


@pytest.fixture(scope="module")
def matrix(api: FlaskClient, provider: DataProvider, operator_token: str) -> Matrix:
    """A tenant with a member per built-in role and one holding the custom role, all signed in."""
    tenant = tenants.create_tenant(provider, prefix="matrix")
    owner = tenants.access_token(api, tenant.member("owner"))
    created = api.post(ROLES, json={"name": MEMBER_MANAGER, "permissions": ["users:manage"]},
                       headers=bearer(owner))
    assert created.status_code == 201
    manager = tenants.add_member(provider, tenant.id, "employee")
    granted = api.put(f"{MEMBERS}/{manager.user_id}/roles", json={"roles": [MEMBER_MANAGER]},
                      headers=bearer(owner))
    assert granted.status_code == 200 and granted.json["roles"] == [MEMBER_MANAGER]
    tokens = {role: tenants.access_token(api, tenant.member(role)) for role in iam.BUILTIN_ROLES}
    tokens[MEMBER_MANAGER] = tenants.access_token(api, manager)
    tokens["operator"] = operator_token
    return Matrix(provider, tenant, tokens, [*tenant.user_ids, manager.user_id])


def protected_views(app: Flask) -> dict[tuple[str, str], str]:
    """Every (rule, method) whose view requires a permission string, with that permission."""
    found: dict[tuple[str, str], str] = {}
    for rule in app.url_map.iter_rules():
        permission = getattr(app.view_functions[rule.endpoint], "required_permission", None)
        if isinstance(permission, str):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found[(rule.rule, method)] = permission
    return found


def test_the_table_covers_every_protected_view(app: Flask) -> None:
    views = protected_views(app)
    missing = sorted(set(views) - set(PROTECTED))
    assert not missing, "protected views missing from PROTECTED in test_permission_matrix.py: " + ", ".join(
        f"{method} {rule} (requires {views[(rule, method)]})" for rule, method in missing)
    stale = sorted(set(PROTECTED) - set(views))
    assert not stale, f"PROTECTED lists routes that are not protected views (any more): {stale}"
    wrong = {key: (row.permission, views[key]) for key, row in PROTECTED.items()
             if row.permission != views[key]}
    assert not wrong, f"(table, view) permission differ: {wrong}"


def test_the_vocabulary_and_the_built_in_roles_agree() -> None:
    # Built-in roles grant only known permissions; owner and admin hold all of them.
    for role, permissions in iam.BUILTIN_ROLES.items():
        assert permissions <= iam.PERMISSIONS, role
    assert iam.BUILTIN_ROLES["owner"] == iam.BUILTIN_ROLES["admin"] == iam.PERMISSIONS
    assert OPERATOR not in iam.PERMISSIONS


@pytest.mark.parametrize("route", list(PROTECTED), ids=[f"{m} {r}" for r, m in PROTECTED])
@pytest.mark.parametrize("principal", list(PRINCIPALS))
def test_a_principal_gets_through_exactly_when_it_holds_the_permission(
        app: Flask, matrix: Matrix, principal: str, route: tuple[str, str]) -> None:
    row = PROTECTED[route]
    call = row.call(matrix)
    endpoint = app.url_map.bind("localhost").match(call.path.split("?")[0], method=call.method)[0]
    assert [r.rule for r in app.url_map.iter_rules(endpoint)] == [route[0]], "the call reaches its route"
    client = app.test_client()
    before = matrix.fingerprint()
    response = call_as(client, app, call.method, call.path, matrix.tokens[principal], json=call.json,
                       form=call.form)
    if row.permission in PRINCIPALS[principal]:
        assert response.status_code == row.holder_status, response.get_data(as_text=True)[:300]
        assert "/identity/sign-in" not in response.headers.get("Location", ""), "sent to sign in"
    else:
        assert response.status_code == 403, response.get_data(as_text=True)[:300]
        assert tenants.changed(before, matrix.fingerprint()) == []


def test_a_member_manager_lists_members_and_nothing_more(api: FlaskClient, matrix: Matrix) -> None:
    token = matrix.tokens[MEMBER_MANAGER]
    me = api.get("/api/v1/iam/me", headers=bearer(token))
    assert me.status_code == 200 and me.json["permissions"] == ["users:manage"]
    listed = api.get(MEMBERS, headers=bearer(token))
    assert listed.status_code == 200
    assert {str(u) for u in matrix.tenant.user_ids} <= {m["user_id"] for m in listed.json["items"]}
    for path in ("/api/v1/notifications/notices", "/api/v1/operations/messages"):
        assert_refused(api.get(path, headers=bearer(token)), 403, None)


def test_operator_routes_admit_an_operator_and_refuse_a_tenant_owner(api: FlaskClient,
                                                                     matrix: Matrix) -> None:
    allowed = api.get("/api/v1/operations/messages?state=overdue", headers=bearer(matrix.tokens["operator"]))
    assert allowed.status_code == 200 and allowed.json["state"] == "overdue"
    refused = api.get("/api/v1/operations/messages", headers=bearer(matrix.tokens["owner"]))
    assert_refused(refused, 403, None)
    assert OPERATOR in refused.json["reason"]
    # And the operator is no tenant member: tenant routes want a tenant token.
    assert_refused(api.get(MEMBERS, headers=bearer(matrix.tokens["operator"])), 403, "tenant")


# --- granting more than one holds -----------------------------------------------------------

def _grant_owner_to_self(m: Matrix, manager: Account) -> Call:
    return Call("PUT", f"{MEMBERS}/{manager.user_id}/roles", {"roles": ["owner"]})


def _create_all_powerful_role(m: Matrix, manager: Account) -> Call:
    return Call("POST", ROLES, {"name": f"r_{secrets.token_hex(5)}", "permissions": sorted(iam.PERMISSIONS)})


def _invite_an_owner(m: Matrix, manager: Account) -> Call:
    return Call("POST", "/api/v1/iam/invitations", {"email": refs.email("accomplice"), "role": "owner"})


@pytest.mark.parametrize("escalation", [_grant_owner_to_self, _create_all_powerful_role, _invite_an_owner],
                         ids=["set own roles to owner", "create a role with every permission",
                              "invite an owner"])
def test_a_member_manager_cannot_grant_permissions_it_does_not_hold(
        api: FlaskClient, matrix: Matrix, escalation: Callable[[Matrix, Account], Call]) -> None:
    # users:manage must not be a path to tenant:admin: granting a role (or making one) with
    # permissions the granter lacks is refused, else "only users:manage" means "everything".
    manager = matrix.fresh_member()
    owner = tenants.access_token(api, matrix.tenant.member("owner"))
    assert api.put(f"{MEMBERS}/{manager.user_id}/roles", json={"roles": [MEMBER_MANAGER]},
                   headers=bearer(owner)).status_code == 200
    token = tenants.access_token(api, manager)
    call = escalation(matrix, manager)
    before = matrix.fingerprint()
    response = api.open(call.path, method=call.method, json=call.json, headers=bearer(token))
    assert response.status_code == 403, response.get_data(as_text=True)[:300]
    assert tenants.changed(before, matrix.fingerprint()) == []
    assert api.get("/api/v1/iam/me", headers=bearer(token)).json["permissions"] == ["users:manage"]
