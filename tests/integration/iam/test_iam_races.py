"""IAM changes racing each other, for real: one change is made in a transaction the test
holds open, the other is sent to the API meanwhile and waits for it (or, where it did not,
goes through first); the test then commits and reads what the second one answered."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from domain.db.provider import DataProvider
from domain.iam import services as iam
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.locks import backend_pid, blocked_by
from tests.support.tenants import TenantWithMembers, bearer
from tests.support.waiting import wait_for

ROLES = "/api/v1/iam/roles"
MEMBERS = "/api/v1/iam/members"
INVITATIONS = "/api/v1/iam/invitations"


@pytest.fixture
def org(provider: DataProvider) -> TenantWithMembers:
    """A tenant of its own for each test, one member per built-in role."""
    return tenants.create_tenant(provider, prefix="race")


@contextmanager
def while_held(provider: DataProvider, first: Callable[[Session], Any],
               second: Callable[[], Any]) -> Iterator[Future[Any]]:
    """Run ``first`` in a transaction, then ``second`` in another thread until it waits for a
    lock of that transaction (or is done: it did not wait); commit ``first``; yield the
    future of ``second``'s answer. A failure inside ends the transaction (its locks released)
    before the pool waits for its thread."""
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as held:
            first(held)
            pid, management = backend_pid(held), provider.url_of("management")
            answer = pool.submit(second)
            wait_for(lambda: answer.done() or blocked_by(management, pid) >= 1, timeout=30,
                     message="the second request to wait for the first transaction")
            held.commit()
        yield answer


def test_an_invitation_racing_the_deletion_of_its_role_is_not_found(
        api: FlaskClient, provider: DataProvider, org: TenantWithMembers) -> None:
    owner = org.member("owner")
    with provider.management() as session:
        role = iam.create_role(session, org.id, "auditor", ["notifications:read"], granted_by=None)
        session.commit()
    token = tenants.access_token(api, owner)
    with while_held(provider, lambda held: iam.delete_role(held, org.id, role.id),
                    lambda: api.post(INVITATIONS, json={"email": refs.email(), "role": "auditor"},
                                     headers=bearer(token))) as answer:
        pass
    assert "auditor" in assert_refused(answer.result(timeout=60), 404, "role")["reason"]


def test_a_role_change_submitted_twice_at_once_answers_the_same_twice(
        api: FlaskClient, provider: DataProvider, org: TenantWithMembers) -> None:
    # A double click: the second replacement of the member's roles collided with the rows the
    # first one inserted (a 500 on the memberships' primary key).
    owner, member = org.member("owner"), org.member("employee")
    token = tenants.access_token(api, owner)
    roles = ["hr_manager", "employee"]
    with while_held(provider, lambda held: iam.set_roles(held, org.id, member.user_id, roles,
                                                          granted_by=owner.user_id),
                    lambda: api.put(f"{MEMBERS}/{member.user_id}/roles", json={"roles": roles},
                                    headers=bearer(token))) as answer:
        pass
    second = answer.result(timeout=60)
    assert second.status_code == 200, second.get_data(as_text=True)[:500]
    assert second.json["roles"] == ["employee", "hr_manager"]


def _other_owner(provider: DataProvider, org: TenantWithMembers) -> tenants.Account:
    """The tenant's admin, made its second owner."""
    with provider.management() as session:
        iam.set_roles(session, org.id, org.member("admin").user_id, ["owner"], granted_by=None)
        session.commit()
    return org.member("admin")


def _active_owners(provider: DataProvider, org: TenantWithMembers) -> list[str]:
    with provider.management() as session:
        return [str(m.user_id) for m in iam.list_members(session, org.id) if m.active and "owner" in m.roles]


@pytest.mark.parametrize("change", ["both step down", "each deactivates the other"])
def test_two_owners_leaving_at_once_leave_one_owner(api: FlaskClient, provider: DataProvider,
                                                    org: TenantWithMembers, change: str) -> None:
    # Each change counted the other owner, who was still there when it looked: both went
    # through and the tenant had no active owner left.
    first, second = org.member("owner"), _other_owner(provider, org)
    token = tenants.access_token(api, second)
    if change == "both step down":
        def held_change(held: Session) -> Any:
            return iam.set_roles(held, org.id, first.user_id, ["admin"], granted_by=first.user_id)

        def racing() -> Any:
            return api.put(f"{MEMBERS}/{second.user_id}/roles", json={"roles": ["admin"]},
                           headers=bearer(token))
        field = "roles"
    else:
        def held_change(held: Session) -> Any:
            return iam.set_active(held, org.id, second.user_id, False, changed_by=first.user_id)

        def racing() -> Any:
            return api.post(f"{MEMBERS}/{first.user_id}/deactivate", headers=bearer(token))
        field = "user_id"
    with while_held(provider, held_change, racing) as answer:
        pass
    assert "last owner" in assert_refused(answer.result(timeout=60), 409, field)["reason"]
    assert _active_owners(provider, org) == [str(second.user_id if change == "both step down"
                                                 else first.user_id)]
