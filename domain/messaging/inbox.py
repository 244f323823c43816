"""The inbox: a consumer records each delivery it handled in the transaction of its effects."""
from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.messaging.tables import inbox


def claim(session: Session, delivery_id: uuid.UUID, handler: str,
          tenant_id: uuid.UUID | None = None) -> bool:
    """Record the delivery; False if it was already handled (a redelivery to skip).

    A concurrent duplicate blocks on the primary key until the first transaction ends,
    then sees the conflict: the effects happen once.
    """
    result = session.execute(
        insert(inbox).values(message_id=delivery_id, handler=handler, tenant_id=tenant_id)
        .on_conflict_do_nothing(index_elements=[inbox.c.message_id])
        .returning(inbox.c.message_id)
    )
    return result.first() is not None
