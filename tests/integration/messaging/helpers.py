"""Helpers of the message-plane tests: signups, outbox rows, lost publishes, relay sweeps."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import redis
from celery import Celery
from sqlalchemy import func, select, update

from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.identity.services import PasswordSealer
from domain.messaging import outbox, relay
from domain.messaging.contracts import Contract
from domain.messaging.contracts.tenancy import ProvisionTenantV1, TenantProvisionedV1
from domain.messaging.outbox import Envelope
from domain.messaging.tables import inbox
from domain.messaging.tables import outbox as outbox_table
from domain.tenancy import services as tenancy
from domain.tenancy.models import Tenant
from tests.support import refs
from tests.support.waiting import wait_for
from workers.publisher import publish


def signup_request() -> tenancy.SignupRequest:
    """A valid signup with a fresh slug and email."""
    return tenancy.SignupRequest(**refs.signup_body())


def sign_up(provider: DataProvider, request: tenancy.SignupRequest | None = None,
            correlation_id: str | None = None) -> tuple[uuid.UUID, list[Envelope]]:
    """Record and commit a signup; return its id and its envelopes, not published."""
    request = request or signup_request()
    with provider.management() as session:
        signup_id = tenancy.sign_up_tenant(session, request, correlation_id=correlation_id,
                                           sealer=PasswordSealer(provider.settings.secret_key))
        envelopes = outbox.take_pending(session)
        session.commit()
    return signup_id, envelopes


def trial_tenant(provider: DataProvider) -> uuid.UUID:
    """A trial tenant, signed up and committed (its provisioning not run): its id."""
    request = signup_request()
    sign_up(provider, request)
    tenant_id = tenant_id_of(provider, request.slug)
    assert tenant_id is not None
    return tenant_id


def tenant_id_of(provider: DataProvider, slug: str) -> uuid.UUID | None:
    """The id of the tenant with ``slug``, if it was written."""
    with provider.management() as session:
        return session.scalar(select(Tenant.id).where(Tenant.slug == slug))


def record(provider: DataProvider, message: Contract, tenant_id: uuid.UUID | None = None) -> list[Envelope]:
    """Record ``message`` in the management outbox and commit, without publishing (a lost publish)."""
    with provider.management() as session:
        envelopes = outbox.record(session, message, tenant_id=tenant_id, correlation_id=refs.slug("corr"))
        outbox.discard_pending(session)
        session.commit()
    return envelopes


def harmless() -> ProvisionTenantV1:
    """A command whose handler completes without effect (there is no such signup)."""
    return ProvisionTenantV1(signup_id=uuid.uuid4(), tenant_id=uuid.uuid4())


def welcome(tenant_id: uuid.UUID, admin_user_id: uuid.UUID | None = None) -> TenantProvisionedV1:
    """A TenantProvisioned event for ``tenant_id``."""
    return TenantProvisionedV1(tenant_id=tenant_id, tenant_name="Org",
                               admin_user_id=admin_user_id or uuid.uuid4(), admin_name="Ada Admin",
                               admin_email=refs.email("admin"))


def outbox_row(provider: DataProvider, delivery_id: str | uuid.UUID,
               db_key: str = "management") -> Mapping[str, Any] | None:
    """One outbox row as a mapping."""
    with provider.unscoped(db_key) as session:
        return session.execute(select(outbox_table).where(
            outbox_table.c.id == uuid.UUID(str(delivery_id)))).mappings().first()


def outbox_rows(provider: DataProvider, **where: Any) -> list[Mapping[str, Any]]:
    """Management outbox rows whose columns equal ``where``."""
    query = select(outbox_table).where(*(outbox_table.c[k] == v for k, v in where.items()))
    with provider.unscoped("management") as session:
        return list(session.execute(query).mappings().all())


def inbox_has(provider: DataProvider, db_key: str, delivery_id: str) -> bool:
    """True if ``db_key``'s inbox recorded the delivery."""
    with provider.unscoped(db_key) as session:
        return bool(session.scalar(select(func.count()).select_from(inbox).where(
            inbox.c.message_id == uuid.UUID(delivery_id))))


def is_overdue(provider: DataProvider, delivery_id: str) -> bool:
    """True once the delivery is past its lease and not completed (what the relay picks up)."""
    return any(str(row.id) == delivery_id for row in relay.list_all(provider, "overdue", limit=10_000).rows)


def sweep_once(provider: DataProvider, publisher: Celery) -> tuple[list[Envelope], datetime, datetime]:
    """One relay round with ``provider``'s settings, as the beat job runs it; return what it
    re-sent and the clock just before and after (bounds of the sweep's own clock)."""
    settings = provider.settings
    resent: list[Envelope] = []

    def send(envelopes: list[Envelope]) -> int:
        resent.extend(envelopes)
        return publish(publisher, envelopes)

    before = utcnow()
    relay.sweep_all(provider, lease_seconds=settings.message_lease_seconds,
                    max_attempts=settings.message_max_attempts, batch=settings.relay_batch_size,
                    publish=send)
    return resent, before, utcnow()


def resent_ids(sweep: tuple[list[Envelope], datetime, datetime]) -> set[str]:
    """The delivery ids a sweep re-sent."""
    return {envelope.id for envelope in sweep[0]}


def use_up_attempts(provider: DataProvider, delivery_id: str) -> None:
    """Make a delivery look as if every attempt had been spent and the last lease had run out."""
    with provider.unscoped("management") as session:
        session.execute(update(outbox_table).where(outbox_table.c.id == uuid.UUID(delivery_id)).values(
            attempts=provider.settings.message_max_attempts,
            next_attempt_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def bury(provider: DataProvider, publisher: Celery, delivery_id: str) -> None:
    """Have the relay bury a delivery whose attempts are all spent."""
    use_up_attempts(provider, delivery_id)
    wait_for(lambda: sweep_once(provider, publisher) is not None
             and outbox_row(provider, delivery_id)["dead_at"],  # type: ignore[index]
             timeout=30, message="the relay to bury the message")


def clear_last_error(provider: DataProvider, delivery_id: str) -> None:
    """Forget a delivery's last error, so the next failure can be seen arriving."""
    with provider.unscoped("management") as session:
        session.execute(update(outbox_table).where(outbox_table.c.id == uuid.UUID(delivery_id))
                        .values(last_error=None))
        session.commit()


def wait_for_failure(provider: DataProvider, delivery_id: str, what: str) -> str:
    """Wait until a worker has recorded a handler failure on the delivery's outbox row."""
    return wait_for(lambda: (outbox_row(provider, delivery_id) or {}).get("last_error"),
                    timeout=90, message=f"the handler to fail on {what}")


def broker_idle(url: str, queue: str) -> bool:
    """True when the broker at ``url`` holds no message for ``queue`` and none unacknowledged
    (no copy left to run: given up deliveries were acknowledged, not put back)."""
    client = redis.Redis.from_url(url)
    try:
        return client.llen(queue) == 0 and client.hlen("unacked") == 0
    finally:
        client.close()
