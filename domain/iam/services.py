"""Use cases of the IAM context."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.iam.models import Membership, Role

PERMISSIONS: frozenset[str] = frozenset({
    "purchases:create", "assets:upload", "employment:read", "employment:write",
    "publications:read", "publications:publish", "notifications:read", "users:manage",
    "tenant:admin",
})

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "owner": PERMISSIONS,
    "admin": PERMISSIONS,
    "hr_manager": frozenset({"employment:read", "employment:write", "publications:read",
                             "publications:publish", "notifications:read", "assets:upload"}),
    "employee": frozenset({"employment:read", "publications:read", "notifications:read",
                           "assets:upload"}),
}


def create_default_roles(session: Session, tenant_id: uuid.UUID) -> dict[str, Role]:
    """Create the built-in roles of a new tenant (idempotent)."""
    existing = {r.name: r for r in session.scalars(select(Role).where(Role.tenant_id == tenant_id))}
    for name, permissions in BUILTIN_ROLES.items():
        if name not in existing:
            role = Role(id=uuid.uuid4(), tenant_id=tenant_id, name=name,
                        permissions=sorted(permissions), builtin=True)
            session.add(role)
            existing[name] = role
    session.flush()
    return existing


def grant_role(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID, role_name: str) -> None:
    """Give ``user_id`` the role ``role_name`` in ``tenant_id``."""
    role = session.scalar(select(Role).where(Role.tenant_id == tenant_id, Role.name == role_name))
    if role is None:
        raise NotFound("no such role", field="role")
    if session.get(Membership, (user_id, tenant_id, role.id)) is None:
        session.add(Membership(user_id=user_id, tenant_id=tenant_id, role_id=role.id))
        session.flush()


def permissions_of(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID) -> frozenset[str]:
    """Every permission ``user_id`` holds in ``tenant_id`` (empty if not a member)."""
    rows = session.scalars(
        select(Role.permissions).join(Membership, Membership.role_id == Role.id)
        .where(Membership.user_id == user_id, Membership.tenant_id == tenant_id)
    )
    return frozenset(p for perms in rows for p in perms)



def is_member(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    """True if ``user_id`` holds any role in ``tenant_id``."""
    return session.scalar(select(Membership.role_id).where(
        Membership.user_id == user_id, Membership.tenant_id == tenant_id).limit(1)) is not None
