"""What the IAM API and pages share: every change that alters what someone may do also
invalidates the tenant's cached decisions and, where someone loses access, cuts off their
sessions in that tenant."""
from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app, g

from domain.iam import invitations
from domain.iam import services as iam
from domain.iam.services import InvitationView, MemberRow, RoleRow
from domain.identity import services as identity
from web.auth import Caller, invalidate_permissions
from web.db import management_db, sealer
from web.identity.flows import sign_out_everywhere


def set_roles(caller: Caller, user_id: uuid.UUID, roles: list[str]) -> MemberRow:
    """Replace a member's roles in the caller's tenant."""
    tenant_id = _tenant(caller)
    row = iam.set_roles(management_db(), tenant_id, user_id, roles, granted_by=caller.user_id)
    invalidate_permissions(tenant_id)
    return row


def set_active(caller: Caller, user_id: uuid.UUID, active: bool) -> MemberRow:
    """Deactivate (cutting off their sessions in this tenant) or reactivate a member."""
    tenant_id, db = _tenant(caller), management_db()
    if not active:
        # The account's row before the member's standing, as a sign-in or an invitation's
        # acceptance takes them: the cut-off below needs it, and taken after the standing it
        # deadlocked with an acceptance under way.
        identity.locked_user(db, user_id, writes=True)
    row = iam.set_active(db, tenant_id, user_id, active, changed_by=caller.user_id)
    if not active:
        sign_out_everywhere(user_id, "deactivated by a tenant admin", tenant_id=tenant_id)
    invalidate_permissions(tenant_id)
    return row


def create_role(caller: Caller, name: str, permissions: list[str]) -> RoleRow:
    """A custom role in the caller's tenant, holding no more than the caller does."""
    return iam.create_role(management_db(), _tenant(caller), name, permissions,
                           granted_by=caller.user_id)


def update_role(caller: Caller, role_id: uuid.UUID, permissions: list[str]) -> RoleRow:
    """Replace a custom role's permissions; every holder is affected at once."""
    tenant_id = _tenant(caller)
    row = iam.update_role(management_db(), tenant_id, role_id, permissions, granted_by=caller.user_id)
    invalidate_permissions(tenant_id)
    return row


def delete_role(caller: Caller, role_id: uuid.UUID) -> None:
    """Delete a custom role nobody holds and no pending invitation offers."""
    tenant_id = _tenant(caller)
    iam.delete_role(management_db(), tenant_id, role_id)
    invalidate_permissions(tenant_id)


def cut_off(caller: Caller, user_id: uuid.UUID) -> int:
    """End every session a member has in the caller's tenant (one who holds no more than
    the caller does)."""
    tenant_id = _tenant(caller)
    iam.manageable_member(management_db(), tenant_id, user_id, managed_by=caller.user_id)
    return sign_out_everywhere(user_id, "cut off by a tenant admin", tenant_id=tenant_id)


def invite(caller: Caller, email: str, role: str) -> InvitationView:
    """Record an invitation and queue its email (notifications)."""
    lifetime = timedelta(days=current_app.extensions["allotment.settings"].invitation_days)
    return invitations.invite(management_db(), _tenant(caller), email=email, role_name=role,
                              invited_by=caller.user_id, actor_session_id=caller.session_id,
                              lifetime=lifetime, sealer=sealer(), correlation_id=g.get("request_id"))


def _tenant(caller: Caller) -> uuid.UUID:
    assert caller.tenant_id is not None  # the views require a tenant token
    return caller.tenant_id
