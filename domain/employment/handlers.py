"""Message handlers of the employment context."""
from __future__ import annotations

import logging

from domain.graph import services as graph
from domain.messaging.contracts.employment import EmployeeDeletedV1
from domain.messaging.handling import HandlerContext

log = logging.getLogger(__name__)


def remove_edges(ctx: HandlerContext, msg: EmployeeDeletedV1) -> None:
    """Remove a deleted employee's edges from the relation graph (management database)."""
    removed = graph.remove_edges_of(ctx.session, msg.tenant_id, msg.employee_id)
    log.info("removed %s edge(s) of deleted employee %s", removed, msg.employee_id)
