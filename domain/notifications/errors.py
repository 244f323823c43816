"""Refusals and mail failures of the notifications context."""
from __future__ import annotations

from domain.errors import DomainError, Transient


class InvalidPreference(DomainError):
    """A preference that cannot be set (an unknown category, a mandatory one switched off)."""

    status = 422


class InvalidBranding(DomainError):
    """A branding value the emails cannot carry."""

    status = 422


class InvalidFeedback(DomainError):
    """An SES/SNS notification that cannot be read."""

    status = 422


class SubscriptionUnconfirmed(DomainError):
    """SNS's SubscribeURL could not be fetched (502): the subscription stays pending, and
    SNS (or an operator, from its console) sends the confirmation again."""

    status = 502


class MailTransient(Transient):
    """The transport failed in a way that may pass (a connection refused, a 4xx reply, SES
    throttling): nothing was sent; it is retried with backoff. ``recipient_only``: only this
    recipient was deferred (a 4xx to RCPT: greylisting, a full mailbox); the transport is
    fine for the others."""

    def __init__(self, reason: str, *, recipient_only: bool = False) -> None:
        super().__init__(reason)
        self.recipient_only = recipient_only


class MailRejected(Exception):
    """The transport refused the email for good (a 5xx reply, SES MessageRejected): recorded,
    not retried. ``bad_address``: the recipient itself was refused (it gets no more email)."""

    def __init__(self, reason: str, *, bad_address: bool = False) -> None:
        super().__init__(reason)
        self.bad_address = bad_address


class MailUncertain(Exception):
    """The transport failed after the message may have been accepted (the connection dropped
    while the server had it): recorded as unconfirmed and never sent again (at most once)."""


class MailerMisconfigured(Exception):
    """The transport refused our credentials or TLS: nothing was sent, and retrying the
    same configuration will not help. Logged as an error; the emails wait, without spending
    attempts, until the configuration is fixed."""
