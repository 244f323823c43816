"""The mailer port and its embedded adapter, a Maildir under ``var/``.

A message is sent once per key (the delivery id of the event that asked for it): the
Maildir adapter names the file after the key, so a redelivered message rewrites the same
file instead of adding a second email. Other transports (SMTP, SES) plug in behind the
same ``Mailer`` protocol.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Email:
    """One email to one recipient, with a plain-text and an HTML part."""

    key: str  # unique per (event, recipient): the idempotency key
    to: str
    subject: str
    text: str
    html: str


class Mailer(Protocol):
    """Sends an email at most once per ``Email.key``."""

    def send(self, email: Email) -> None:
        """Deliver ``email``; a second call with the same key delivers nothing new."""


class MaildirMailer:
    """Writes each email into a Maildir (``new/``) a mail client can open."""

    def __init__(self, root: Path, sender: str) -> None:
        self.root = root
        self.sender = sender
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def send(self, email: Email) -> None:
        """Write the message under a name derived from its key (atomic rename)."""
        name = hashlib.sha256(email.key.encode()).hexdigest()[:32] + ".allotment"
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{name}@allotment>"
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        tmp = self.root / "tmp" / name
        tmp.write_bytes(bytes(message))
        os.replace(tmp, self.root / "new" / name)

    def messages(self) -> list[EmailMessage]:
        """Every message delivered so far (for tools and tests)."""
        return [message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
                for p in sorted((self.root / "new").iterdir())]
