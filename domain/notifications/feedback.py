"""SES bounces and complaints, as SNS posts them: the addresses that get no more email.

SNS sends a JSON envelope (``Type``: ``SubscriptionConfirmation`` or ``Notification``); a
notification's ``Message`` is SES's own JSON (``notificationType`` for identity
notifications, ``eventType`` for configuration-set events). A permanent bounce marks its
failed recipients undeliverable, a complaint its complainers; transient bounces and
deliveries change nothing. A subscription is confirmed by fetching its ``SubscribeURL``,
which must be an https URL of SNS itself (nothing else is fetched).
"""
from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from domain.notifications.deliveries import mark_undeliverable
from domain.notifications.errors import InvalidFeedback

_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")


@dataclass(frozen=True)
class Feedback:
    """What one SNS post says."""

    kind: str  # subscription | bounce | complaint | other
    addresses: list[str]
    detail: str = ""
    subscribe_url: str | None = None


def parse(body: Any) -> Feedback:
    """Read an SNS post (already parsed JSON); InvalidFeedback naming the field if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
        raise InvalidFeedback("not an SNS message", field="Type")
    if body["Type"] == "SubscriptionConfirmation":
        url = body.get("SubscribeURL")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not _SNS_HOST.fullmatch(parts.hostname or ""):
            raise InvalidFeedback("must be an https URL of Amazon SNS", field="SubscribeURL")
        return Feedback("subscription", [], subscribe_url=url)
    if body["Type"] != "Notification":
        return Feedback("other", [])
    message = body.get("Message")
    try:  # SNS sends SES's notification as a JSON string (an object is taken as it is)
        message = json.loads(message) if isinstance(message, str) else message
    except ValueError:
        raise InvalidFeedback("must be SES's JSON notification", field="Message") from None
    if not isinstance(message, dict):
        raise InvalidFeedback("must be SES's JSON notification", field="Message")
    return _ses(message)


def _ses(message: dict[str, Any]) -> Feedback:
    kind = str(message.get("notificationType") or message.get("eventType") or "").lower()
    reports = ("bounce", "complaint", "delivery")
    if kind not in reports:  # else: which report the message carries
        kind = next((k for k in reports if isinstance(message.get(k), dict)), kind)
    if kind == "bounce":
        bounce = message.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return Feedback("other", [])
        failed = [r for r in bounce.get("bouncedRecipients") or [] if isinstance(r, dict)
                  and r.get("action", "failed") == "failed"]
        detail = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
        return Feedback("bounce", _addresses(failed), detail)
    if kind == "complaint":
        complaint = message.get("complaint") or {}
        people = [r for r in complaint.get("complainedRecipients") or [] if isinstance(r, dict)]
        return Feedback("complaint", _addresses(people), str(complaint.get("complaintFeedbackType") or ""))
    return Feedback("other", [])


def _addresses(rows: list[dict[str, Any]]) -> list[str]:
    found = [str(r.get("emailAddress") or "").strip().lower() for r in rows]
    return sorted({a for a in found if "@" in a and len(a) <= 320})


def record(session: Session, feedback: Feedback) -> int:
    """Mark the feedback's addresses undeliverable; how many were new."""
    return sum(mark_undeliverable(session, address, feedback.kind, feedback.detail or None)
               for address in feedback.addresses)


def confirm_subscription(feedback: Feedback, timeout: float = 10.0) -> None:
    """Confirm an SNS subscription by fetching its (checked) SubscribeURL."""
    assert feedback.subscribe_url is not None
    with urllib.request.urlopen(feedback.subscribe_url, timeout=timeout):  # noqa: S310 - checked https SNS URL
        pass


def receive(session: Session, body: Any) -> Feedback:
    """Handle one SNS post: confirm a subscription, or record its undeliverable addresses."""
    found = parse(body)
    if found.kind == "subscription":
        confirm_subscription(found)
    else:
        record(session, found)
    return found
