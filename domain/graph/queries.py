"""Reading the relation graph: plain lookups and ``WITH RECURSIVE`` walks.

Each step of a walk is a LATERAL lookup by the GUID reached so far (``OFFSET 0`` keeps
the planner from flattening it into a join), probing the index on sources (going up) or on
targets (going down); tenant and relation are checked on the rows found (``(...) IS TRUE``
keeps them out of the index condition). Whatever the planner believes about the table,
every step is then one probe. With tenant and relation as index conditions, a table
without statistics (right after a big import, or with autovacuum off) was planned as a
scan of all the tenant's edges for every step: 0.05 s became 50 s for 1,000 walks.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import TextClause, Uuid, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from domain.graph.models import Edge

REPORTS_TO = "reports_to"
MAX_DEPTH = 10_000

# Everyone under ``root`` at any depth, with their manager and depth (1 = direct report).
# Public so that a benchmark can run exactly this SQL outside the module (bench/orgchart.py).
SUBORDINATES_SQL = """
WITH RECURSIVE under(id, manager_id, depth) AS (
    SELECT e.from_id, e.to_id, 1 FROM relation_edges e
     WHERE e.to_id = :root AND (e.tenant_id = :tenant AND e.relation = :relation) IS TRUE
    UNION ALL
    SELECT e.from_id, e.to_id, u.depth + 1 FROM under u
     CROSS JOIN LATERAL (
        SELECT from_id, to_id FROM relation_edges
         WHERE to_id = u.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE u.depth < :max_depth
)
SELECT id, manager_id, depth FROM under ORDER BY depth, id
"""
# The same statement in the driver's own parameter style.
_SUBORDINATES_DRIVER = re.sub(r":(\w+)", r"%(\1)s", SUBORDINATES_SQL)

# From ``start``'s target up to the top (1 = the direct manager).
_CHAIN = text("""
WITH RECURSIVE up(id, depth) AS (
    SELECT e.to_id, 1 FROM relation_edges e
     WHERE e.from_id = :start AND (e.tenant_id = :tenant AND e.relation = :relation) IS TRUE
    UNION ALL
    SELECT e.to_id, u.depth + 1 FROM up u
     CROSS JOIN LATERAL (
        SELECT to_id FROM relation_edges
         WHERE from_id = u.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE u.depth < :max_depth
)
SELECT id, depth FROM up ORDER BY depth
""")

# The reporting tree among ``members``: its roots are the members whose manager is not a
# member; each member below them once, with its manager and depth (0 = a root).
_CHART = text("""
WITH RECURSIVE chart(id, manager_id, depth) AS (
    SELECT m.id, CAST(NULL AS uuid), 0 FROM unnest(CAST(:members AS uuid[])) AS m(id)
     WHERE NOT EXISTS (
        SELECT 1 FROM relation_edges e
         WHERE e.from_id = m.id AND (e.tenant_id = :tenant AND e.relation = :relation) IS TRUE
           AND e.to_id = ANY(CAST(:members AS uuid[])))
    UNION ALL
    SELECT e.from_id, e.to_id, c.depth + 1 FROM chart c
     CROSS JOIN LATERAL (
        SELECT from_id, to_id FROM relation_edges
         WHERE to_id = c.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE e.from_id = ANY(CAST(:members AS uuid[])) AND c.depth < :max_depth
)
SELECT id, manager_id, depth FROM chart ORDER BY depth
""")


class Link(NamedTuple):
    """A GUID reached by a walk, and how many edges away it is."""

    id: uuid.UUID
    depth: int


class Under(NamedTuple):
    """A GUID below another in a tree relation: its own target (manager) and its depth."""

    id: uuid.UUID
    manager_id: uuid.UUID | None
    depth: int


class EdgeView(NamedTuple):
    """One edge as callers see it."""

    relation: str
    from_id: uuid.UUID
    to_id: uuid.UUID
    created_at: datetime


def _walk(session: Session, statement: TextClause, **params: object) -> list[tuple[object, ...]]:
    params.setdefault("relation", REPORTS_TO)
    params.setdefault("max_depth", MAX_DEPTH)
    return [tuple(row) for row in session.execute(statement, params)]


def subordinates(session: Session, tenant_id: uuid.UUID, root: uuid.UUID,
                 relation: str = REPORTS_TO) -> list[tuple[uuid.UUID, uuid.UUID | None, int]]:
    """Everyone under ``root`` at any depth (``reports_to``: direct and indirect reports), as
    (id, manager id, depth) tuples, nearest first.

    Fetched on the session's own driver connection: a whole company is 10,000 rows, and
    wrapping each in a result row or a named tuple cost a third of the query
    (bench/orgchart.py)."""
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_SUBORDINATES_DRIVER, {"tenant": tenant_id, "relation": relation, "root": root,
                                              "max_depth": MAX_DEPTH})
        return cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()


def chain(session: Session, tenant_id: uuid.UUID, start: uuid.UUID,
          relation: str = REPORTS_TO) -> list[Link]:
    """Everyone above ``start``, nearest first (``reports_to``: the chain of command)."""
    return [Link._make(row) for row in _walk(session, _CHAIN, tenant=tenant_id, start=start,
                                             relation=relation)]


def chart(session: Session, tenant_id: uuid.UUID, members: Collection[uuid.UUID],
          relation: str = REPORTS_TO) -> list[Under]:
    """The tree ``relation`` draws among ``members`` (roots first, then level by level)."""
    if not members:
        return []
    return [Under._make(row) for row in _walk(session, _CHART, tenant=tenant_id,
                                              members=list(members), relation=relation)]


def direct_reports(session: Session, tenant_id: uuid.UUID, target: uuid.UUID,
                   relation: str = REPORTS_TO) -> list[uuid.UUID]:
    """The sources with an edge ``relation`` to ``target`` (``reports_to``: direct reports)."""
    return list(session.scalars(select(Edge.from_id).where(
        Edge.tenant_id == tenant_id, Edge.relation == relation, Edge.to_id == target)))


def targets(session: Session, tenant_id: uuid.UUID, relation: str,
            sources: Collection[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """Source -> target of a tree relation, for ``sources`` (``reports_to``: their managers)."""
    if not sources:
        return {}
    rows = session.execute(select(Edge.from_id, Edge.to_id).where(
        Edge.from_id == any_(bindparam("sources", list(sources), type_=ARRAY(Uuid()))),
        Edge.tenant_id == tenant_id, Edge.relation == relation))
    return dict(rows.all())  # type: ignore[arg-type]


def edges_of(session: Session, tenant_id: uuid.UUID, guid: uuid.UUID) -> list[EdgeView]:
    """Every edge of the tenant from or to ``guid``, oldest first."""
    rows = session.execute(select(Edge.relation, Edge.from_id, Edge.to_id, Edge.created_at).where(
        Edge.tenant_id == tenant_id, (Edge.from_id == guid) | (Edge.to_id == guid))
        .order_by(Edge.created_at, Edge.relation))
    return [EdgeView._make(row) for row in rows]


def count(session: Session, tenant_id: uuid.UUID, relation: str | None = None) -> int:
    """How many edges the tenant has (of ``relation``, if given)."""
    query = text("SELECT count(*) FROM relation_edges WHERE tenant_id = :tenant"
                 + (" AND relation = :relation" if relation else ""))
    return int(session.scalar(query, {"tenant": tenant_id, "relation": relation}) or 0)


def tenants_with_edges(session: Session) -> list[uuid.UUID]:
    """Every tenant that has at least one edge (the integrity report walks them)."""
    return list(session.scalars(text("SELECT DISTINCT tenant_id FROM relation_edges ORDER BY 1")))


def guids_of(session: Session, tenant_id: uuid.UUID) -> set[uuid.UUID]:
    """Every GUID that appears in one of the tenant's edges."""
    rows = session.scalars(text(
        "SELECT from_id FROM relation_edges WHERE tenant_id = :tenant "
        "UNION SELECT to_id FROM relation_edges WHERE tenant_id = :tenant"), {"tenant": tenant_id})
    return set(rows)
