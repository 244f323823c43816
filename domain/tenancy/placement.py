"""Placement policy: on which configured PostgreSQL server a promoted tenant's database goes.

Fewest tenants first: the servers of ``PLACEMENT_SERVERS`` are ranked by the dedicated
tenants they hold plus the promotions already headed there; ties go to the server listed
first. A server that does not answer is passed over, so one server down does not stop
promotions while another has room.
"""
from __future__ import annotations

import logging
import uuid
from collections import Counter

import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.db.provider import DataProvider, server_label
from domain.errors import Transient
from domain.tenancy.copying import libpq_dsn
from domain.tenancy.models import Promotion, Tenant

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 3


class NoServerAvailable(Transient):
    """No configured placement server answered."""


def tenants_per_server(session: Session, *, excluding: uuid.UUID | None = None) -> Counter[str]:
    """Dedicated tenants per server label, counting promotions on their way there."""
    counts: Counter[str] = Counter()
    placed = session.execute(select(Tenant.placement_server, func.count())
                             .where(Tenant.placement_server.is_not(None), Tenant.status != "deleted")
                             .group_by(Tenant.placement_server))
    counts.update({row[0]: row[1] for row in placed})
    heading = (select(Promotion.server, func.count())
               .where(Promotion.server.is_not(None), Promotion.status.in_(("pending", "running")))
               .group_by(Promotion.server))
    if excluding is not None:
        heading = heading.where(Promotion.id != excluding)
    counts.update({row[0]: row[1] for row in session.execute(heading)})
    return counts


def choose_server(provider: DataProvider, session: Session, *,
                  promotion_id: uuid.UUID | None = None) -> str:
    """The label of the server the next dedicated database goes to."""
    counts = tenants_per_server(session, excluding=promotion_id)
    servers = list(provider.settings.placement_servers)
    ranked = sorted(range(len(servers)), key=lambda i: (counts[server_label(servers[i])], i))
    for index in ranked:
        if _answers(servers[index]):
            return server_label(servers[index])
        log.warning("placement server %s does not answer; passing it over", server_label(servers[index]))
    raise NoServerAvailable("no placement server answers")


def _answers(url: str) -> bool:
    try:
        psycopg.connect(libpq_dsn(url), connect_timeout=CONNECT_TIMEOUT).close()
    except psycopg.Error:
        return False
    return True
