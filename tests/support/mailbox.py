"""The Maildir a real worker writes, read back: the emails to an address (waited for with a
deadline), and the secret a link in one carries, in its bodies only."""
from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from config.settings import load_settings
from tests.support import processes
from tests.support.services import ROOT
from tests.support.waiting import wait_for


def maildir_of(worker: processes.Process) -> Path:
    """Where ``worker`` writes mail: its settings' var dir (relative to the checkout it runs in)."""
    var_dir = load_settings(worker.env).var_dir
    return (var_dir if var_dir.is_absolute() else ROOT / var_dir) / "mail" / "new"


def mail_to(maildir: Path, address: str) -> list[EmailMessage]:
    """Every email in ``maildir`` addressed to ``address`` (other tests write there too)."""
    if not maildir.exists():
        return []
    found = []
    for path in sorted(maildir.iterdir()):
        message: EmailMessage = message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[assignment]
        if message["To"] == address:
            found.append(message)
    return found


def emails(maildir: Path, address: str, subject: str) -> list[EmailMessage]:
    """The emails to ``address`` with ``subject``."""
    return [m for m in mail_to(maildir, address) if m["Subject"] == subject]


def wait_for_email(maildir: Path, address: str, subject: str, count: int = 1) -> EmailMessage:
    """The ``count``-th email to ``address`` with ``subject``, once the worker wrote it."""
    wait_for(lambda: len(emails(maildir, address, subject)) >= count, timeout=60,
             message=f"email {count} to {address}: {subject}")
    return emails(maildir, address, subject)[count - 1]


def assert_body_only(message: EmailMessage, secret: str) -> None:
    """``secret`` is in the email's text and HTML bodies, never in a header."""
    text, html = message.get_body(preferencelist=("plain",)), message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert secret in text.get_content() and secret in html.get_content()
    assert all(secret not in str(value) for _, value in message.items())


def link_secret(message: EmailMessage, link: re.Pattern[str]) -> str:
    """The secret (``link``'s first group) of the link in the email's text, which its HTML
    carries too and no header does."""
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    match = link.search(text.get_content())
    assert match, text.get_content()
    assert_body_only(message, match.group(1))
    return match.group(1)


# The password reset email (domain.notifications.texts.PASSWORD_RESET) and its link.
RESET_SUBJECT = "Choose a new password"
RESET_LINK = re.compile(r"/identity/password-reset/([A-Za-z0-9_-]{20,100})\b")


def reset_token(maildir: Path, address: str, count: int = 1) -> str:
    """The token of the ``count``-th password reset email to ``address`` (in its bodies only),
    once the worker wrote it."""
    return link_secret(wait_for_email(maildir, address, RESET_SUBJECT, count), RESET_LINK)
