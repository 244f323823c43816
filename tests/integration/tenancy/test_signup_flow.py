"""Signup through the API, provisioned by a real tenancy worker, welcomed by a real notifications worker."""
from __future__ import annotations

import uuid

import redis
from argon2 import extract_parameters
from flask.testing import FlaskClient
from sqlalchemy import select

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.identity import services as identity
from domain.identity.models import User
from domain.messaging.tables import outbox
from tests.support import refs
from tests.support.processes import Process
from tests.support.waiting import wait_for


def test_signup_is_provisioned_and_welcomed(client: FlaskClient, all_queues_worker: Process) -> None:
    body = refs.signup_body()
    response = client.post("/api/v1/tenancy/signups", json=body)
    assert response.status_code == 202
    status_url = response.json["status_url"]
    assert response.headers["Location"] == status_url

    status = wait_for(lambda: (s := client.get(status_url).json)["complete"] and s,
                      timeout=60, message="signup to complete")
    assert status["status"] == "provisioned"
    assert [step["name"] for step in status["steps"]] == ["recorded", "provisioned", "welcomed"]

    token = client.post("/api/v1/identity/tokens", json={
        "email": body["email"], "password": body["password"], "tenant": body["slug"]}).json["access_token"]
    notices = client.get("/api/v1/notifications/notices",
                         headers={"Authorization": f"Bearer {token}"}).json["items"]
    assert [n["category"] for n in notices] == ["welcome"]
    assert body["admin_name"] in notices[0]["title"]


def test_the_signups_messages_leave_no_result_in_the_result_backend(
        client: FlaskClient, all_queues_worker: Process, provider: DataProvider, settings: Settings) -> None:
    """Domain tasks are declared ``ignore_result``: the outbox and inbox are their record.

    A message that told the worker otherwise (Celery's ``ignore_result: False`` header) made
    every delivery write its STARTED state and result to Redis."""
    response = client.post("/api/v1/tenancy/signups", json=refs.signup_body())
    status_url = response.json["status_url"]
    status = wait_for(lambda: (s := client.get(status_url).json)["complete"] and s,
                      timeout=60, message="signup to complete")
    tenant_id = uuid.UUID(status["tenant_id"])
    with provider.management() as session:
        deliveries = {handler: str(delivery) for delivery, handler in session.execute(
            select(outbox.c.id, outbox.c.handler).where(outbox.c.tenant_id == tenant_id))}
    assert {"tenancy.provision_tenant", "notifications.record_welcome_notice"} <= deliveries.keys()
    # The control: a result Celery keeps is found where the test looks.
    probe = str(uuid.uuid4())
    client.application.extensions["allotment.celery"].backend.store_result(probe, None, "SUCCESS")
    backend = redis.Redis.from_url(settings.result_backend)
    try:
        assert backend.exists(f"celery-task-meta-{probe}")
        kept = {handler for handler, delivery in deliveries.items()
                if backend.exists(f"celery-task-meta-{delivery}")}
    finally:
        backend.delete(f"celery-task-meta-{probe}")
        backend.close()
    assert kept == set()


def test_the_worker_and_this_process_hash_with_the_configured_profile(
        client: FlaskClient, all_queues_worker: Process, provider: DataProvider, settings: Settings) -> None:
    # PASSWORD_HASH_PROFILE reaches every process that builds a provider: the tenancy worker
    # that hashes the admin's password, and this one (the web app's).
    expected = identity.PASSWORD_PROFILES[settings.password_hash_profile]
    assert expected != identity.PASSWORD_PROFILES["rfc9106-low-memory"]  # the suite's own profile
    body = refs.signup_body()
    status_url = client.post("/api/v1/tenancy/signups", json=body).json["status_url"]
    wait_for(lambda: client.get(status_url).json["complete"], timeout=60, message="signup to complete")
    with provider.management() as session:
        stored = session.scalar(select(User.password_hash).where(User.email == body["email"].lower()))
    assert stored is not None
    for made in (stored, identity.hash_password("another password")):
        parameters = extract_parameters(made)
        assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
            expected.time_cost, expected.memory_cost, expected.parallelism)
