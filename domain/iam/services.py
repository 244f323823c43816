"""Use cases of the IAM context: roles, memberships, deactivation, invitations.

Every change here alters what someone may do: the caller invalidates the tenant's
cached decisions after it commits (``access.PermissionCache.invalidate``) and, where a
user loses access, revokes their sessions (identity).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ARRAY, Uuid, any_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from domain import links
from domain.db.base import utcnow
from domain.db.sql import Read, Sql
from domain.errors import Conflict, DomainError, Forbidden, NotFound
from domain.iam.access import resolve
from domain.iam.models import Invitation, Membership, Reseller, ResellerAdmin, Role, TenantUser

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
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{1,59}$")


class InvalidInput(DomainError):
    """A value the use case cannot accept (422, names the field)."""

    status = 422


class Escalation(DomainError):
    """A grant of more than the granter holds (403)."""

    status = 403


def _check_grant(session: Session, tenant_id: uuid.UUID, granter: uuid.UUID | None,
                 permissions: frozenset[str], *, roles: set[str], field: str) -> None:
    """Nobody grants what they do not hold; only an owner grants or takes the owner role.

    ``granter=None`` is the platform itself (provisioning, tools), which is not checked.
    """
    if granter is None:
        return
    refusal = _grant_refusal(session, tenant_id, granter, permissions, roles=roles)
    if refusal:
        raise Escalation(refusal, field=field)


def _grant_refusal(session: Session, tenant_id: uuid.UUID, granter: uuid.UUID,
                   permissions: frozenset[str], *, roles: set[str]) -> str | None:
    """Why ``granter`` may not grant ``permissions`` (and the owner role, if in ``roles``)."""
    held = resolve(session, granter, tenant_id)
    extra = sorted(permissions - held.permissions) if held.member else sorted(permissions)
    if extra:
        return f"you cannot grant {extra[0]!r}, which you do not hold"
    if "owner" in roles and "owner" not in _role_names(session, tenant_id, granter):
        return "only an owner can grant or take the owner role"
    return None


def _check_outranked(session: Session, tenant_id: uuid.UUID, changer: uuid.UUID | None,
                     user_id: uuid.UUID) -> None:
    """Nobody changes the roles or standing of a member who holds a permission they do not
    (a user manager cannot strip, deactivate or cut off an admin). The member's roles count
    whatever their standing: a lesser manager does not bring back a deactivated admin either."""
    if changer is None:
        return
    theirs = frozenset(p for perms in session.scalars(
        select(Role.permissions).join(Membership, Membership.role_id == Role.id)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)) for p in perms)
    held = resolve(session, changer, tenant_id)
    extra = sorted(theirs - held.permissions) if held.member else sorted(theirs)
    if extra:
        raise Escalation(f"this member holds {extra[0]!r}, which you do not: only someone holding every "
                         "permission they hold may change their roles or standing", field="user_id")


def _role_names(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    return list(session.scalars(select(Role.name).join(Membership, Membership.role_id == Role.id)
                                .where(Membership.tenant_id == tenant_id,
                                       Membership.user_id == user_id).order_by(Role.name)))


@dataclass(frozen=True)
class RoleRow:
    """A role as the API and the roles page show it."""

    id: uuid.UUID
    name: str
    permissions: list[str]
    builtin: bool


@dataclass(frozen=True)
class MemberRow:
    """A member of a tenant: standing and role names (names and emails come from identity)."""

    user_id: uuid.UUID
    active: bool
    roles: list[str]


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


def _role_named(session: Session, tenant_id: uuid.UUID, name: str, field: str = "roles") -> Role:
    # FOR KEY SHARE until the transaction ends, as the foreign key of the membership or
    # invitation about to be written would take it: a ``delete_role`` that locked the role
    # first is waited for (and the role then found gone, 404), one that comes after waits for
    # this transaction and then sees what it wrote.
    role = session.scalar(select(Role).where(Role.tenant_id == tenant_id, Role.name == name)
                          .with_for_update(read=True, key_share=True))
    if role is None:
        raise NotFound(f"no role named {name!r}", field=field)
    return role


def _ensure_member(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    if session.get(TenantUser, (tenant_id, user_id)) is None:
        session.add(TenantUser(tenant_id=tenant_id, user_id=user_id, active=True))
        session.flush()


def grant_role(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID, role_name: str) -> None:
    """Give ``user_id`` the role ``role_name`` in ``tenant_id`` (making them a member)."""
    role = _role_named(session, tenant_id, role_name)
    _ensure_member(session, tenant_id, user_id)
    if session.get(Membership, (user_id, tenant_id, role.id)) is None:
        session.add(Membership(user_id=user_id, tenant_id=tenant_id, role_id=role.id))
        session.flush()


def is_member(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    """True if ``user_id`` is an active member of ``tenant_id``."""
    return bool(session.scalar(select(TenantUser.active).where(
        TenantUser.tenant_id == tenant_id, TenantUser.user_id == user_id)))


# Built once: every notification of a tenant checks its recipients with it.
_ACTIVE_MEMBERS = Sql(select(TenantUser.user_id).where(
    TenantUser.tenant_id == bindparam("tenant", type_=Uuid()),
    TenantUser.user_id == any_(bindparam("ids", type_=ARRAY(Uuid()))),
    TenantUser.active.is_(True)))


def active_members_read(tenant_id: uuid.UUID, user_ids: list[uuid.UUID]) -> Read[set[uuid.UUID]]:
    """Which of ``user_ids`` are active members of ``tenant_id``, as a read to make with others
    in one round trip (``read_together``)."""
    return Read(_ACTIVE_MEMBERS, {"tenant": tenant_id, "ids": list(user_ids)},
                lambda rows: {row[0] for row in rows})


def tenants_of(session: Session, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The tenants ``user_id`` is an active member of."""
    return list(session.scalars(select(TenantUser.tenant_id).where(
        TenantUser.user_id == user_id, TenantUser.active.is_(True))))


# --- roles -----------------------------------------------------------------------------

def _checked_permissions(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - PERMISSIONS)
    if unknown:
        raise InvalidInput(f"unknown permission {unknown[0]!r}; known: {', '.join(sorted(PERMISSIONS))}",
                           field="permissions")
    if not permissions:
        raise InvalidInput("a role needs at least one permission", field="permissions")
    return sorted(set(permissions))


def list_roles(session: Session, tenant_id: uuid.UUID) -> list[RoleRow]:
    """The tenant's roles, built-in first."""
    rows = session.scalars(select(Role).where(Role.tenant_id == tenant_id)
                           .order_by(Role.builtin.desc(), Role.name))
    return [RoleRow(r.id, r.name, list(r.permissions), r.builtin) for r in rows]


def create_role(session: Session, tenant_id: uuid.UUID, name: str, permissions: list[str], *,
                granted_by: uuid.UUID | None) -> RoleRow:
    """A custom role from the fixed permission vocabulary (no more than its creator holds)."""
    if not ROLE_NAME.fullmatch(name):
        raise InvalidInput("lower-case letters, digits and _; 2-60 characters", field="name")
    perms = _checked_permissions(permissions)
    _check_grant(session, tenant_id, granted_by, frozenset(perms), roles=set(), field="permissions")
    if session.scalar(select(Role.id).where(Role.tenant_id == tenant_id, Role.name == name)):
        raise Conflict("a role with this name exists", field="name")
    role = Role(id=uuid.uuid4(), tenant_id=tenant_id, name=name, permissions=perms, builtin=False)
    session.add(role)
    session.flush()
    return RoleRow(role.id, role.name, perms, False)


def _custom_role(session: Session, tenant_id: uuid.UUID, role_id: uuid.UUID, *, lock: bool = False) -> Role:
    query = select(Role).where(Role.id == role_id, Role.tenant_id == tenant_id)
    if lock:  # FOR UPDATE: grants and invitations being written with the role are waited for
        query = query.with_for_update()
    role = session.scalar(query)
    if role is None:
        raise NotFound("no such role", field="role_id")
    if role.builtin:
        raise Conflict("built-in roles cannot be changed", field="role_id")
    return role


def update_role(session: Session, tenant_id: uuid.UUID, role_id: uuid.UUID,
                permissions: list[str], *, granted_by: uuid.UUID | None) -> RoleRow:
    """Replace a custom role's permissions (no more than the changer holds)."""
    role = _custom_role(session, tenant_id, role_id)
    perms = _checked_permissions(permissions)
    _check_grant(session, tenant_id, granted_by, frozenset(perms), roles=set(), field="permissions")
    role.permissions = perms
    session.flush()
    return RoleRow(role.id, role.name, list(role.permissions), False)


def delete_role(session: Session, tenant_id: uuid.UUID, role_id: uuid.UUID) -> None:
    """Delete a custom role nobody holds and no pending invitation offers. Its spent
    invitations (accepted or expired) go with it: they can grant nothing any more, and an
    accepted one's effect is the membership it made."""
    role = _custom_role(session, tenant_id, role_id, lock=True)
    held = session.scalar(select(func.count()).select_from(Membership)
                          .where(Membership.role_id == role.id))
    if held:
        raise Conflict(f"{held} member(s) hold this role; take it from them first", field="role_id")
    pending = session.scalar(select(func.count()).select_from(Invitation).where(
        Invitation.role_id == role.id, Invitation.accepted_at.is_(None), Invitation.expires_at > utcnow()))
    if pending:
        raise Conflict(f"{pending} pending invitation(s) offer this role; it can be deleted once they "
                       "are accepted or expire", field="role_id")
    session.execute(delete(Invitation).where(Invitation.role_id == role.id))
    session.delete(role)
    session.flush()


# --- members ---------------------------------------------------------------------------

def list_members(session: Session, tenant_id: uuid.UUID) -> list[MemberRow]:
    """Every member of the tenant with their role names."""
    standing = dict(session.execute(select(TenantUser.user_id, TenantUser.active)
                                    .where(TenantUser.tenant_id == tenant_id)).all())
    roles: dict[uuid.UUID, list[str]] = {uid: [] for uid in standing}
    for user_id, name in session.execute(
            select(Membership.user_id, Role.name).join(Role, Role.id == Membership.role_id)
            .where(Membership.tenant_id == tenant_id).order_by(Role.name)):
        roles.setdefault(user_id, []).append(name)
    return [MemberRow(uid, active, roles.get(uid, [])) for uid, active in standing.items()]


def member(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> MemberRow:
    """One member of the tenant; NotFound for anyone else (whatever tenant they are in)."""
    row = session.get(TenantUser, (tenant_id, user_id))
    if row is None:
        raise NotFound("no such user in this tenant", field="user_id")
    return MemberRow(user_id, row.active, _role_names(session, tenant_id, user_id))


def _locked_member(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> MemberRow:
    """``member``, its standing row locked (FOR NO KEY UPDATE) until the transaction ends:
    changes to one member's roles or standing queue there, so a request submitted twice
    finds what the first one did instead of colliding with it."""
    row = session.scalar(select(TenantUser).where(TenantUser.tenant_id == tenant_id,
                                                  TenantUser.user_id == user_id)
                         .with_for_update(key_share=True).execution_options(populate_existing=True))
    if row is None:
        raise NotFound("no such user in this tenant", field="user_id")
    return MemberRow(user_id, row.active, _role_names(session, tenant_id, user_id))


def _lock_owners(session: Session, tenant_id: uuid.UUID) -> None:
    """Hold the tenant's built-in owner role (FOR NO KEY UPDATE) until the transaction ends.
    Every change that can leave the tenant with fewer active owners takes it before counting
    them, so two at once queue and the second counts what the first did (each would otherwise
    count the other's owner). Grants and invitations only take FOR KEY SHARE on the role:
    they are not held up."""
    session.execute(select(Role.id).where(Role.tenant_id == tenant_id, Role.name == "owner",
                                          Role.builtin.is_(True)).with_for_update(key_share=True))


def _owners(session: Session, tenant_id: uuid.UUID, excluding: uuid.UUID) -> int:
    """Active owners of the tenant other than ``excluding`` (count under ``_lock_owners``)."""
    return session.scalar(
        select(func.count()).select_from(Membership)
        .join(Role, Role.id == Membership.role_id)
        .join(TenantUser, (TenantUser.tenant_id == Membership.tenant_id)
              & (TenantUser.user_id == Membership.user_id))
        .where(Membership.tenant_id == tenant_id, Role.name == "owner", Role.builtin.is_(True),
               TenantUser.active.is_(True), Membership.user_id != excluding)) or 0


def set_roles(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID,
              role_names: list[str], *, granted_by: uuid.UUID | None) -> MemberRow:
    """Replace a member's roles; the tenant always keeps an active owner, nobody grants more
    than they hold, and nobody changes a member who holds more than they do."""
    current = _locked_member(session, tenant_id, user_id)
    if not role_names:
        raise InvalidInput("a member needs at least one role", field="roles")
    _check_outranked(session, tenant_id, granted_by, user_id)
    wanted = {name: _role_named(session, tenant_id, name) for name in dict.fromkeys(role_names)}
    granted = frozenset(p for role in wanted.values() for p in role.permissions)
    owner_change = {"owner"} if ("owner" in wanted) != ("owner" in current.roles) else set()
    _check_grant(session, tenant_id, granted_by, granted, roles=owner_change, field="roles")
    if "owner" in current.roles and "owner" not in wanted:
        _lock_owners(session, tenant_id)
        if not _owners(session, tenant_id, user_id):
            raise Conflict("the tenant's last owner cannot give up the owner role", field="roles")
    session.execute(delete(Membership).where(Membership.tenant_id == tenant_id,
                                             Membership.user_id == user_id))
    for role in wanted.values():
        session.add(Membership(user_id=user_id, tenant_id=tenant_id, role_id=role.id))
    session.flush()
    return member(session, tenant_id, user_id)


def set_active(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID, active: bool, *,
               changed_by: uuid.UUID | None) -> MemberRow:
    """Deactivate (or reactivate) a member; nobody deactivates themselves or changes a
    member who holds more than they do, the tenant always keeps an active owner, and only an
    owner changes an owner's standing."""
    if not active and user_id == changed_by:
        raise Conflict("you cannot deactivate yourself", field="user_id")
    current = _locked_member(session, tenant_id, user_id)
    _check_outranked(session, tenant_id, changed_by, user_id)
    if "owner" in current.roles:
        _check_grant(session, tenant_id, changed_by, frozenset(), roles={"owner"}, field="user_id")
    if not active and "owner" in current.roles:
        _lock_owners(session, tenant_id)
        if not _owners(session, tenant_id, user_id):
            raise Conflict("the tenant's last owner cannot be deactivated", field="user_id")
    session.execute(update(TenantUser).where(TenantUser.tenant_id == tenant_id,
                                             TenantUser.user_id == user_id).values(active=active))
    return member(session, tenant_id, user_id)


def manageable_member(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID, *,
                      managed_by: uuid.UUID | None) -> MemberRow:
    """The member, if ``managed_by`` may act on their standing (cut off their sessions):
    NotFound for anyone else's user, Escalation (403) for a member who holds more."""
    row = member(session, tenant_id, user_id)
    _check_outranked(session, tenant_id, managed_by, user_id)
    return row


# --- invitations -----------------------------------------------------------------------

@dataclass(frozen=True)
class InvitationView:
    """A live invitation as the accept page shows it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str
    expires_at: datetime


def invite(session: Session, tenant_id: uuid.UUID, *, email: str, role_name: str,
           invited_by: uuid.UUID, lifetime: timedelta) -> tuple[InvitationView, str]:
    """Record an invitation; return it and its token (which only the email carries).
    Nobody invites with a role that holds more than they do."""
    role = _role_named(session, tenant_id, role_name, field="role")
    _check_grant(session, tenant_id, invited_by, frozenset(role.permissions),
                 roles={role.name} & {"owner"}, field="role")
    token = links.new_token()
    row = Invitation(id=uuid.uuid4(), tenant_id=tenant_id, email=email, role_id=role.id,
                     token_hash=links.token_hash(token), invited_by=invited_by,
                     expires_at=utcnow() + lifetime)
    session.add(row)
    session.flush()
    return InvitationView(row.id, tenant_id, email, role.name, row.expires_at), token


def invitation(session: Session, token: str, *, lock: bool = False) -> InvitationView:
    """The live invitation behind ``token``; NotFound if unknown, used or expired.

    ``lock`` holds the row until the transaction ends, so that concurrent accepts queue
    behind the first one and then find it used.
    """
    query = (select(Invitation, Role.name).join(Role, Role.id == Invitation.role_id)
             .where(Invitation.token_hash == links.token_hash(token)))
    if lock:
        query = query.with_for_update(of=Invitation)
    row = session.execute(query).one_or_none()
    if row is None or row[0].accepted_at is not None or row[0].expires_at <= utcnow():
        raise NotFound("this invitation is unknown, already used or expired", field="token")
    inv, role = row
    return InvitationView(inv.id, inv.tenant_id, inv.email, role, inv.expires_at)


def accept(session: Session, token: str, user_id: uuid.UUID) -> InvitationView:
    """Use the invitation once: the user joins the tenant with the invited role.

    Refused if its inviter may no longer grant that role (deactivated, demoted, no longer a
    user manager: 403), or if the user is deactivated in the tenant (409): an invitation
    never undoes a deactivation, which only an admin's reactivation does."""
    view = invitation(session, token)
    used = session.execute(
        update(Invitation).where(Invitation.id == view.id, Invitation.accepted_at.is_(None),
                                 Invitation.expires_at > utcnow())
        .values(accepted_at=utcnow(), accepted_by=user_id)
        .returning(Invitation.invited_by, Invitation.role_id)).first()
    if used is None:  # someone else used it between the read and the update
        raise NotFound("this invitation is unknown, already used or expired", field="token")
    standing = _lock_standings(session, view.tenant_id, inviter=used.invited_by, acceptor=user_id)
    _check_inviter(session, view.tenant_id, used.invited_by, used.role_id)
    if standing is False:
        raise Conflict("you are deactivated in this tenant, which an invitation does not undo: "
                       "ask one of its admins to reactivate you", field="token")
    grant_role(session, user_id, view.tenant_id, view.role)
    return view


def _lock_standings(session: Session, tenant_id: uuid.UUID, *, inviter: uuid.UUID,
                    acceptor: uuid.UUID) -> bool | None:
    """Lock the standing rows an acceptance depends on until the transaction ends, in
    ``user_id`` order; the acceptor's standing (None: not a member yet).

    The inviter's row is read FOR SHARE, so a change of their roles or standing under way
    (``_locked_member`` holds the row) is waited for and seen, while acceptances of their
    other invitations are not held up; the acceptor's FOR NO KEY UPDATE, so a deactivation
    under way is waited for and two acceptances of theirs queue. This is the only place that
    locks two members' rows: taken in one order, two members accepting each other's
    invitations at once queue instead of each holding the row the other wants (a deadlock)."""
    standing = None
    for user_id in sorted({inviter, acceptor}):
        writes = user_id == acceptor
        active = session.scalar(select(TenantUser.active).where(
            TenantUser.tenant_id == tenant_id, TenantUser.user_id == user_id)
            .with_for_update(read=not writes, key_share=writes))
        if writes:
            standing = active
    return standing


def _check_inviter(session: Session, tenant_id: uuid.UUID, invited_by: uuid.UUID, role_id: uuid.UUID) -> None:
    """The inviter's authority, checked again when the invitation is used (their standing row
    locked by ``_lock_standings``): still an active user manager who may grant the role."""
    role = session.get(Role, role_id)
    if (role is None or not resolve(session, invited_by, tenant_id).may("users:manage")
            or _grant_refusal(session, tenant_id, invited_by, frozenset(role.permissions),
                              roles={role.name} & {"owner"})):
        raise Forbidden("whoever invited you can no longer grant this role: ask for a new invitation",
                        field="token")


# --- resellers -------------------------------------------------------------------------

def create_reseller(session: Session, name: str, admin_user_id: uuid.UUID) -> uuid.UUID:
    """A reseller and its first admin (platform operators only)."""
    if session.scalar(select(Reseller.id).where(Reseller.name == name)):
        raise Conflict("a reseller with this name exists", field="name")
    reseller = Reseller(id=uuid.uuid4(), name=name)
    session.add(reseller)
    session.flush()
    session.add(ResellerAdmin(reseller_id=reseller.id, user_id=admin_user_id))
    session.flush()
    return reseller.id


def reseller_exists(session: Session, reseller_id: uuid.UUID) -> bool:
    """True if the reseller exists."""
    return session.get(Reseller, reseller_id) is not None


def resellers_administered_by(session: Session, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The resellers ``user_id`` administers."""
    return list(session.scalars(select(ResellerAdmin.reseller_id)
                                .where(ResellerAdmin.user_id == user_id)))


@dataclass(frozen=True)
class InvitationStatus:
    """Where an invitation stands: pending, accepted or expired."""

    id: uuid.UUID
    email: str
    role: str
    expires_at: datetime
    accepted_at: datetime | None

    @property
    def status(self) -> str:
        """pending, accepted or expired."""
        if self.accepted_at is not None:
            return "accepted"
        return "expired" if self.expires_at <= utcnow() else "pending"


def invitation_status(session: Session, tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> InvitationStatus:
    """One of the tenant's invitations; NotFound for another tenant's."""
    row = session.execute(
        select(Invitation, Role.name).join(Role, Role.id == Invitation.role_id)
        .where(Invitation.id == invitation_id, Invitation.tenant_id == tenant_id)).one_or_none()
    if row is None:
        raise NotFound("no such invitation", field="invitation_id")
    inv, role = row
    return InvitationStatus(inv.id, inv.email, role, inv.expires_at, inv.accepted_at)
