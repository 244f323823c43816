"""Writing the relation graph: one edge, a batch of tree edges, removal.

A caller never writes an edge on its word alone: it passes ``owned``, which answers which
of some GUIDs belong to its tenant (the owning context's query, e.g. employment's
``existing_ids``), and an edge naming any other GUID is refused as not found. Tree
relations (``TREES``) are checked for cycles with a recursive walk while the tenant's graph
lock (a transaction-level advisory lock) is held: two requests adding edges to one tenant
at once take turns, so they cannot close a cycle between them.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from domain.db.sql import Sql, pipelined
from domain.errors import Conflict, DomainError, NotFound
from domain.graph.models import Edge
from domain.graph.queries import MAX_DEPTH, targets

# Which of these GUIDs belong to the caller's tenant (the others are unknown to it).
OwnedIds = Callable[[Collection[uuid.UUID]], set[uuid.UUID]]

RELATION = re.compile(r"[a-z][a-z_]{1,39}")
# Relations that form a forest: one target per source (the unique index
# uq_relation_edges_one_manager), and no cycles.
TREES = frozenset({"reports_to"})
LOCK_CLASS = 0x67726170  # "grap": the first key of every tenant's graph lock

# True if ``child`` is ``parent`` or above it: an edge child -> parent would close a cycle.
# (Each step probes by GUID; domain/graph/queries.py says why.)
_WOULD_CYCLE = text("""
WITH RECURSIVE up(id, depth) AS (
    SELECT CAST(:parent AS uuid), 0
    UNION ALL
    SELECT e.to_id, u.depth + 1 FROM up u
     CROSS JOIN LATERAL (
        SELECT to_id FROM relation_edges
         WHERE from_id = u.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE u.id <> :child AND u.depth < :max_depth
)
SELECT EXISTS (SELECT 1 FROM up WHERE id = :child)
""")

# True if a walk up from one of ``starts`` comes back to it: a cycle. Any new cycle holds a
# new edge, whose source is a start, so it is found from there. PostgreSQL evaluates the
# walk only as far as EXISTS pulls it: a cycle is found after as many steps as it is long,
# and a walk that ran into a cycle through someone else stops with it.
_ANY_CYCLE = text("""
WITH RECURSIVE walk(start, id, depth) AS (
    SELECT e.from_id, e.to_id, 1 FROM relation_edges e
     WHERE e.from_id = ANY(CAST(:starts AS uuid[]))
       AND (e.tenant_id = :tenant AND e.relation = :relation) IS TRUE
    UNION ALL
    SELECT w.start, e.to_id, w.depth + 1 FROM walk w
     CROSS JOIN LATERAL (
        SELECT to_id FROM relation_edges
         WHERE from_id = w.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE w.id <> w.start AND w.depth < :max_depth
)
SELECT EXISTS (SELECT 1 FROM walk WHERE id = start)
""")

_INSERT_MANY = text("""
INSERT INTO relation_edges (tenant_id, relation, from_id, to_id)
SELECT :tenant, :relation, pair.from_id, pair.to_id
  FROM unnest(CAST(:sources AS uuid[]), CAST(:targets AS uuid[])) AS pair(from_id, to_id)
ON CONFLICT DO NOTHING
""")


class InvalidRelation(DomainError):
    """A relation name the graph does not take (422)."""

    status = 422


class CycleRefused(Conflict):
    """The edge would close a cycle in a tree relation (409)."""


@dataclass(frozen=True)
class Refusal:
    """A pair of a batch that was not written, and why."""

    index: int
    field: str
    reason: str


def check_relation(relation: str, field: str = "relation") -> str:
    """``relation`` if it is a well-formed relation name (lower-case letters and _)."""
    if not RELATION.fullmatch(relation):
        raise InvalidRelation("a relation is 2-40 lower-case letters and _", field=field)
    return relation


def lock_key(tenant_id: uuid.UUID) -> tuple[int, int]:
    """The advisory lock (two int keys, management database) of a tenant's graph writes."""
    return LOCK_CLASS, int.from_bytes(tenant_id.bytes[:4], "big", signed=True)


def lock_tenant(session: Session, tenant_id: uuid.UUID) -> None:
    """Hold the tenant's graph lock until the transaction ends (writers take turns)."""
    cls, key = lock_key(tenant_id)
    session.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": cls, "key": key})


def _owned_or_refuse(owned: OwnedIds, from_id: uuid.UUID, to_id: uuid.UUID) -> None:
    found = owned({from_id, to_id})
    if from_id not in found:
        raise NotFound("no such employee", field="from_id")
    if to_id not in found:
        raise NotFound("no such employee", field="to_id")


def would_cycle(session: Session, tenant_id: uuid.UUID, relation: str, *, child: uuid.UUID,
                parent: uuid.UUID) -> bool:
    """True if an edge ``child -> parent`` would close a cycle of ``relation``."""
    return bool(session.scalar(_WOULD_CYCLE, {"tenant": tenant_id, "relation": relation,
                                              "child": child, "parent": parent,
                                              "max_depth": MAX_DEPTH}))


def add_edge(session: Session, tenant_id: uuid.UUID, relation: str, *, from_id: uuid.UUID,
             to_id: uuid.UUID, owned: OwnedIds, replace: bool = False) -> bool:
    """Write the edge ``from_id -relation-> to_id``; False if it already existed.

    Both GUIDs must be the tenant's (``owned``); an edge of a tree relation must not close a
    cycle, and its source must have no other target unless ``replace`` (which moves it).
    """
    check_relation(relation)
    if from_id == to_id:
        raise CycleRefused("an edge cannot go from a GUID to itself", field="to_id")
    _owned_or_refuse(owned, from_id, to_id)
    lock_tenant(session, tenant_id)
    exists = session.scalar(select(Edge.created_at).where(
        Edge.tenant_id == tenant_id, Edge.relation == relation, Edge.from_id == from_id,
        Edge.to_id == to_id))
    if exists is not None:
        return False
    if relation in TREES:
        current = targets(session, tenant_id, relation, [from_id]).get(from_id)
        if current is not None and not replace:
            raise Conflict(f"already has a {relation} edge (to {current}); remove it first",
                           field="from_id")
        if would_cycle(session, tenant_id, relation, child=from_id, parent=to_id):
            raise CycleRefused(f"{relation} would close a cycle: {to_id} is already under {from_id}",
                               field="to_id")
        if current is not None:
            _remove_sources(session, tenant_id, relation, [from_id])
    session.execute(insert(Edge).values(tenant_id=tenant_id, relation=relation, from_id=from_id,
                                        to_id=to_id))
    return True


def set_targets(session: Session, tenant_id: uuid.UUID, relation: str,
                pairs: Sequence[tuple[uuid.UUID, uuid.UUID]], *, owned: OwnedIds) -> list[Refusal]:
    """Give each source of ``pairs`` its target in the tree relation ``relation`` (moving it
    if it had another); return the pairs refused (an unknown GUID, a cycle).

    Idempotent: a pair already in the graph changes nothing. The batch is written at once
    and checked with one recursive walk; only if that walk finds a cycle are the pairs
    written one by one, in order, each checked on its own.
    """
    check_relation(relation)
    if relation not in TREES:
        raise InvalidRelation(f"{relation} is not a tree relation", field="relation")
    found = owned({guid for pair in pairs for guid in pair})
    refused: list[Refusal] = []
    wanted: dict[uuid.UUID, tuple[int, uuid.UUID]] = {}
    for index, (source, target) in enumerate(pairs):
        problem = _pair_problem(source, target, found)
        if problem is not None:
            refused.append(Refusal(index, *problem))
        else:
            wanted[source] = (index, target)  # a later pair for the same source wins
    lock_tenant(session, tenant_id)
    current = targets(session, tenant_id, relation, list(wanted))
    changes = {s: it for s, it in wanted.items() if current.get(s) != it[1]}
    if not changes:
        return refused
    with session.begin_nested() as batch:
        _write(session, tenant_id, relation, changes, moved=[s for s in changes if s in current])
        if not session.scalar(_ANY_CYCLE, {"tenant": tenant_id, "relation": relation,
                                           "starts": list(changes), "max_depth": MAX_DEPTH}):
            return sorted(refused, key=lambda r: r.index)
        batch.rollback()
    for source, (index, target) in sorted(changes.items(), key=lambda item: item[1][0]):
        if would_cycle(session, tenant_id, relation, child=source, parent=target):
            refused.append(Refusal(index, "to_id", f"{relation} would close a cycle"))
        else:
            _write(session, tenant_id, relation, {source: (index, target)},
                   moved=[source] if source in current else [])
    return sorted(refused, key=lambda r: r.index)


def _pair_problem(source: uuid.UUID, target: uuid.UUID, found: set[uuid.UUID]) -> tuple[str, str] | None:
    if source not in found:
        return "from_id", "no such employee"
    if target not in found:
        return "to_id", "no such employee"
    if source == target:
        return "to_id", "an edge cannot go from a GUID to itself"
    return None


def _write(session: Session, tenant_id: uuid.UUID, relation: str,
           changes: dict[uuid.UUID, tuple[int, uuid.UUID]], *, moved: list[uuid.UUID]) -> None:
    if moved:
        _remove_sources(session, tenant_id, relation, moved)
    session.execute(_INSERT_MANY, {"tenant": tenant_id, "relation": relation,
                                   "sources": list(changes),
                                   "targets": [target for _, target in changes.values()]})


def _remove_sources(session: Session, tenant_id: uuid.UUID, relation: str,
                    sources: list[uuid.UUID]) -> None:
    session.execute(delete(Edge).where(Edge.tenant_id == tenant_id, Edge.relation == relation,
                                       Edge.from_id.in_(sources)))


def remove_edge(session: Session, tenant_id: uuid.UUID, relation: str, *, from_id: uuid.UUID,
                to_id: uuid.UUID) -> bool:
    """Remove one edge of the tenant; False if there was none."""
    check_relation(relation)
    result = session.execute(delete(Edge).where(
        Edge.tenant_id == tenant_id, Edge.relation == relation, Edge.from_id == from_id,
        Edge.to_id == to_id).returning(Edge.from_id))
    return result.first() is not None


def clear_target(session: Session, tenant_id: uuid.UUID, relation: str, source: uuid.UUID) -> bool:
    """Remove ``source``'s edge of the tree relation ``relation``; False if it had none."""
    check_relation(relation)
    result = session.execute(delete(Edge).where(
        Edge.tenant_id == tenant_id, Edge.relation == relation, Edge.from_id == source)
        .returning(Edge.from_id))
    return result.first() is not None


_EDGES = Edge.__table__.c
# Built once: a deleted employee's removal runs it for every deletion (the graph is on the
# management database, so it goes straight to the driver; no session holds edges as objects).
_REMOVE_EDGES_OF = Sql(delete(Edge.__table__).where(
    _EDGES.tenant_id == bindparam("tenant"),
    (_EDGES.from_id == bindparam("guid")) | (_EDGES.to_id == bindparam("guid"))).returning(_EDGES.from_id))


def remove_edges_of(session: Session, tenant_id: uuid.UUID, guid: uuid.UUID) -> int:
    """Remove every edge of the tenant from or to ``guid``; how many there were."""
    (removed,) = pipelined(session.connection(), (_REMOVE_EDGES_OF, {"tenant": tenant_id, "guid": guid}))
    return len(removed)

