"""The IAM pages: a tenant's users (roles, standing, cut-off, invitations) and roles.
Real PostgreSQL and Redis; the effects are checked through the API and the database."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.identity.models import User
from domain.identity.services import PasswordSealer
from tests.integration.messaging.helpers import outbox_rows
from tests.support import refs
from tests.support.pages import (
    Member,
    api_get,
    api_token,
    field_errors,
    goes_to_sign_in,
    live_sessions,
    make_member,
    make_tenant,
    post,
    sign_in,
    signed_in_browser,
)

USERS, ROLES = "/iam/users", "/iam/roles"
ME = "/api/v1/iam/me"


@dataclass(frozen=True)
class Team:
    """A tenant with an admin (signed in to a browser) and an employee."""

    admin: Member
    employee: Member
    browser: FlaskClient


@pytest.fixture
def team(app: Flask, provider: DataProvider) -> Team:
    """A fresh tenant: its admin signed in to a browser, and an employee."""
    tenant = make_tenant(provider)
    admin = make_member(provider, "admin", tenant=tenant, name="Ada Admin")
    employee = make_member(provider, "employee", tenant=tenant, name="Eve Employee")
    return Team(admin, employee, signed_in_browser(app, admin))


def act(team: Team, path: str, data: dict[str, object] | None = None) -> TestResponse:
    """The admin posts a form of the users page."""
    return post(team.browser, path, data, token_from=USERS)


def roles_of(provider: DataProvider, member: Member) -> tuple[bool, list[str]]:
    """A member's standing and roles, from the database."""
    with provider.management() as session:
        row = iam.member(session, member.tenant_id, member.user_id)
        return row.active, row.roles


def member_row(page: str, member: Member) -> str:
    """The HTML of one member's row on the users page."""
    match = re.search(rf'<tr data-user="{member.user_id}">(.*?)</tr>', page, re.S)
    assert match, f"{member.email} is listed"
    return match.group(1)


def permissions(app: Flask, token: str) -> set[str]:
    """What the API says the token's holder may do."""
    response = api_get(app, ME, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return set(response.json["permissions"])


# --- who may see the pages ---------------------------------------------------------------

@pytest.mark.parametrize("path", [USERS, ROLES])
def test_a_visitor_is_sent_to_sign_in_with_next(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert goes_to_sign_in(response)
    assert parse_qs(urlsplit(response.location).query) == {"next": [path]}


@pytest.mark.parametrize("path", [USERS, ROLES])
def test_an_employee_is_forbidden(app: Flask, provider: DataProvider, path: str) -> None:
    employee = signed_in_browser(app, make_member(provider, "employee"))
    response = employee.get(path)
    assert response.status_code == 403
    assert "users:manage" in response.get_data(as_text=True)
    nav = employee.get("/identity/sessions").get_data(as_text=True)
    assert 'href="/iam/users"' not in nav and 'href="/identity/sessions"' in nav


def test_after_signing_in_the_admin_lands_on_the_page_asked_for(app: Flask, provider: DataProvider) -> None:
    admin = make_member(provider, "admin")
    browser = app.test_client()
    asked = browser.get(USERS)
    response = sign_in(browser, admin.email, next_=parse_qs(urlsplit(asked.location).query)["next"][0])
    assert response.status_code == 303 and response.location == USERS
    assert browser.get(USERS).status_code == 200


# --- users -------------------------------------------------------------------------------

def test_the_users_page_lists_members_with_roles_and_standing(team: Team) -> None:
    page = team.browser.get(USERS).get_data(as_text=True)
    employee = member_row(page, team.employee)
    assert "Eve Employee" in employee and team.employee.email in employee
    assert re.search(r'value="employee" checked', employee)
    assert not re.search(r'value="admin" checked', employee)
    assert "active" in employee and "/deactivate" in employee and "/cut-off" in employee
    me = member_row(page, team.admin)
    assert "(you)" in me and "/deactivate" not in me
    assert 'href="/iam/users"' in page and 'href="/iam/roles"' in page  # the admin's nav


def test_changing_roles_takes_effect_on_the_members_tokens_at_once(
        app: Flask, team: Team, provider: DataProvider) -> None:
    token = api_token(app, team.employee)
    assert "employment:write" not in permissions(app, token)
    response = act(team, f"/iam/users/{team.employee.user_id}/roles", {"roles": ["employee", "hr_manager"]})
    assert response.status_code == 303 and response.location == USERS
    assert "Roles saved: employee, hr_manager." in team.browser.get(USERS).get_data(as_text=True)
    assert roles_of(provider, team.employee) == (True, ["employee", "hr_manager"])
    assert "employment:write" in permissions(app, token)


@pytest.mark.parametrize(("roles", "status", "reason"), [
    ([], 422, "a member needs at least one role"),
    (["employee", "overlord"], 404, "no role named 'overlord'"),
], ids=["none", "unknown role"])
def test_a_refused_role_change_is_shown_beside_that_members_roles(
        team: Team, provider: DataProvider, roles: list[str], status: int, reason: str) -> None:
    response = act(team, f"/iam/users/{team.employee.user_id}/roles", {"roles": roles})
    assert response.status_code == status
    row = member_row(response.get_data(as_text=True), team.employee)
    assert reason in unescape(row) and 'data-field="roles"' in row
    assert roles_of(provider, team.employee) == (True, ["employee"])


def test_the_last_owner_keeps_the_owner_role(app: Flask, provider: DataProvider) -> None:
    owner = make_member(provider, "owner")
    browser = signed_in_browser(app, owner)
    response = post(browser, f"/iam/users/{owner.user_id}/roles", {"roles": ["admin"]}, token_from=USERS)
    assert response.status_code == 409
    assert "last owner" in member_row(response.get_data(as_text=True), owner)
    assert roles_of(provider, owner) == (True, ["owner"])


def test_deactivating_a_member_cuts_off_their_token_and_reactivating_restores_it(
        app: Flask, team: Team, provider: DataProvider) -> None:
    token = api_token(app, team.employee)
    employee_browser = signed_in_browser(app, team.employee)
    assert api_get(app, ME, token).status_code == 200

    response = act(team, f"/iam/users/{team.employee.user_id}/deactivate")
    assert response.status_code == 303 and response.location == USERS
    assert api_get(app, ME, token).status_code == 401
    assert goes_to_sign_in(employee_browser.get("/identity/sessions"))
    assert roles_of(provider, team.employee) == (False, ["employee"])
    row = member_row(team.browser.get(USERS).get_data(as_text=True), team.employee)
    assert "deactivated" in row and "/reactivate" in row

    assert act(team, f"/iam/users/{team.employee.user_id}/reactivate").status_code == 303
    assert roles_of(provider, team.employee) == (True, ["employee"])
    assert api_get(app, ME, api_token(app, team.employee)).status_code == 200


def test_an_admin_cannot_deactivate_themselves(team: Team, provider: DataProvider) -> None:
    response = act(team, f"/iam/users/{team.admin.user_id}/deactivate")
    assert response.status_code == 409
    assert "you cannot deactivate yourself" in member_row(response.get_data(as_text=True), team.admin)
    assert roles_of(provider, team.admin) == (True, ["admin"])


def test_cutting_a_member_off_ends_their_sessions_but_keeps_them_active(
        app: Flask, team: Team, provider: DataProvider) -> None:
    token = api_token(app, team.employee)
    response = act(team, f"/iam/users/{team.employee.user_id}/cut-off")
    assert response.status_code == 303
    assert "Signed out 1 session(s)" in team.browser.get(USERS).get_data(as_text=True)
    assert api_get(app, ME, token).status_code == 401
    assert live_sessions(provider, team.employee.user_id) == []
    assert roles_of(provider, team.employee) == (True, ["employee"])
    assert api_get(app, ME, api_token(app, team.employee)).status_code == 200


@pytest.mark.parametrize("action", ["roles", "deactivate", "reactivate", "cut-off"])
def test_another_tenants_user_is_not_found(app: Flask, team: Team, provider: DataProvider,
                                           action: str) -> None:
    stranger = make_member(provider, "employee")
    token = api_token(app, stranger)
    response = act(team, f"/iam/users/{stranger.user_id}/{action}", {"roles": ["admin"]})
    assert response.status_code == 404
    assert "no such user in this tenant" in response.get_data(as_text=True)
    assert roles_of(provider, stranger) == (True, ["employee"])
    assert api_get(app, ME, token).status_code == 200


def test_a_change_without_csrf_is_refused_and_changes_nothing(
        app: Flask, team: Team, provider: DataProvider) -> None:
    token = api_token(app, team.employee)
    team.browser.get(USERS)
    for path, data in [(f"/iam/users/{team.employee.user_id}/deactivate", {}),
                       (f"/iam/users/{team.employee.user_id}/roles", {"roles": "admin"}),
                       ("/iam/users/invite", {"email": refs.email(), "role": "employee"}),
                       (ROLES, {"name": "sneaky", "permissions": "users:manage"})]:
        assert team.browser.post(path, data=data).status_code == 400, path
    assert roles_of(provider, team.employee) == (True, ["employee"])
    assert api_get(app, ME, token).status_code == 200
    assert "sneaky" not in team.browser.get(ROLES).get_data(as_text=True)


_SOME_ID = "6a1f0c3e-93a4-4c1b-9a55-0d1f2f5b7c21"  # fixed, so test ids are stable (xdist)


@pytest.mark.parametrize("path", ["/iam/users/invite", f"/iam/users/{_SOME_ID}/deactivate",
                                  f"/iam/users/{_SOME_ID}/cut-off", f"/iam/roles/{_SOME_ID}/delete"])
def test_state_changing_paths_refuse_get(team: Team, path: str) -> None:
    assert team.browser.get(path).status_code == 405


# --- invitations -------------------------------------------------------------------------

def invitations_to(provider: DataProvider, email: str) -> list[dict[str, object]]:
    """The UserInvited messages recorded for ``email``."""
    return [dict(row["payload"]) for row in outbox_rows(provider, type="iam.UserInvited")
            if row["payload"]["email"] == email]


def test_an_admin_whose_address_is_unverified_is_told_to_verify_it_before_inviting(
        team: Team, provider: DataProvider) -> None:
    with provider.management() as session:
        session.execute(update(User).where(User.id == team.admin.user_id).values(email_verified_at=None))
        session.commit()
    email = refs.email("spammed")
    response = act(team, "/iam/users/invite", {"email": email, "role": "employee"})
    assert response.status_code == 403
    assert field_errors(response, "email") == [
        "verify your own email address (the link we emailed you) before inviting anyone"]
    assert invitations_to(provider, email) == []


def test_the_invite_form_records_an_invitation_the_invitee_can_accept(
        app: Flask, team: Team, provider: DataProvider) -> None:
    email = refs.email("invitee")
    response = act(team, "/iam/users/invite", {"email": email, "role": "hr_manager"})
    assert response.status_code == 303 and response.location == USERS
    assert f"Invitation sent to {email}." in team.browser.get(USERS).get_data(as_text=True)
    [message] = invitations_to(provider, email)
    assert message["role"] == "hr_manager" and message["tenant_id"] == str(team.admin.tenant_id)

    invitee = app.test_client()
    token = PasswordSealer(app.extensions["allotment.settings"].secret_key).unseal(message["sealed_token"])
    path = f"/identity/invitations/{token}"
    accepted = post(invitee, path, {"name": "Ivy", "password": "invitee password 1"}, token_from=path)
    assert accepted.status_code == 303
    page = team.browser.get(USERS).get_data(as_text=True)
    assert email in page and "Ivy" in page


@pytest.mark.parametrize(("body", "field", "status", "reason"), [
    ({"email": "not-an-email", "role": "employee"}, "email", 422, "Invalid email address."),
    ({"email": "x@example.com", "role": ""}, "role", 422, "This field is required."),
    ({"email": "x@example.com", "role": "overlord"}, "role", 404, "no role named 'overlord'"),
], ids=["bad email", "no role", "unknown role"])
def test_a_refused_invitation_is_shown_next_to_the_field(
        team: Team, provider: DataProvider, *, body: dict[str, str], field: str, status: int,
        reason: str) -> None:
    response = act(team, "/iam/users/invite", body)
    assert response.status_code == status
    assert field_errors(response, field) == [reason]
    assert invitations_to(provider, body["email"]) == []


# --- roles -------------------------------------------------------------------------------

def role_row(page: str, name: str) -> str | None:
    """The HTML of one role's row on the roles page, if listed."""
    match = re.search(rf'<tr data-role="{name}">(.*?)</tr>', page, re.S)
    return match.group(1) if match else None


def role_id(provider: DataProvider, tenant_id: uuid.UUID, name: str) -> uuid.UUID:
    """The id of the tenant's role ``name``."""
    with provider.management() as session:
        return next(r.id for r in iam.list_roles(session, tenant_id) if r.name == name)


def test_the_roles_page_lists_roles_with_permissions(team: Team) -> None:
    page = team.browser.get(ROLES).get_data(as_text=True)
    employee = role_row(page, "employee")
    assert employee and "employment:read" in employee and "built-in" in employee
    assert "/delete" not in employee
    for permission in sorted(iam.PERMISSIONS):
        assert f'name="permissions" value="{permission}"' in page


def test_creating_and_deleting_a_custom_role(app: Flask, team: Team, provider: DataProvider) -> None:
    response = post(team.browser, ROLES, {"name": "auditor", "permissions": ["employment:read",
                                                                             "notifications:read"]},
                    token_from=ROLES)
    assert response.status_code == 303 and response.location == ROLES
    page = team.browser.get(ROLES).get_data(as_text=True)
    assert "Role auditor created." in page
    row = role_row(page, "auditor")
    assert row and "employment:read, notifications:read" in row and "/delete" in row

    auditor = role_id(provider, team.admin.tenant_id, "auditor")
    assert post(team.browser, f"/iam/roles/{auditor}/delete", token_from=ROLES).status_code == 303
    assert role_row(team.browser.get(ROLES).get_data(as_text=True), "auditor") is None


def test_a_held_custom_role_cannot_be_deleted(team: Team, provider: DataProvider) -> None:
    assert post(team.browser, ROLES, {"name": "auditor", "permissions": ["employment:read"]},
                token_from=ROLES).status_code == 303
    assert act(team, f"/iam/users/{team.employee.user_id}/roles",
               {"roles": ["employee", "auditor"]}).status_code == 303
    assert "/delete" not in (role_row(team.browser.get(ROLES).get_data(as_text=True), "auditor") or "")

    response = post(team.browser, f"/iam/roles/{role_id(provider, team.admin.tenant_id, 'auditor')}/delete",
                    token_from=ROLES)
    assert response.status_code == 409
    row = role_row(response.get_data(as_text=True), "auditor")
    assert row and "1 member(s) hold this role" in row


def test_a_built_in_role_cannot_be_deleted(team: Team, provider: DataProvider) -> None:
    response = post(team.browser, f"/iam/roles/{role_id(provider, team.admin.tenant_id, 'employee')}/delete",
                    token_from=ROLES)
    assert response.status_code == 409
    assert role_row(response.get_data(as_text=True), "employee")


def test_another_tenants_role_is_not_found(team: Team, provider: DataProvider) -> None:
    other_tenant, _ = make_tenant(provider)
    with provider.management() as session:
        foreign = iam.create_role(session, other_tenant, "foreign", ["employment:read"], granted_by=None)
        session.commit()
    response = post(team.browser, f"/iam/roles/{foreign.id}/delete", token_from=ROLES)
    assert response.status_code == 404
    with provider.management() as session:
        assert "foreign" in [r.name for r in iam.list_roles(session, other_tenant)]


@pytest.mark.parametrize(("body", "field", "status", "reason"), [
    ({"name": "auditor", "permissions": ["employment:read", "root:everything"]}, "permissions", 422,
     "unknown permission 'root:everything'"),
    ({"name": "auditor"}, "permissions", 422, "a role needs at least one permission"),
    ({"name": "Not A Name", "permissions": ["employment:read"]}, "name", 422, "lower-case letters"),
    ({"name": "employee", "permissions": ["employment:read"]}, "name", 409, "a role with this name exists"),
], ids=["unknown permission", "no permission", "bad name", "taken name"])
def test_a_refused_role_is_shown_next_to_the_field(
        team: Team, provider: DataProvider, *, body: dict[str, object], field: str, status: int,
        reason: str) -> None:
    response = post(team.browser, ROLES, body, token_from=ROLES)
    assert response.status_code == status
    [error] = field_errors(response, field)
    assert reason in error
    with provider.management() as session:
        names = [r.name for r in iam.list_roles(session, team.admin.tenant_id)]
    assert sorted(names) == ["admin", "employee", "hr_manager", "owner"]
