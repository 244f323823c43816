"""The edge table of the relation graph (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column


class Edge(ManagementBase):
    """``from_id`` stands in ``relation`` to ``to_id``, within one tenant (GUIDs only)."""

    __tablename__ = "relation_edges"
    __table_args__ = (
        CheckConstraint("from_id <> to_id", name="not_to_itself"),
        # Each step of a walk probes by GUID (up: by source, down: by target) and then
        # checks tenant and relation (domain/graph/queries.py says why).
        Index("ix_relation_edges_source", "from_id"),
        Index("ix_relation_edges_target", "to_id"),
        # reports_to is a forest: one manager per person (services.TREES).
        Index("uq_relation_edges_one_manager", "tenant_id", "from_id", unique=True,
              postgresql_where=text("relation = 'reports_to'")),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    relation: Mapped[str] = mapped_column(String(40), primary_key=True)
    from_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    to_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = created_at_column()
