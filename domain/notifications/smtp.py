"""The SMTP transport: one connection per process, kept open between emails.

The conversation is driven step by step (MAIL, RCPT, DATA) so each failure is classified
where it happens: a connection that went stale before MAIL is reopened and the email sent
on the new one (nothing was sent); a 4xx reply or a connection failure before DATA is
transient; a 5xx reply is permanent (a refused recipient is an undeliverable address); a
connection lost during DATA leaves it uncertain whether the server kept the message, so it
is never sent again (at most once). Login and TLS problems are configuration errors.

An address beyond ASCII travels with SMTPUTF8 when the server offers it; when it does not,
the email fails before MAIL (smtplib would fail to encode it mid-transaction), but the
address is not marked undeliverable: the fault is our relay's, and the address gets email
again once the relay offers SMTPUTF8. Any other error mid-conversation drops the kept
connection (it may be inside a mail transaction): before DATA nothing went, so it is
transient (retried until the give-up time); from DATA on it is uncertain.
"""
from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import threading

from domain.notifications.errors import MailerMisconfigured, MailRejected, MailTransient, MailUncertain
from domain.notifications.mail import Email, SendResult, build_message, sender_address, wire_bytes

log = logging.getLogger(__name__)


class SmtpMailer:
    """Sends through an SMTP server (STARTTLS or TLS from the start, optional login)."""

    idempotent = False

    def __init__(self, host: str, port: int, *, sender: str, username: str = "", password: str = "",
                 starttls: bool = True, use_ssl: bool = False, ca_file: str = "",
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self._username, self._password = username, password
        self.starttls, self.use_ssl, self.ca_file, self.timeout = starttls, use_ssl, ca_file, timeout
        self._connection: smtplib.SMTP | None = None
        self._pid = 0  # a connection belongs to the process that opened it (prefork workers)
        self._lock = threading.Lock()

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context

    def _open(self) -> smtplib.SMTP:
        connection: smtplib.SMTP | None = None
        try:
            if self.use_ssl:
                connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.starttls:
                    connection.starttls(context=self._tls())
            if self._username:
                connection.login(self._username, self._password)
            connection.ehlo_or_helo_if_needed()  # MAIL does not greet by itself (sendmail would)
        except BaseException:
            if connection is not None:  # a half-opened connection is closed, not left to the collector
                with contextlib.suppress(OSError):
                    connection.close()
            raise
        return connection

    def _connect(self) -> smtplib.SMTP:
        try:
            return self._open()
        except smtplib.SMTPAuthenticationError as exc:
            raise MailerMisconfigured(f"the SMTP server refused the login ({exc.smtp_code})") from None
        except (ssl.SSLError, smtplib.SMTPNotSupportedError) as exc:
            raise MailerMisconfigured(f"TLS with the SMTP server failed: {type(exc).__name__}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailTransient(f"cannot reach the SMTP server: {type(exc).__name__}: {exc}") from None

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def _connected(self) -> tuple[smtplib.SMTP, bool]:
        """The process's connection and whether it was already open (reused)."""
        if self._connection is not None and self._pid == os.getpid():
            return self._connection, True
        self._connection, self._pid = self._connect(), os.getpid()
        return self._connection, False

    def send(self, email: Email) -> SendResult:
        """MAIL, RCPT and DATA on the kept connection (reopened once if it went stale)."""
        message = build_message(email, self.sender)
        data = wire_bytes(message)
        with self._lock:
            connection, reused = self._connected()
            in_data = False
            try:
                connection = self._mail(connection, reused, email.to)
                code, reply = self._step(connection.rcpt, email.to)
                self._check(connection, code, reply, "the recipient", recipient=True)
                in_data = True
                self._data(connection, data)
            except (MailTransient, MailRejected, MailUncertain, MailerMisconfigured):
                raise
            except BaseException as exc:
                # Somewhere in a mail transaction we cannot name: the connection is never reused.
                self._drop()
                if not isinstance(exc, Exception):
                    raise
                log.exception("the SMTP conversation failed unexpectedly")
                what = f"{type(exc).__name__}: {exc}"[:300]
                if in_data:
                    raise MailUncertain(f"the SMTP conversation failed during DATA: {what}") from None
                # Nothing went (a bug, or Celery's SoftTimeLimitExceeded): not a refusal. Like any
                # transport failure it holds the batch, so a timed-out sender stops promptly.
                raise MailTransient(f"the SMTP conversation failed before the message went: {what}") from None
        return SendResult(str(message["Message-ID"]))

    def _mail(self, connection: smtplib.SMTP, reused: bool, recipient: str) -> smtplib.SMTP:
        """MAIL FROM, on a fresh connection if the kept one went stale; the connection used."""
        sender = sender_address(self.sender)
        try:
            code, reply = connection.mail(sender, _options(connection, recipient))
        except (smtplib.SMTPServerDisconnected, OSError):
            self._drop()
            if not reused:
                raise MailTransient("the SMTP server closed the connection") from None
            connection, _ = self._connected()  # it went stale while idle: nothing was sent
            code, reply = self._step(connection.mail, sender, _options(connection, recipient))
        self._check(connection, code, reply, "the sender")
        return connection

    def _data(self, connection: smtplib.SMTP, data: bytes) -> None:
        try:
            code, reply = connection.data(data)  # smtplib raises for DATA's 354 only, not for this
            self._check(connection, code, reply, "the message")
        except smtplib.SMTPDataError as exc:
            self._check(connection, exc.smtp_code, exc.smtp_error, "the message")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise MailUncertain(f"the connection was lost during DATA: {type(exc).__name__}") from None

    def _step(self, command: object, *arguments: object) -> tuple[int, bytes]:
        try:
            return command(*arguments)  # type: ignore[operator, no-any-return]
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise MailTransient(f"the SMTP connection failed: {type(exc).__name__}") from None

    def _check(self, connection: smtplib.SMTP, code: int, reply: bytes | str, what: str, *,
               recipient: bool = False) -> None:
        if code in (250, 251):
            return
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        try:
            connection.rset()  # ready for the next email on this connection
        except (smtplib.SMTPException, OSError):
            self._drop()
        if 500 <= code < 600:
            raise MailRejected(f"the SMTP server refused {what}: {code} {text}"[:500], bad_address=recipient)
        raise MailTransient(f"the SMTP server deferred {what}: {code} {text}"[:500], recipient_only=recipient)

    def close(self) -> None:
        """Close the kept connection."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._connection.quit()
            self._connection = None


def _options(connection: smtplib.SMTP, recipient: str) -> list[str]:
    """MAIL's parameters: SMTPUTF8 (RFC 6531) when the recipient is beyond ASCII, which only a
    server that offers it takes; otherwise this email fails here, before MAIL."""
    if recipient.isascii():
        return []
    if connection.has_extn("smtputf8"):
        return ["SMTPUTF8"]
    # Our relay's shortcoming, not the address's: failing the email (not marking the address
    # undeliverable) lets it get email once the relay is upgraded. Not a misconfiguration pause:
    # that would hold every other email behind this one until the relay changes.
    log.error("the SMTP server does not offer SMTPUTF8: emails to addresses beyond ASCII fail")
    raise MailRejected("the SMTP server does not offer SMTPUTF8, which the recipient's address "
                       "(beyond ASCII) needs: not sent")
