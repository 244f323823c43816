"""The outbox and inbox tables, present in the management database and every tenant database."""
from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB

from domain.db.base import NAMING

metadata = MetaData(naming_convention=NAMING)

outbox = Table(
    "outbox", metadata,
    Column("id", Uuid, primary_key=True),            # delivery id == Celery task id
    Column("event_id", Uuid, nullable=False),        # shared by every delivery of one event
    Column("type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("handler", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("tenant_id", Uuid),
    Column("correlation_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    # When the last copy was sent; it travels in the message too, so the relay can tell
    # whether that copy is still waiting in its queue (see relay.sweep).
    Column("sent_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
    Column("dead_at", DateTime(timezone=True)),
    Column("last_error", Text),
    # Set while admission control holds the delivery back (not sent; domain.messaging.fairness).
    Column("parked_at", DateTime(timezone=True)),
)
Index("ix_outbox_due", outbox.c.next_attempt_at,
      postgresql_where=text("completed_at IS NULL AND dead_at IS NULL"))
Index("ix_outbox_dead", outbox.c.dead_at, postgresql_where=text("dead_at IS NOT NULL"))
# A tenant's open deliveries by handler: what admission control counts and releases.
Index("ix_outbox_open_by_tenant", outbox.c.tenant_id, outbox.c.handler, outbox.c.created_at,
      postgresql_where=text("completed_at IS NULL AND dead_at IS NULL"))

inbox = Table(
    "inbox", metadata,
    Column("message_id", Uuid, primary_key=True),
    Column("handler", Text, nullable=False),
    # Whose message it was: promotion moves a tenant's inbox rows with its data, so a
    # redelivery after the move is still recognised.
    Column("tenant_id", Uuid),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
