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
from sqlalchemy import text
from sqlalchemy.orm import Session

from domain.db.provider import DataProvider
from domain.iam import services as iam
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.tenants import TenantWithMembers, bearer
from tests.support.waiting import wait_for

ROLES = "/api/v1/iam/roles"
MEMBERS = "/api/v1/iam/members"
INVITATIONS = "/api/v1/iam/invitations"


@pytest.fixture
def org(provider: DataProvider) -> TenantWithMembers:
    """A tenant of its own for each test, one member per built-in role."""
    return tenants.create_tenant(provider, prefix="race")


def _waits_for_a_lock(provider: DataProvider) -> bool:
    """True once a transaction waits for a row lock on an IAM table."""
    with provider.unscoped("management") as session:
        return (session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ~* '(roles|memberships|tenant_users|invitations)'"))
            or 0) >= 1


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
            answer = pool.submit(second)
            wait_for(lambda: answer.done() or _waits_for_a_lock(provider), timeout=30,
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
