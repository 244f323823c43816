"""Dead and overdue messages for operators: the flask CLI and the operator-only JSON endpoints."""
from __future__ import annotations

import uuid

import pytest
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.messaging.outbox import Envelope
from tests.integration.messaging.helpers import (
    bury,
    harmless,
    is_overdue,
    outbox_row,
    record,
    resent_ids,
    sweep_once,
)
from tests.support import refs, tenants
from tests.support.processes import Process
from tests.support.waiting import wait_for

PASSWORD = "operator password 0123"
MESSAGES = "/api/v1/operations/messages"


@pytest.fixture
def dead(provider: DataProvider, publisher: Celery) -> Envelope:
    """A delivery the relay buried after its last attempt."""
    (envelope,) = record(provider, harmless())
    bury(provider, publisher, envelope.id)
    return envelope


@pytest.fixture
def overdue(provider: DataProvider, fast_provider: DataProvider) -> Envelope:
    """A delivery past its lease that nobody completed (its publish was lost)."""
    (envelope,) = record(fast_provider, harmless())
    wait_for(lambda: is_overdue(provider, envelope.id), timeout=30, message="the lease to run out")
    return envelope


@pytest.fixture(scope="module")
def operator_token(app: Flask) -> str:
    """A token of an operator created with ``flask users create-operator``."""
    email = refs.email("operator")
    result = app.test_cli_runner().invoke(args=["users", "create-operator", email],
                                          env={"ALLOTMENT_OPERATOR_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    response = app.test_client().post("/api/v1/identity/tokens", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return f"Bearer {response.json['access_token']}"


@pytest.fixture(scope="module")
def member_token(app: Flask, provider: DataProvider) -> str:
    """A token of an ordinary account (not an operator)."""
    return f"Bearer {tenants.access_token(app.test_client(), tenants.create_account(provider))}"


def cli(app: Flask, *args: str) -> tuple[int, str]:
    """Run a flask CLI command; return its exit code and output."""
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_cli_lists_dead_and_overdue_messages(app: Flask, dead: Envelope, overdue: Envelope) -> None:
    code, output = cli(app, "messages", "list", "--state", "dead")
    assert code == 0
    assert f"management\t{dead.id}\ttenancy.provision_tenant\tattempts=" in output
    assert overdue.id not in output
    code, output = cli(app, "messages", "list", "--state", "overdue")
    assert code == 0
    assert f"management\t{overdue.id}\ttenancy.provision_tenant" in output
    assert dead.id not in output


def test_cli_retries_a_dead_message_and_a_worker_completes_it(
        app: Flask, provider: DataProvider, dead: Envelope, all_queues_worker: Process) -> None:
    code, output = cli(app, "messages", "retry", "management", dead.id)
    assert (code, output.strip()) == (0, f"re-sent {dead.id}")
    row = outbox_row(provider, dead.id)
    assert row is not None and row["dead_at"] is None and row["attempts"] == 1
    wait_for(lambda: outbox_row(provider, dead.id)["completed_at"], timeout=90,  # type: ignore[index]
             message="the retried message to complete")
    assert dead.id not in cli(app, "messages", "list", "--state", "dead")[1]


@pytest.mark.parametrize(("database", "message_id", "expected"), [
    ("management", "0c9d2a4e-5b61-4f0e-8d3a-7e2b1c4f9a60", "message_id: no such message"),
    ("nowhere", "3f7e1b2d-9c48-4a06-b5e1-2d8c6f0a7b93", "database: no such database"),
    ("management", "not-a-uuid", "not a valid UUID"),
])
def test_cli_retry_refuses_what_it_cannot_find(app: Flask, database: str, message_id: str,
                                               expected: str) -> None:
    code, output = cli(app, "messages", "retry", database, message_id)
    assert code != 0 and expected in output


def test_cli_retry_refuses_a_message_that_is_not_dead(app: Flask, overdue: Envelope) -> None:
    code, output = cli(app, "messages", "retry", "management", overdue.id)
    assert code != 0 and "message_id: message is not dead" in output


def test_api_lists_dead_and_overdue_messages_to_operators(client: FlaskClient, operator_token: str,
                                                          dead: Envelope, overdue: Envelope) -> None:
    response = client.get(f"{MESSAGES}?state=dead", headers={"Authorization": operator_token})
    assert response.status_code == 200 and response.json["state"] == "dead"
    (item,) = [i for i in response.json["items"] if i["id"] == dead.id]
    assert (item["database"], item["handler"], item["type"]) == \
        ("management", "tenancy.provision_tenant", ProvisionTenantV1.message_type)
    assert item["dead_at"] is not None
    assert overdue.id not in {i["id"] for i in response.json["items"]}

    response = client.get(f"{MESSAGES}?state=overdue", headers={"Authorization": operator_token})
    assert response.status_code == 200
    assert overdue.id in {i["id"] for i in response.json["items"]}
    assert dead.id not in {i["id"] for i in response.json["items"]}


def test_api_refuses_an_unknown_state(client: FlaskClient, operator_token: str) -> None:
    response = client.get(f"{MESSAGES}?state=lost", headers={"Authorization": operator_token})
    assert response.status_code == 422
    assert (response.json["field"], response.json["error"]) == ("state", "validation_failed")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"{MESSAGES}?state=dead"),
    ("GET", f"{MESSAGES}?state=overdue"),
    ("POST", f"{MESSAGES}/management/6a1f0c3e-93a4-4c1b-9a55-0d1f2f5b7c21/retry"),  # fixed: stable test ids
])
def test_api_is_for_operators_only(client: FlaskClient, member_token: str, method: str, path: str) -> None:
    anonymous = client.open(path, method=method)
    assert anonymous.status_code == 401 and anonymous.json["field"] == "Authorization"
    member = client.open(path, method=method, headers={"Authorization": member_token})
    assert member.status_code == 403 and member.json["error"] == "forbidden"
    forged = client.open(path, method=method, headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401


def test_api_retries_a_dead_message_once(client: FlaskClient, provider: DataProvider, operator_token: str,
                                         dead: Envelope, all_queues_worker: Process) -> None:
    url = f"{MESSAGES}/management/{dead.id}/retry"
    response = client.post(url, headers={"Authorization": operator_token})
    assert response.status_code == 202 and response.json == {"id": dead.id, "status": "resent"}
    wait_for(lambda: outbox_row(provider, dead.id)["completed_at"], timeout=90,  # type: ignore[index]
             message="the retried message to complete")
    again = client.post(url, headers={"Authorization": operator_token})
    assert again.status_code == 409 and again.json["field"] == "message_id"


def test_api_retry_of_an_overdue_message_is_a_conflict(client: FlaskClient, operator_token: str,
                                                       overdue: Envelope) -> None:
    response = client.post(f"{MESSAGES}/management/{overdue.id}/retry",
                           headers={"Authorization": operator_token})
    assert response.status_code == 409
    assert response.json == {"error": "conflict", "field": "message_id", "reason": "message is not dead"}


@pytest.mark.parametrize(("database", "field"), [
    ("management", "message_id"), ("dedicated:nope@x:5432", "database")])
def test_api_retry_of_an_unknown_message_is_not_found(client: FlaskClient, operator_token: str,
                                                      database: str, field: str) -> None:
    response = client.post(f"{MESSAGES}/{database}/{uuid.uuid4()}/retry",
                           headers={"Authorization": operator_token})
    assert response.status_code == 404 and response.json["field"] == field


def test_a_retried_message_is_not_buried_again_at_once(provider: DataProvider, publisher: Celery,
                                                       app: Flask, dead: Envelope) -> None:
    # Revival gives the message a fresh attempt count and lease, so the next sweep keeps it.
    assert cli(app, "messages", "retry", "management", dead.id)[0] == 0
    assert dead.id not in resent_ids(sweep_once(provider, publisher))
    assert outbox_row(provider, dead.id)["dead_at"] is None  # type: ignore[index]
