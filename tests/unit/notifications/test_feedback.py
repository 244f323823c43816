"""Reading what SNS posts about SES: permanent bounces and complaints name addresses, other
reports do not, and a subscription is confirmed only at an https URL of SNS itself."""
from __future__ import annotations

import json
from email.message import Message
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import HTTPError, URLError

import pytest

from domain.notifications.errors import InvalidFeedback, SubscriptionUnconfirmed
from domain.notifications.feedback import confirm_subscription, parse

SNS = "sns.us-east-1.amazonaws.com"


def _notification(message: Any) -> dict[str, Any]:
    return {"Type": "Notification", "Message": json.dumps(message) if isinstance(message, dict) else message}


def test_a_permanent_bounce_names_its_failed_recipients() -> None:
    found = parse(_notification({"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "NoEmail",
        "bouncedRecipients": [{"emailAddress": "Gone@Example.com", "action": "failed"},
                              {"emailAddress": "later@example.com", "action": "delayed"},
                              {"emailAddress": "no-at-sign"}]}}))
    assert (found.kind, found.addresses) == ("bounce", ["gone@example.com"])
    assert found.detail == "Permanent/NoEmail"


def test_event_publishing_and_complaints_are_read_too() -> None:
    bounce = parse(_notification({"eventType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "a@example.com"}]}}))
    assert bounce.addresses == ["a@example.com"]
    complaint = parse(_notification({"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "b@example.com"}]}}))
    assert (complaint.kind, complaint.addresses) == ("complaint", ["b@example.com"])


@pytest.mark.parametrize("message", [
    {"notificationType": "Bounce", "bounce": {"bounceType": "Transient",
                                              "bouncedRecipients": [{"emailAddress": "a@example.com"}]}},
    {"notificationType": "Delivery", "delivery": {"recipients": ["a@example.com"]}},
    {"notificationType": "Something new"},
], ids=["transient-bounce", "delivery", "unknown"])
def test_other_reports_name_nobody(message: dict[str, Any]) -> None:
    assert parse(_notification(message)).addresses == []


@pytest.mark.parametrize(("body", "field"), [
    (None, "body"), ([], "body"), ("x", "body"), ({"Type": 3}, "Type"),
    ({"Type": "Notification", "Message": "{not json"}, "Message"),
    ({"Type": "Notification", "Message": "[1]"}, "Message"),
    ({"Type": "SubscriptionConfirmation"}, "SubscribeURL"),
    ({"Type": "SubscriptionConfirmation", "SubscribeURL": f"https://{SNS}.evil.example/"}, "SubscribeURL"),
    ({"Type": "SubscriptionConfirmation", "SubscribeURL": f"http://{SNS}/"}, "SubscribeURL"),
    ({"Type": "SubscriptionConfirmation", "SubscribeURL": f"https://[{SNS}/"}, "SubscribeURL"),
    ({"Type": "SubscriptionConfirmation", "SubscribeURL": f"https://{SNS}:x/"}, "SubscribeURL"),
    ({"Type": "SubscriptionConfirmation", "SubscribeURL": f"https://{SNS}:8443/"}, "SubscribeURL"),
    ({"Type": "Notification", "Message": "[" * 100_000}, "Message"),
    (_notification({"notificationType": "Bounce", "bounce": ["Permanent"]}), "Message.bounce"),
    (_notification({"notificationType": "Complaint", "complaint": "spam"}), "Message.complaint"),
    (_notification({"notificationType": "Bounce", "bounce": []}), "Message.bounce"),
    (_notification({"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bouncedRecipients": "a@example.com"}}),
     "Message.bounce.bouncedRecipients"),
    (_notification({"notificationType": "Complaint", "complaint": {
        "complainedRecipients": {"emailAddress": "b@example.com"}}}),
     "Message.complaint.complainedRecipients"),
], ids=["null", "list", "text", "type-not-text", "message-not-json", "message-not-object", "no-url",
        "lookalike-host", "plain-http", "unclosed-bracket", "port-not-a-number", "other-port",
        "nested-too-deep", "bounce-not-object", "complaint-not-object", "bounce-empty-list",
        "recipients-not-list", "complainers-not-list"])
def test_what_is_not_an_sns_message_is_refused_naming_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidFeedback) as refused:
        parse(body)
    assert refused.value.field == field


@pytest.mark.parametrize("failure", [
    URLError("Name or service not known"),
    HTTPError("https://sns.eu-west-1.amazonaws.com/", 403, "Forbidden", Message(), None),  # expired token
    TimeoutError("timed out"),
    RemoteDisconnected("closed"),
], ids=["unknown host", "refused", "timeout", "disconnected"])
def test_a_subscription_link_that_cannot_be_fetched_is_a_502_naming_it(failure: Exception) -> None:
    found = parse({"Type": "SubscriptionConfirmation",
                   "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"})

    def fetch(url: str, timeout: float) -> Any:
        raise failure

    with pytest.raises(SubscriptionUnconfirmed) as refused:
        confirm_subscription(found, fetch=fetch)
    assert (refused.value.status, refused.value.field) == (502, "SubscribeURL")


def test_a_subscription_at_sns_is_accepted() -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    found = parse({"Type": "SubscriptionConfirmation", "SubscribeURL": url})
    assert (found.kind, found.subscribe_url) == ("subscription", url)


def test_what_cannot_be_stored_is_left_out_of_a_bounce() -> None:
    found = parse(_notification({"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "No\x00Email" + "x" * 1000,
        "bouncedRecipients": [{"emailAddress": "nul\x00@example.com"}, {"emailAddress": "\ud800@example.com"},
                              {"emailAddress": "ok@example.com"}]}}))
    assert found.addresses == ["ok@example.com"]  # never one of ours: we send to none with a NUL
    assert found.detail.startswith("Permanent/NoEmailxxx")
    assert len(found.detail) == 200 and "\x00" not in found.detail
    complaint = parse(_notification({"notificationType": "Complaint", "complaint": {
        "complaintFeedbackType": "abuse\x00", "complainedRecipients": [{"emailAddress": "b@example.com"}]}}))
    assert (complaint.addresses, complaint.detail) == (["b@example.com"], "abuse")


def test_a_report_or_a_list_that_is_null_names_nobody() -> None:
    assert parse(_notification({"notificationType": "Bounce", "bounce": None})).addresses == []
    found = parse(_notification({"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bouncedRecipients": None}}))
    assert (found.kind, found.addresses) == ("bounce", [])


def test_an_address_that_is_no_text_is_left_out() -> None:
    found = parse(_notification({"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": {"x": "a@b.example"}}, {"emailAddress": "c@d.example"}]}}))
    assert found.addresses == ["c@d.example"]
