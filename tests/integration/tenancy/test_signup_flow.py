"""Signup through the API, provisioned by a real tenancy worker, welcomed by a real notifications worker."""
from __future__ import annotations

from flask.testing import FlaskClient

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
