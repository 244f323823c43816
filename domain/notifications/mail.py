"""The mailer port, the message every transport sends, and the embedded adapter (a Maildir).

Every email has a plain-text and an HTML part, a ``Message-ID`` derived from its key (the
event and the recipient: the same email always has the same id) and its language in
``Content-Language``. The link of an invitation travels in the body only: headers never
carry a token.

Transports: ``MaildirMailer`` here (the embedded default, a mailbox any mail client opens;
idempotent: the file is named after the key, so sending twice rewrites one message),
``domain.notifications.smtp.SmtpMailer`` and ``domain.notifications.ses.SesMailer``. A
transport raises ``MailTransient`` (nothing sent, try again), ``MailRejected`` (refused for
good), ``MailUncertain`` (it may have gone) or ``MailerMisconfigured``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Email:
    """One email to one recipient, with a plain-text and an HTML part."""

    key: str  # unique per (event, recipient): the idempotency key and the Message-ID's seed
    to: str
    subject: str
    text: str
    html: str
    language: str = "en"
    sender_name: str | None = None  # shown before the platform's address (tenant branding)
    reply_to: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What the transport said: our Message-ID, and the provider's own id (SES) if any."""

    message_id: str
    provider_id: str | None = None


class Mailer(Protocol):
    """Sends one email; raises MailTransient / MailRejected / MailUncertain / MailerMisconfigured."""

    # True when sending the same email twice delivers it once (the Maildir): a delivery
    # whose attempt died mid-send may then simply be sent again.
    idempotent: bool

    def send(self, email: Email) -> SendResult:
        """Deliver ``email``."""


def sender_address(sender: str) -> str:
    """The bare address of ``MAIL_FROM`` (``Allotment <no-reply@x>`` -> ``no-reply@x``)."""
    return parseaddr(sender)[1] or sender


def message_id(key: str, sender: str) -> str:
    """The Message-ID of the email keyed ``key``: the same key, the same id."""
    domain = sender_address(sender).rpartition("@")[2] or "allotment.localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def _one_line(value: str) -> str:
    # Header values are one line: a subject from a translation must not inject headers.
    return " ".join(value.split())


def _header(value: str) -> str | Header:
    value = _one_line(value)
    return value if value.isascii() else Header(value, "utf-8")


def _address(address: str) -> str:
    # An address beyond ASCII is written as it is (RFC 6532, sent with SMTPUTF8): as an encoded
    # word it would read as a local part without a domain. Under compat32, a str carrying the
    # UTF-8 bytes as surrogate escapes is flattened to exactly those bytes.
    return address if address.isascii() else address.encode().decode("ascii", "surrogateescape")


# The classic MIME classes and their policy: several times cheaper to build and flatten
# than EmailMessage with the new policies (what a busy worker pays per email).
WIRE = policy.compat32.clone(linesep="\r\n")


def build_message(email: Email, sender: str) -> Message:
    """The MIME message of ``email`` from ``sender`` (``MAIL_FROM``); flatten with ``WIRE``."""
    message = MIMEMultipart("alternative")
    name, address = parseaddr(sender)
    shown = _one_line(email.sender_name or name)
    message["From"] = formataddr((shown, address), charset="utf-8") if address else sender
    message["To"] = _address(email.to)
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message["Subject"] = _header(email.subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(email.key, sender)
    message["Content-Language"] = email.language
    message["Auto-Submitted"] = "auto-generated"
    message.attach(MIMEText(email.text, "plain", "utf-8"))
    message.attach(MIMEText(email.html, "html", "utf-8"))
    return message


def wire_bytes(message: Message) -> bytes:
    """The message as it travels (CRLF line endings)."""
    return message.as_bytes(policy=WIRE)


class MaildirMailer:
    """Writes each email into a Maildir (``new/``) a mail client can open."""

    idempotent = True

    def __init__(self, root: Path, sender: str) -> None:
        self.root = root
        self.sender = sender
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def send(self, email: Email) -> SendResult:
        """Write the message under a name derived from its key (atomic rename)."""
        name = hashlib.sha256(email.key.encode()).hexdigest()[:32] + ".allotment"
        message = build_message(email, self.sender)
        tmp = self.root / "tmp" / name
        tmp.write_bytes(wire_bytes(message))
        os.replace(tmp, self.root / "new" / name)
        return SendResult(str(message["Message-ID"]))

    def messages(self) -> list[EmailMessage]:
        """Every message delivered so far (for tools and tests)."""
        return [message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
                for p in sorted((self.root / "new").iterdir())]
