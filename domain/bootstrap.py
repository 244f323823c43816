"""Composition root: the data provider, the revocation store and the handlers' adapters
(cosmicpython bootstrap)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy.exc import SQLAlchemyError

from config.settings import TRANSLATIONS_DIR, Settings
from domain.assets.storage import build_storage
from domain.db.provider import DataProvider
from domain.db.routing import RedisRoutingChannel
from domain.identity import sessions
from domain.identity.revocation import RevocationStore, RevocationUnavailable
from domain.identity.services import PasswordSealer, use_password_profile
from domain.notifications.mail import MaildirMailer, Mailer
from domain.notifications.pipeline import TenantTexts
from domain.notifications.smtp import SmtpMailer
from domain.purchases.gateway import PaymentGateway
from domain.purchases.sandbox import SandboxGateway
from domain.tenancy import queries as tenancy_queries
from domain.translations.catalogues import Catalogues


def build_provider(settings: Settings, *, web: bool = False) -> DataProvider:
    """The data provider for one process; routing changes travel over the broker's Redis.

    Every process that reaches the data (web, workers, the CLI) builds one at its start, so
    this is also where the process's password hashing takes its configured profile. ``web``:
    the web app's, whose connections carry WEB_LOCK_TIMEOUT_MS and WEB_STATEMENT_TIMEOUT_MS."""
    use_password_profile(settings.password_hash_profile)
    limits = {"lock_timeout": settings.web_lock_timeout_ms,
              "statement_timeout": settings.web_statement_timeout_ms} if web else {}
    limits = {name: ms for name, ms in limits.items() if ms}  # 0: PostgreSQL's own (none)
    return DataProvider(settings, tenancy_queries.placement_of, tenancy_queries.dedicated_databases,
                        RedisRoutingChannel(settings.redis_url),
                        connection_settings={name: str(ms) for name, ms in limits.items()})


def build_ports(settings: Settings) -> dict[str, Any]:
    """The adapters message handlers use, chosen by configuration."""
    return {
        "mailer": build_mailer(settings),
        "mail_from": settings.mail_from,
        "mail_throttle_per_hour": settings.mail_throttle_per_hour,
        "catalogues": build_catalogues(settings),
        "tenant_texts": TenantTexts(),
        "public_url": settings.public_url,
        "sealer": PasswordSealer(settings.secret_key),
        "email_verification_lifetime": settings.email_verification_lifetime,
        "gateway": build_gateway(settings),
        "storage": build_storage(settings),
    }


def build_revocations(settings: Settings, provider: DataProvider) -> RevocationStore:
    """The revocation store, rebuilt from the management database when Redis is emptied."""

    def load_revoked(since: datetime) -> list[uuid.UUID]:
        try:
            with provider.management() as session:
                return sessions.revoked_since(session, since)
        except SQLAlchemyError as exc:  # no database, no trustworthy store: refuse access
            raise RevocationUnavailable(f"cannot read revoked sessions: {exc}") from exc

    client = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2,
                            health_check_interval=30)
    return RevocationStore(client, timedelta(minutes=settings.jwt_access_minutes), load_revoked)


def build_gateway(settings: Settings) -> PaymentGateway:
    """The payment gateway of ``PAYMENT_GATEWAY``: the sandbox card processor, whose own
    ledger lives in the management database (written on connections of its own)."""
    return SandboxGateway(settings.database_url, settings.secret_key)


def build_mailer(settings: Settings) -> Mailer:
    """The mail transport of ``MAIL_TRANSPORT``: the Maildir under VAR_DIR, SMTP or Amazon SES."""
    if settings.mail_transport == "smtp":
        return SmtpMailer(settings.smtp_host, settings.smtp_port, sender=settings.mail_from,
                          username=settings.smtp_username, password=settings.smtp_password,
                          starttls=settings.smtp_starttls, use_ssl=settings.smtp_ssl,
                          ca_file=settings.smtp_ca_file, timeout=settings.smtp_timeout)
    if settings.mail_transport == "ses":
        # Imported here: only this transport needs boto3, which costs every process a fifth of
        # a second to import.
        from domain.notifications.ses import SesMailer  # noqa: PLC0415
        return SesMailer(settings.ses_region, sender=settings.mail_from,
                         endpoint_url=settings.ses_endpoint_url,
                         configuration_set=settings.ses_configuration_set, timeout=settings.smtp_timeout)
    return MaildirMailer(settings.var_dir / "mail", settings.mail_from)


def build_catalogues(settings: Settings) -> Catalogues:
    """The product's gettext catalogues (translations/), with ``DEFAULT_LOCALE`` as the fallback."""
    return Catalogues(TRANSLATIONS_DIR, settings.default_locale)
