"""The inbox: a consumer records each delivery it handled in the transaction of its effects."""
from __future__ import annotations

import uuid

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.db.provider import gated_writes
from domain.db.sql import Sql
from domain.messaging.tables import inbox

_CLAIM = Sql(insert(inbox).values(message_id=bindparam("id"), handler=bindparam("handler"),
                                  tenant_id=bindparam("tenant"))
             .on_conflict_do_nothing(index_elements=[inbox.c.message_id]).returning(inbox.c.message_id))


def claim(session: Session, delivery_id: uuid.UUID, handler: str,
          tenant_id: uuid.UUID | None = None) -> bool:
    """Record the delivery; False if it was already handled (a redelivery to skip).

    A concurrent duplicate blocks on the primary key until the first transaction ends,
    then sees the conflict: the effects happen once. On a tenant session the claim is the
    transaction's first write: it goes in the round trip of the write gate.
    """
    scoped = session.info.get("tenant_id")
    if scoped is not None and tenant_id != scoped:
        raise PermissionError("another tenant's delivery claimed through a tenant session")
    (claimed,) = gated_writes(session, (_CLAIM, {"id": delivery_id, "handler": handler, "tenant": tenant_id}))
    return bool(claimed)
