"""SES bounces and complaints, as SNS posts them: the addresses that get no more email.

SNS sends a JSON envelope (``Type``: ``SubscriptionConfirmation`` or ``Notification``); a
notification's ``Message`` is SES's own JSON (``notificationType`` for identity
notifications, ``eventType`` for configuration-set events). A permanent bounce marks its
failed recipients undeliverable, a complaint its complainers; transient bounces and
deliveries change nothing. A subscription is confirmed by fetching its ``SubscribeURL``,
which must be an https URL of SNS itself (nothing else is fetched).
"""
from __future__ import annotations

import http.client
import json
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from domain.notifications.deliveries import mark_undeliverable
from domain.notifications.errors import InvalidFeedback, SubscriptionUnconfirmed
from domain.text import CONTROL, LONE_SURROGATE, without_lone_surrogates

_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
DETAIL_LENGTH = 200  # SES's bounce and complaint types are short words: more is not SES's


@dataclass(frozen=True)
class Feedback:
    """What one SNS post says."""

    kind: str  # subscription | bounce | complaint | other
    addresses: list[str]
    detail: str = ""
    subscribe_url: str | None = None


def parse(body: Any) -> Feedback:
    """Read an SNS post (already parsed JSON); InvalidFeedback naming the field if it is not one."""
    if not isinstance(body, dict):
        raise InvalidFeedback("expected a JSON object", field="body")
    if not isinstance(body.get("Type"), str):
        raise InvalidFeedback("not an SNS message", field="Type")
    if body["Type"] == "SubscriptionConfirmation":
        url = body.get("SubscribeURL")
        if not (isinstance(url, str) and _at_sns(url)):
            raise InvalidFeedback("must be an https URL of Amazon SNS", field="SubscribeURL")
        return Feedback("subscription", [], subscribe_url=url)
    if body["Type"] != "Notification":
        return Feedback("other", [])
    message = body.get("Message")
    try:  # SNS sends SES's notification as a JSON string (an object is taken as it is)
        message = json.loads(message) if isinstance(message, str) else message
    except (ValueError, RecursionError):  # RecursionError: nested deeper than any notification
        raise InvalidFeedback("must be SES's JSON notification", field="Message") from None
    if not isinstance(message, dict):
        raise InvalidFeedback("must be SES's JSON notification", field="Message")
    return _ses(message)


def _at_sns(url: str) -> bool:
    """An https URL of SNS itself, on the https port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed [, a port that is no number
        return False
    return parts.scheme == "https" and port in (None, 443) and bool(_SNS_HOST.fullmatch(parts.hostname or ""))


def _ses(message: dict[str, Any]) -> Feedback:
    kind = str(message.get("notificationType") or message.get("eventType") or "").lower()
    reports = ("bounce", "complaint", "delivery")
    if kind not in reports:  # else: which report the message carries
        kind = next((k for k in reports if isinstance(message.get(k), dict)), kind)
    if kind == "bounce":
        bounce = _object(message, "bounce")
        if bounce.get("bounceType") != "Permanent":
            return Feedback("other", [])
        failed = [r for r in _list(bounce, "bounce", "bouncedRecipients")
                  if isinstance(r, dict) and r.get("action", "failed") == "failed"]
        detail = _text(f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}")
        return Feedback("bounce", _addresses(failed), detail)
    if kind == "complaint":
        complaint = _object(message, "complaint")
        people = [r for r in _list(complaint, "complaint", "complainedRecipients") if isinstance(r, dict)]
        return Feedback("complaint", _addresses(people), _text(complaint.get("complaintFeedbackType") or ""))
    return Feedback("other", [])


def _object(message: dict[str, Any], name: str) -> dict[str, Any]:
    """SES's report ``name`` (an object; missing or null: empty); InvalidFeedback naming it if not one."""
    report = message.get(name)
    if report is None:
        return {}
    if not isinstance(report, dict):
        raise InvalidFeedback("must be an object", field=f"Message.{name}")
    return report


def _list(report: dict[str, Any], name: str, key: str) -> list[Any]:
    """The report's list ``key`` (missing or null: empty); InvalidFeedback naming it if not a list."""
    rows = report.get(key)
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise InvalidFeedback("must be a list", field=f"Message.{name}.{key}")
    return rows


def _text(value: object) -> str:
    """A word of SES's, kept as a detail: control characters dropped, a lone surrogate (JSON's
    \\ud800) made "?", at most DETAIL_LENGTH."""
    return CONTROL.sub("", without_lone_surrogates(str(value)))[:DETAIL_LENGTH]


def _addresses(rows: list[dict[str, Any]]) -> list[str]:
    """The rows' email addresses, lower-cased; what cannot be one of ours is left out (we never
    send to an address without ``@``, longer than 320 characters or with a control character)."""
    found = [r["emailAddress"].strip().lower() for r in rows if isinstance(r.get("emailAddress"), str)]
    return sorted({a for a in found
                   if "@" in a and len(a) <= 320 and not CONTROL.search(a) and not LONE_SURROGATE.search(a)})


def record(session: Session, feedback: Feedback) -> int:
    """Mark the feedback's addresses undeliverable; how many were new."""
    return sum(mark_undeliverable(session, address, feedback.kind, feedback.detail or None)
               for address in feedback.addresses)


def confirm_subscription(feedback: Feedback, timeout: float = 5.0,
                         fetch: Callable[..., Any] = urllib.request.urlopen) -> None:
    """Confirm an SNS subscription by fetching its (checked) SubscribeURL; SubscriptionUnconfirmed
    (502, naming ``SubscribeURL``) when SNS cannot be reached or refuses (an expired link)."""
    assert feedback.subscribe_url is not None
    try:
        with fetch(feedback.subscribe_url, timeout=timeout):  # checked: an https SNS URL
            pass
    except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts, resets
        raise SubscriptionUnconfirmed(f"SNS's subscription link could not be fetched "
                                      f"({type(exc).__name__}); the subscription stays pending",
                                      field="SubscribeURL") from None


def receive(session: Session, body: Any) -> Feedback:
    """Handle one SNS post: confirm a subscription, or record its undeliverable addresses."""
    found = parse(body)
    if found.kind == "subscription":
        confirm_subscription(found)
    else:
        record(session, found)
    return found
