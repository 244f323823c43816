"""The notifications API: my notices (newest first, paginated, with totals), the unread count,
marking one or all read; my preferences (mandatory categories cannot be switched off); the
tenant's branding; SES feedback. Every bad input is a 4xx naming the field, and another
person's or another tenant's notice is not found and unchanged."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from domain.db.base import utcnow
from domain.notifications.deliveries import is_undeliverable
from domain.notifications.models import Notice
from tests.integration.notifications.conftest import Plane
from tests.integration.web.helpers import assert_refused
from tests.support import tenants
from tests.support.apps import web_app
from tests.support.tenants import TenantWithMembers

NOTICES = "/api/v1/notifications/notices"
PREFERENCES = "/api/v1/notifications/preferences"
BRANDING = "/api/v1/notifications/branding"
FEEDBACK = "/api/v1/notifications/ses-feedback"
TOKEN = "feedback-token-for-the-api-tests-0042"


@pytest.fixture(scope="module")
def client(plane: Plane) -> FlaskClient:
    """A test client of the plane's app."""
    return plane.app.test_client()


def _notices(plane: Plane, tenant_id: uuid.UUID, user_id: uuid.UUID, count: int,
             **kw: Any) -> list[uuid.UUID]:
    """``count`` notices a minute apart, the last one newest; their ids, oldest first."""
    start = utcnow() - timedelta(hours=1)
    rows = [Notice(id=uuid.uuid4(), user_id=user_id, event_id=uuid.uuid4(), category="assets",
                   title=f"notice {i}", body="", created_at=start + timedelta(minutes=i), **kw)
            for i in range(count)]
    with plane.provider.tenant(tenant_id) as session:
        session.add_all(rows)
        session.commit()
    return [n.id for n in rows]


def _bearer(client: FlaskClient, org: TenantWithMembers, role: str) -> dict[str, str]:
    return tenants.sign_in(client, org.member(role), org.slug).bearer


def _read_at(plane: Plane, tenant_id: uuid.UUID, notice_id: uuid.UUID) -> Any:
    with plane.provider.tenant(tenant_id) as session:
        return session.scalar(select(Notice.read_at).where(Notice.id == notice_id))


def test_notices_are_listed_newest_first_in_pages_with_their_totals(plane: Plane,
                                                                     client: FlaskClient) -> None:
    org = plane.tenant(("owner", "employee"))
    mine = _notices(plane, org.id, org.member("employee").user_id, 7)
    _notices(plane, org.id, org.member("owner").user_id, 3)  # someone else's
    headers = _bearer(client, org, "employee")
    first = client.get(f"{NOTICES}?limit=3", headers=headers).json
    assert [n["id"] for n in first["items"]] == [str(i) for i in reversed(mine[-3:])]
    assert (first["total"], first["unread"], first["limit"], first["offset"]) == (7, 7, 3, 0)
    last = client.get(f"{NOTICES}?limit=3&offset=6", headers=headers).json
    assert [n["id"] for n in last["items"]] == [str(mine[0])]
    assert client.get(f"{NOTICES}/unread-count", headers=headers).json == {"unread": 7}
    for query, field in (("limit=201", "limit"), ("limit=-1", "limit"), ("offset=x", "offset")):
        assert_refused(client.get(f"{NOTICES}?{query}", headers=headers), 422, field)


def test_marking_one_and_then_all_read(plane: Plane, client: FlaskClient) -> None:
    org = plane.tenant(("employee",))
    ids = _notices(plane, org.id, org.member("employee").user_id, 4)
    headers = _bearer(client, org, "employee")
    assert client.post(f"{NOTICES}/{ids[1]}/read", headers=headers).status_code == 204
    first_read = _read_at(plane, org.id, ids[1])
    assert first_read is not None
    assert client.post(f"{NOTICES}/{ids[1]}/read", headers=headers).status_code == 204  # again: unchanged
    assert _read_at(plane, org.id, ids[1]) == first_read
    assert client.get(f"{NOTICES}/unread-count", headers=headers).json == {"unread": 3}
    read = [n["read"] for n in client.get(NOTICES, headers=headers).json["items"]]
    assert read == [False, False, True, False]
    assert client.post(f"{NOTICES}/read-all", headers=headers).json == {"marked": 3}
    assert client.post(f"{NOTICES}/read-all", headers=headers).json == {"marked": 0}
    assert client.get(f"{NOTICES}/unread-count", headers=headers).json == {"unread": 0}


def test_another_persons_or_another_tenants_notice_is_not_found_and_unchanged(
        plane: Plane, client: FlaskClient) -> None:
    a, b = plane.tenant(("owner", "employee")), plane.tenant(("owner",))
    colleague = _notices(plane, a.id, a.member("owner").user_id, 1)[0]
    # The same person in both tenants: only the tenant scoping keeps B's notice out of A.
    shared = a.member("employee")
    tenants.add_member(plane.provider, b.id, "employee", account=shared)
    in_b = _notices(plane, b.id, shared.user_id, 1)[0]
    headers = _bearer(client, a, "employee")
    for notice_id in (colleague, in_b, uuid.uuid4()):
        assert_refused(client.post(f"{NOTICES}/{notice_id}/read", headers=headers), 404, "notice_id")
    assert _read_at(plane, a.id, colleague) is None and _read_at(plane, b.id, in_b) is None
    assert client.get(NOTICES, headers=headers).json["items"] == []
    assert client.post(f"{NOTICES}/read-all", headers=headers).json == {"marked": 0}
    assert _read_at(plane, b.id, in_b) is None


def test_preferences_change_and_mandatory_categories_cannot_be_switched_off(
        plane: Plane, client: FlaskClient) -> None:
    org = plane.tenant(("employee",))
    headers = _bearer(client, org, "employee")
    start = client.get(PREFERENCES, headers=headers).json
    assert start["digest"] is False
    assert {c["category"]: (c["email"], c["in_app"], c["mandatory"]) for c in start["categories"]} == {
        "welcome": (True, True, False), "security": (True, True, True), "billing": (True, True, True),
        "tenancy": (True, True, False), "assets": (True, True, False), "publications": (True, True, False)}
    changed = client.put(PREFERENCES, headers=headers, json={
        "categories": {"assets": {"email": False}, "publications": {"in_app": False}}, "digest": True}).json
    found = {c["category"]: (c["email"], c["in_app"]) for c in changed["categories"]}
    assert found["assets"] == (False, True) and found["publications"] == (True, False) and changed["digest"]

    refused = [({"categories": {"billing": {"email": False}}}, "categories.billing.email"),
               ({"categories": {"security": {"in_app": False}}}, "categories.security.in_app"),
               ({"categories": {"assets": {"email": False}, "billing": {"in_app": False}}},
                "categories.billing.in_app"),
               ({"categories": {"nope": {"email": True}}}, "categories.nope"),
               ({"categories": {"assets": {"sms": True}}}, "categories.assets.sms"),
               ({"categories": {"assets": {"email": "sometimes"}}}, "categories.assets.email"),
               ({"digest": "daily"}, "digest")]
    for body, field in refused:
        reason = assert_refused(client.put(PREFERENCES, headers=headers, json=body), 422, field)["reason"]
        assert reason
    assert client.get(PREFERENCES, headers=headers).json == changed  # nothing of a refusal was kept
    assert "mandatory" in assert_refused(client.put(PREFERENCES, headers=headers, json=refused[0][0]),
                                         422, "categories.billing.email")["reason"]


def test_branding_is_for_tenant_admins_and_checked(plane: Plane, client: FlaskClient) -> None:
    org = plane.tenant(("owner", "employee"), name="Brand Org")
    owner = _bearer(client, org, "owner")
    assert client.get(BRANDING, headers=owner).json == {"display_name": "Brand Org", "sender_address": None,
                                                        "logo_url": None}
    body = {"display_name": "Brand Mail", "sender_address": "Help@Brand.Example",
            "logo_url": "https://brand.example/logo.svg"}
    assert client.put(BRANDING, headers=owner, json=body).json == {
        "display_name": "Brand Mail", "sender_address": "Help@brand.example",
        "logo_url": "https://brand.example/logo.svg"}
    for bad, field in (({"logo_url": "http://brand.example/logo.svg"}, "logo_url"),
                       ({"logo_url": "javascript:alert(1)"}, "logo_url"),
                       ({"logo_url": "https://brand.example/\u0000.png"}, "logo_url"),
                       ({"sender_address": "not an address"}, "sender_address"),
                       ({"display_name": "Bad\nName"}, "display_name"),
                       ({"colour": "green"}, "colour")):
        assert_refused(client.put(BRANDING, headers=owner, json=bad), 422, field)
    assert client.get(BRANDING, headers=owner).json["display_name"] == "Brand Mail"
    assert_refused(client.get(BRANDING, headers=_bearer(client, org, "employee")), 403, None)


@pytest.fixture(scope="module")
def feedback_app(plane: Plane) -> Iterator[Flask]:
    """The app with SES feedback switched on."""
    with web_app(plane.settings.model_copy(update={"ses_feedback_token": TOKEN})) as app:
        yield app


def _sns(message: dict[str, Any]) -> str:
    return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()),
                       "Message": json.dumps(message)})


def _bounce(kind: str, *recipients: tuple[str, str]) -> str:
    return _sns({"notificationType": "Bounce", "bounce": {
        "bounceType": kind, "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": a, "action": action} for a, action in recipients]}})


def test_ses_feedback_marks_permanent_bounces_and_complaints_only(plane: Plane, client: FlaskClient,
                                                                  feedback_app: Flask) -> None:
    assert_refused(client.post(FEEDBACK, data=_bounce("Permanent", ("x@example.com", "failed"))), 404, None)
    posting = feedback_app.test_client()
    body = _bounce("Permanent", ("Gone@Example.com", "failed"), ("later@example.com", "delayed"))
    assert_refused(posting.post(FEEDBACK, data=body), 401, "Authorization")
    assert_refused(posting.post(FEEDBACK, data=body, auth=("sns", "wrong")), 401, "Authorization")
    answer = posting.post(FEEDBACK, data=body, auth=("sns", TOKEN), content_type="text/plain")
    assert answer.status_code == 200 and answer.json == {"kind": "bounce", "addresses": 1}
    soft = _bounce("Transient", ("soft@example.com", "failed"))
    assert posting.post(FEEDBACK, data=soft, auth=("sns", TOKEN)).json == {"kind": "other", "addresses": 0}
    complaint = _sns({"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "angry@example.com"}], "complaintFeedbackType": "abuse"}})
    assert posting.post(FEEDBACK, data=complaint, auth=("sns", TOKEN)).json == {"kind": "complaint",
                                                                               "addresses": 1}
    with plane.provider.management() as session:
        marked = {a: is_undeliverable(session, a) for a in (
            "gone@example.com", "later@example.com", "soft@example.com", "angry@example.com")}
    assert marked == {"gone@example.com": True, "later@example.com": False, "soft@example.com": False,
                      "angry@example.com": True}
    for bad, status, field in (("{", 400, "body"), ("[]", 422, "body"),
                               (json.dumps({"Type": "Notification", "Message": "{"}), 422, "Message"),
                               (json.dumps({"Type": "SubscriptionConfirmation",
                                            "SubscribeURL": "https://evil.example/confirm"}), 422,
                                "SubscribeURL"),
                               (json.dumps({"Type": "SubscriptionConfirmation",
                                            "SubscribeURL": "http://sns.us-east-1.amazonaws.com/x"}), 422,
                                "SubscribeURL"),
                               # SNS's shape, but no such region: the fetch fails (the name is unknown)
                               (json.dumps({"Type": "SubscriptionConfirmation",
                                            "SubscribeURL": "https://sns.nowhere-1.amazonaws.com/x"}), 502,
                                "SubscribeURL")):
        assert_refused(posting.post(FEEDBACK, data=bad, auth=("sns", TOKEN)), status, field)
    # JSON's escapes can carry a lone surrogate, which no address of ours is (nor UTF-8 can hold)
    odd = _bounce("Permanent", ("\ud800@example.com", "failed"), ("fine@example.com", "failed"))
    assert "\\ud800" in odd
    assert posting.post(FEEDBACK, data=odd, auth=("sns", TOKEN)).json == {"kind": "bounce", "addresses": 1}


SUPPRESSED = "/api/v1/operations/suppressed-addresses"


def test_an_operator_sees_why_an_address_gets_no_email_and_lets_it_go(plane: Plane, client: FlaskClient,
                                                                       feedback_app: Flask) -> None:
    posting = feedback_app.test_client()
    gone, angry = f"gone-{uuid.uuid4().hex[:8]}@example.com", f"angry-{uuid.uuid4().hex[:8]}@example.com"
    bounce = _bounce("Permanent", (gone, "failed"))
    assert posting.post(FEEDBACK, data=bounce, auth=("sns", TOKEN)).status_code == 200
    complaint = _sns({"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": angry}], "complaintFeedbackType": "abuse"}})
    assert posting.post(FEEDBACK, data=complaint, auth=("sns", TOKEN)).status_code == 200
    operator_account = tenants.create_account(plane.provider, operator=True)
    operator = tenants.bearer(tenants.access_token(client, operator_account))

    complaints = client.get(f"{SUPPRESSED}?reason=complaint&limit=200", headers=operator)
    assert complaints.status_code == 200
    assert angry in {s["address"] for s in complaints.json["items"]}
    assert {s["reason"] for s in complaints.json["items"]} == {"complaint"}
    shown = client.get(f"{SUPPRESSED}/{gone.upper()}", headers=operator)  # any case
    assert shown.status_code == 200
    assert (shown.json["address"], shown.json["reason"], shown.json["detail"]) == (
        gone, "bounce", "Permanent/General")

    lifted = client.delete(f"{SUPPRESSED}/{gone}", headers=operator)
    assert lifted.status_code == 200 and lifted.json["address"] == gone
    with plane.provider.management() as session:
        assert not is_undeliverable(session, gone) and is_undeliverable(session, angry)
    assert_refused(client.get(f"{SUPPRESSED}/{gone}", headers=operator), 404, "address")
    assert_refused(client.delete(f"{SUPPRESSED}/{gone}", headers=operator), 404, "address")
    for odd in ("nul%00@example.com", "x" * 400 + "@example.com"):  # NUL: PostgreSQL refuses it in text
        assert_refused(client.get(f"{SUPPRESSED}/{odd}", headers=operator), 404, "address")
        assert_refused(client.delete(f"{SUPPRESSED}/{odd}", headers=operator), 404, "address")
    assert_refused(client.get(f"{SUPPRESSED}?reason=spite", headers=operator), 422, "reason")
    assert_refused(client.get(f"{SUPPRESSED}?limit=-1", headers=operator), 422, "limit")

    # A tenant's owner is no operator.
    org = plane.tenant(("owner",))
    owner = tenants.bearer(tenants.access_token(client, org.members["owner"], org.slug))
    assert client.delete(f"{SUPPRESSED}/{angry}", headers=owner).status_code == 403
    with plane.provider.management() as session:
        assert is_undeliverable(session, angry)
