"""Composition root: the data provider, the revocation store and the handlers' adapters
(cosmicpython bootstrap)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from domain.assets.storage import build_storage
from domain.db.provider import DataProvider
from domain.db.routing import RedisRoutingChannel
from domain.identity import sessions
from domain.identity.revocation import RevocationStore, RevocationUnavailable
from domain.identity.services import PasswordSealer
from domain.notifications.mail import MaildirMailer
from domain.purchases.gateway import PaymentGateway
from domain.purchases.sandbox import SandboxGateway
from domain.tenancy import queries as tenancy_queries


def build_provider(settings: Settings) -> DataProvider:
    """The data provider for one process; routing changes travel over the broker's Redis."""
    return DataProvider(settings, tenancy_queries.placement_of, tenancy_queries.dedicated_databases,
                        RedisRoutingChannel(settings.redis_url))


def build_ports(settings: Settings) -> dict[str, Any]:
    """The adapters message handlers use, chosen by configuration."""
    return {
        "mailer": MaildirMailer(settings.var_dir / "mail", settings.mail_from),
        "public_url": settings.public_url,
        "sealer": PasswordSealer(settings.secret_key),
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
