"""HTML pages of the IAM context: the tenant's users (roles, standing, cut-off,
invitations) and its roles.

Every change goes through the same flows as the JSON API (web.iam.flows), so cached
decisions are invalidated and a member who loses access is cut off at once. A refusal is
shown next to the field it names, with the domain error's status; a user or role of
another tenant is a 404 page.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flask import flash, g, redirect, render_template, url_for
from werkzeug.wrappers import Response

from domain.errors import DomainError
from domain.iam import services as iam
from domain.iam.services import PERMISSIONS, RoleRow
from domain.identity import services as identity
from web.auth import Caller, page_requires
from web.db import management_db
from web.forms import place_error
from web.i18n import gettext
from web.iam import bp, flows
from web.iam.forms import InviteForm, MemberRolesForm, RoleForm
from web.ratelimit import limit_invitations

MANAGE = "users:manage"
# Errors shown beside one member's (or one role's) controls: {id: {field: [reason]}}.
RowErrors = dict[uuid.UUID, dict[str, list[str]]]


def _caller() -> Caller:
    return g.caller  # type: ignore[no-any-return]


def _tenant() -> uuid.UUID:
    tenant_id = _caller().tenant_id
    assert tenant_id is not None  # page_requires(tenant=True)
    return tenant_id


def _see_other(endpoint: str) -> Response:
    return redirect(url_for(endpoint), code=303)


def _row_error(row_id: uuid.UUID, exc: DomainError, fields: tuple[str, ...], missing: str) -> RowErrors:
    """A domain error for one row; an unknown row (``missing`` named) is re-raised: 404 page."""
    if exc.field == missing and exc.status == 404:
        raise exc
    field = exc.field if exc.field in fields else missing
    return {row_id: {field: [exc.reason]}}


# --- users -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemberView:
    """A member as the users page lists them."""

    user_id: uuid.UUID
    name: str
    email: str
    active: bool
    roles: list[str]
    is_me: bool


def _members() -> list[MemberView]:
    db = management_db()
    rows = iam.list_members(db, _tenant())
    users = identity.users_by_id(db, [r.user_id for r in rows])
    me = _caller().user_id
    views = [MemberView(r.user_id, users[r.user_id].name, users[r.user_id].email, r.active,
                        r.roles, r.user_id == me) for r in rows if r.user_id in users]
    return sorted(views, key=lambda m: (m.name.lower(), m.email))


def _users_page(*, invite_form: InviteForm | None = None, errors: RowErrors | None = None,
                status: int = 200) -> tuple[str, int]:
    roles = iam.list_roles(management_db(), _tenant())
    form = invite_form or InviteForm(formdata=None)
    form.set_roles([r.name for r in roles])
    page = render_template("iam/users.html", members=_members(), roles=roles, invite_form=form,
                           errors=errors or {})
    return page, status


@bp.get("/iam/users")
@page_requires(MANAGE)
def users_page() -> Any:
    """The tenant's members with their roles and standing, and the invite form."""
    return _users_page()


@bp.post("/iam/users/<uuid:user_id>/roles")
@page_requires(MANAGE)
def member_roles_page(user_id: uuid.UUID) -> Any:
    """Replace a member's roles."""
    form = MemberRolesForm()
    if not form.validate_on_submit():
        return _users_page(errors={user_id: {"roles": list(form.roles.errors) or
                                             [gettext("the form could not be read")]}}, status=422)
    try:
        row = flows.set_roles(_caller(), user_id, list(form.roles.data or []))
    except DomainError as exc:
        return _users_page(errors=_row_error(user_id, exc, ("roles",), "user_id"), status=exc.status)
    flash(gettext("Roles saved: %(roles)s.", roles=", ".join(row.roles)))
    return _see_other("iam.users_page")


def _set_active(user_id: uuid.UUID, active: bool) -> Any:
    try:
        flows.set_active(_caller(), user_id, active)
    except DomainError as exc:
        return _users_page(errors=_row_error(user_id, exc, (), "user_id"), status=exc.status)
    flash(gettext("Member deactivated; their sessions here are signed out.") if not active
          else gettext("Member reactivated."))
    return _see_other("iam.users_page")


@bp.post("/iam/users/<uuid:user_id>/deactivate")
@page_requires(MANAGE)
def deactivate_page(user_id: uuid.UUID) -> Any:
    """Deactivate a member: their tokens for this tenant stop working at once."""
    return _set_active(user_id, False)


@bp.post("/iam/users/<uuid:user_id>/reactivate")
@page_requires(MANAGE)
def reactivate_page(user_id: uuid.UUID) -> Any:
    """Give a deactivated member their access back."""
    return _set_active(user_id, True)


@bp.post("/iam/users/<uuid:user_id>/cut-off")
@page_requires(MANAGE)
def cut_off_page(user_id: uuid.UUID) -> Any:
    """End every session the member has in this tenant (they may sign in again)."""
    count = flows.cut_off(_caller(), user_id)
    flash(gettext("Signed out %(count)s session(s) of that member.", count=count))
    return _see_other("iam.users_page")


@bp.post("/iam/users/invite")
@page_requires(MANAGE)
@limit_invitations
def invite_page() -> Any:
    """Invite someone by email; the notifications worker sends the link."""
    form = InviteForm()
    if not form.validate_on_submit():
        return _users_page(invite_form=form, status=422)
    try:
        view = flows.invite(_caller(), form.email.data, form.role.data)
    except DomainError as exc:
        place_error(form, exc, form.email)
        return _users_page(invite_form=form, status=exc.status)
    flash(gettext("Invitation sent to %(email)s.", email=view.email))
    return _see_other("iam.users_page")


# --- roles -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoleView:
    """A role as the roles page lists it."""

    id: uuid.UUID
    name: str
    permissions: list[str]
    builtin: bool
    held_by: int


def _roles() -> list[RoleView]:
    db = management_db()
    held: dict[str, int] = {}
    for member in iam.list_members(db, _tenant()):
        for name in member.roles:
            held[name] = held.get(name, 0) + 1
    rows: list[RoleRow] = iam.list_roles(db, _tenant())
    return [RoleView(r.id, r.name, r.permissions, r.builtin, held.get(r.name, 0)) for r in rows]


def _roles_page(*, form: RoleForm | None = None, errors: RowErrors | None = None,
                status: int = 200) -> tuple[str, int]:
    page = render_template("iam/roles.html", roles=_roles(), form=form or RoleForm(formdata=None),
                           permissions=sorted(PERMISSIONS), errors=errors or {})
    return page, status


@bp.get("/iam/roles")
@page_requires(MANAGE)
def roles_page() -> Any:
    """The tenant's roles and their permissions, and the form for a custom role."""
    return _roles_page()


@bp.post("/iam/roles")
@page_requires(MANAGE)
def create_role_page() -> Any:
    """Create a custom role from the permission vocabulary."""
    form = RoleForm()
    if not form.validate_on_submit():
        return _roles_page(form=form, status=422)
    try:
        row = flows.create_role(_caller(), form.name.data, list(form.permissions.data or []))
    except DomainError as exc:
        place_error(form, exc, form.name)
        return _roles_page(form=form, status=exc.status)
    flash(gettext("Role %(name)s created.", name=row.name))
    return _see_other("iam.roles_page")


@bp.post("/iam/roles/<uuid:role_id>/delete")
@page_requires(MANAGE)
def delete_role_page(role_id: uuid.UUID) -> Any:
    """Delete a custom role nobody holds."""
    try:
        flows.delete_role(_caller(), role_id)
    except DomainError as exc:
        return _roles_page(errors=_row_error(role_id, exc, (), "role_id"), status=exc.status)
    flash(gettext("Role deleted."))
    return _see_other("iam.roles_page")
