"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd), plain or with STARTTLS and login.

It keeps every message it accepted, with how it arrived (TLS, login), and can be told to
refuse recipients (550), defer the next ones (451), refuse the next messages once it has
their data (554), or hold its answer to DATA until
released: the message is then received in full but not yet acknowledged, which is where a
test kills the sending worker ("mid-send"). It notes the client connection each message
came over (a sender keeps one connection for its batches).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from workers.embedded import free_port

USERNAME = "mailer"
PASSWORD = "smtp-password-not-for-production-7731"


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None
    peer: tuple[str, int]  # the client's end of the connection it came over
    mail_options: tuple[str, ...] = ()  # MAIL FROM's parameters (SMTPUTF8, BODY=...)

    @property
    def message(self) -> EmailMessage:
        """The parsed message."""
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Handler:
    """What the server does with each conversation, and what it kept."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)   # recipients answered 550
    defer: int = 0                                  # the next N recipients answered 451
    defer_mail: int = 0                             # the next N MAIL commands answered 451 (server busy)
    refuse_data: int = 0                            # the next N messages answered 554 after their data
    holding: bool = False                           # hold the answer to DATA until released
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        """451 while the server is "busy", else accept the sender."""
        with self.lock:
            if self.defer_mail > 0:
                self.defer_mail -= 1
                return "451 4.3.2 System busy, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        """550 for refused recipients, 451 while deferring, else accept."""
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user here"
        with self.lock:
            if self.defer > 0:
                self.defer -= 1
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Keep the message (then hold the answer, if told to), unless told to refuse it."""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.lock:
            if self.refuse_data > 0:
                self.refuse_data -= 1
                return "554 5.7.1 Message refused by content filter"
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                                          session.ssl is not None, login, tuple(session.peer),
                                          tuple(envelope.mail_options)))
        if self.holding:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return "250 Message accepted for delivery"

    def connections(self) -> set[tuple[str, int]]:
        """The client connections messages came over."""
        with self.lock:
            return {r.peer for r in self.received}

    def to(self, address: str) -> list[Received]:
        """The messages accepted for ``address``."""
        with self.lock:
            return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USERNAME.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and its key, as files."""

    cert: Path
    key: Path


def self_signed(folder: Path) -> Certificate:
    """A certificate valid for 127.0.0.1 (and localhost) for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    paths = Certificate(folder / "smtp-cert.pem", folder / "smtp-key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths


@dataclass(frozen=True)
class SmtpServer:
    """A running server: where it listens, its handler, and the settings that select it."""

    port: int
    handler: Handler
    certificate: Certificate | None = None

    def env(self) -> dict[str, str]:
        """The settings of a worker that sends through this server."""
        env = {"MAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port),
               "SMTP_STARTTLS": "false", "SMTP_TIMEOUT": "10"}
        if self.certificate is not None:
            env.update(SMTP_STARTTLS="true", SMTP_CA_FILE=str(self.certificate.cert),
                       SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD)
        return env


@contextlib.contextmanager
def smtp_server(certificate: Certificate | None = None, *, smtputf8: bool = False) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 and a free port; with ``certificate``, STARTTLS and login
    are required before any mail; with ``smtputf8`` it offers SMTPUTF8 (RFC 6531: addresses
    beyond ASCII), which aiosmtpd does not by default."""
    handler = Handler()
    options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.cert, certificate.key)
        options |= {"tls_context": context, "require_starttls": True, "auth_required": True,
                   "authenticator": _authenticate}
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10, **options)
    controller.start()
    try:
        yield SmtpServer(port, handler, certificate)
    finally:
        handler.release.set()
        controller.stop()
