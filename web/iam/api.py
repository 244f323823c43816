"""JSON API of the IAM context: members and their roles, custom roles, invitations,
my permissions, and the tenants of a reseller."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import g, jsonify
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from domain.iam import services as iam
from domain.iam.services import MemberRow, RoleRow
from domain.identity import services as identity
from domain.tenancy import queries as tenancy_queries
from web.api import PlainText, accepted, parse_json
from web.auth import requires
from web.db import management_db
from web.errors import ApiError
from web.iam import bp, flows
from web.openapi import doc
from web.ratelimit import limit_invitations

ROLE = r"^[a-z][a-z0-9_]{1,59}$"


class MemberOut(BaseModel):
    """A member of the tenant."""

    user_id: uuid.UUID
    email: str
    name: str
    active: bool
    roles: list[str]


class MemberList(BaseModel):
    """Every member of the tenant."""

    items: list[MemberOut]


class RolesBody(BaseModel):
    """The roles a member should hold (replaces the current ones)."""

    model_config = ConfigDict(extra="forbid")

    roles: list[PlainText] = Field(min_length=1, max_length=20)


class RoleBody(BaseModel):
    """A custom role: a name and permissions from the vocabulary."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=ROLE)
    permissions: list[str] = Field(min_length=1, max_length=50)


class PermissionsBody(BaseModel):
    """A custom role's new permissions."""

    model_config = ConfigDict(extra="forbid")

    permissions: list[str] = Field(min_length=1, max_length=50)


class RoleOut(BaseModel):
    """A role of the tenant."""

    id: uuid.UUID
    name: str
    permissions: list[str]
    builtin: bool


class RoleList(BaseModel):
    """The tenant's roles, built-in first."""

    items: list[RoleOut]


class InviteBody(BaseModel):
    """Whom to invite, with which role."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr
    role: str = Field(pattern=ROLE)


class InvitationOut(BaseModel):
    """An invitation on its way (the email goes out through the notifications queue)."""

    id: uuid.UUID
    email: str
    role: str
    expires_at: datetime


class MeOut(BaseModel):
    """Who I am here and what I may do."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    permissions: list[str]


class CutOffOut(BaseModel):
    """How many sessions were ended."""

    revoked: int


class ResellerTenant(BaseModel):
    """A tenant a reseller sold."""

    id: uuid.UUID
    slug: str
    name: str
    plan: str


class ResellerTenantList(BaseModel):
    """The tenants of one reseller."""

    items: list[ResellerTenant]


def _member_out(rows: list[MemberRow]) -> list[MemberOut]:
    users = identity.users_by_id(management_db(), [r.user_id for r in rows])
    return [MemberOut(user_id=r.user_id, email=users[r.user_id].email, name=users[r.user_id].name,
                      active=r.active, roles=r.roles) for r in rows if r.user_id in users]


def _member_json(row: MemberRow) -> Any:
    return jsonify(_member_out([row])[0].model_dump(mode="json"))


def _role_out(row: RoleRow) -> RoleOut:
    return RoleOut(id=row.id, name=row.name, permissions=row.permissions, builtin=row.builtin)


@bp.get("/api/v1/iam/me")
@requires(None)
@doc("My permissions in the token's tenant", responses={200: MeOut}, auth=True)
def me() -> Any:
    """The caller and what IAM lets them do in their tenant."""
    caller = g.caller
    return jsonify(MeOut(user_id=caller.user_id, tenant_id=caller.tenant_id,
                         permissions=sorted(caller.access.permissions)).model_dump(mode="json"))


@bp.get("/api/v1/iam/members")
@requires("users:manage")
@doc("List the tenant's members", responses={200: MemberList}, auth=True)
def list_members() -> Any:
    """Every member with standing and roles."""
    rows = iam.list_members(management_db(), g.caller.tenant_id)
    return jsonify(MemberList(items=_member_out(rows)).model_dump(mode="json"))


@bp.get("/api/v1/iam/members/<uuid:user_id>")
@requires("users:manage")
@doc("Read one member", responses={200: MemberOut, 404: "not a member of this tenant"}, auth=True)
def get_member(user_id: uuid.UUID) -> Any:
    """One member of the caller's tenant."""
    return _member_json(iam.member(management_db(), g.caller.tenant_id, user_id))


@bp.put("/api/v1/iam/members/<uuid:user_id>/roles")
@requires("users:manage")
@doc("Set a member's roles", body=RolesBody, responses={200: MemberOut}, auth=True)
def set_roles(user_id: uuid.UUID) -> Any:
    """Replace the member's roles; decisions cached anywhere are invalidated."""
    body = parse_json(RolesBody)
    return _member_json(flows.set_roles(g.caller, user_id, body.roles))


@bp.post("/api/v1/iam/members/<uuid:user_id>/deactivate")
@requires("users:manage")
@doc("Deactivate a member (their tokens for this tenant stop working)",
     responses={200: MemberOut}, auth=True)
def deactivate_member(user_id: uuid.UUID) -> Any:
    """The member keeps their roles but may do nothing here until reactivated."""
    return _member_json(flows.set_active(g.caller, user_id, False))


@bp.post("/api/v1/iam/members/<uuid:user_id>/reactivate")
@requires("users:manage")
@doc("Reactivate a member", responses={200: MemberOut}, auth=True)
def reactivate_member(user_id: uuid.UUID) -> Any:
    """Give a deactivated member their roles back."""
    return _member_json(flows.set_active(g.caller, user_id, True))


@bp.post("/api/v1/iam/members/<uuid:user_id>/cut-off")
@requires("users:manage")
@doc("Cut a member off: every token they hold for this tenant is refused",
     responses={200: CutOffOut}, auth=True)
def cut_off_member(user_id: uuid.UUID) -> Any:
    """End the member's sessions in this tenant; they may sign in again."""
    return jsonify(CutOffOut(revoked=flows.cut_off(g.caller, user_id)).model_dump())


@bp.get("/api/v1/iam/roles")
@requires("users:manage")
@doc("List the tenant's roles", responses={200: RoleList}, auth=True)
def list_roles() -> Any:
    """Built-in and custom roles with their permissions."""
    rows = iam.list_roles(management_db(), g.caller.tenant_id)
    return jsonify(RoleList(items=[_role_out(r) for r in rows]).model_dump(mode="json"))


@bp.post("/api/v1/iam/roles")
@requires("users:manage")
@doc("Create a custom role", body=RoleBody, responses={201: RoleOut, 409: "name taken"}, auth=True)
def create_role() -> Any:
    """A role from the fixed permission vocabulary."""
    body = parse_json(RoleBody)
    row = flows.create_role(g.caller, body.name, body.permissions)
    return jsonify(_role_out(row).model_dump(mode="json")), 201


@bp.put("/api/v1/iam/roles/<uuid:role_id>")
@requires("users:manage")
@doc("Change a custom role's permissions", body=PermissionsBody, responses={200: RoleOut}, auth=True)
def update_role(role_id: uuid.UUID) -> Any:
    """Replace the permissions; members holding the role are affected at once."""
    body = parse_json(PermissionsBody)
    row = flows.update_role(g.caller, role_id, body.permissions)
    return jsonify(_role_out(row).model_dump(mode="json"))


@bp.delete("/api/v1/iam/roles/<uuid:role_id>")
@requires("users:manage")
@doc("Delete a custom role nobody holds", auth=True,
     responses={204: "deleted (with its accepted and expired invitations)",
                409: "still held, or offered by a pending invitation"})
def delete_role(role_id: uuid.UUID) -> Any:
    """Remove the role."""
    flows.delete_role(g.caller, role_id)
    return "", 204


@bp.post("/api/v1/iam/invitations")
@requires("users:manage")
@limit_invitations
@doc("Invite someone by email", body=InviteBody, auth=True,
     responses={202: InvitationOut, 403: "the inviter's own address is not verified, or the role "
                                         "holds more than the inviter does"})
def invite() -> Any:
    """Record the invitation; the notifications worker emails the link."""
    body = parse_json(InviteBody)
    view = flows.invite(g.caller, str(body.email), body.role)
    out = InvitationOut(id=view.id, email=view.email, role=view.role, expires_at=view.expires_at)
    return accepted(f"/api/v1/iam/invitations/{view.id}", **out.model_dump(mode="json"))


class InvitationStatusOut(InvitationOut):
    """An invitation and where it stands."""

    status: str
    accepted_at: datetime | None


@bp.get("/api/v1/iam/invitations/<uuid:invitation_id>")
@requires("users:manage")
@doc("Where an invitation stands", responses={200: InvitationStatusOut}, auth=True)
def invitation_status(invitation_id: uuid.UUID) -> Any:
    """pending, accepted or expired."""
    row = iam.invitation_status(management_db(), g.caller.tenant_id, invitation_id)
    return jsonify(InvitationStatusOut(id=row.id, email=row.email, role=row.role,
                                       expires_at=row.expires_at, accepted_at=row.accepted_at,
                                       status=row.status).model_dump(mode="json"))


@bp.get("/api/v1/iam/resellers/<uuid:reseller_id>/tenants")
@requires(None, tenant=False)
@doc("The tenants of a reseller I administer", responses={200: ResellerTenantList}, auth=True)
def reseller_tenants(reseller_id: uuid.UUID) -> Any:
    """A reseller admin sees the tenants whose subscriptions they manage."""
    db = management_db()
    if reseller_id not in iam.resellers_administered_by(db, g.caller.user_id):
        raise ApiError(404, "not_found", "no such reseller", "reseller_id")
    rows = tenancy_queries.tenants_of_reseller(db, reseller_id)
    items = [ResellerTenant(id=i, slug=s, name=n, plan=p) for i, s, n, p in rows]
    return jsonify(ResellerTenantList(items=items).model_dump(mode="json"))
