"""Writing the relation graph: one edge, a batch of tree edges, removal.

A caller never writes an edge on its word alone: it passes ``owned``, which answers which
of some GUIDs belong to its tenant (the owning context's query, e.g. employment's
``existing_ids``), and an edge naming any other GUID is refused as not found. Tree
relations (``TREES``) are checked for cycles with a recursive walk while the tenant's graph
lock (a transaction-level advisory lock) is held: two requests adding edges to one tenant
at once take turns, so they cannot close a cycle between them. No chain of a tree relation
may be longer than ``MAX_DEPTH`` edges, the depth every walk reads to: an edge that would
make one longer is refused, and so is an edge whose check meets a longer chain (made before
the cap was held), since the walk cannot see past the cap to rule out a cycle.
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

# Every walk of a tree relation reads MAX_DEPTH edges at most, so no chain may be longer:
# a check that finds a longer one (or a loop it cannot get out of) cannot tell what lies
# beyond, and refuses the write. (Each step probes by GUID; domain/graph/queries.py says why.)

# Whether ``child`` is ``parent`` or above it (an edge child -> parent would close a cycle),
# and how many edges lie above ``parent``: more than :max_depth means the walk stopped at
# the cap and could not see the rest.
_ABOVE = text("""
WITH RECURSIVE up(id, depth) AS (
    SELECT CAST(:parent AS uuid), 0
    UNION ALL
    SELECT e.to_id, u.depth + 1 FROM up u
     CROSS JOIN LATERAL (
        SELECT to_id FROM relation_edges
         WHERE from_id = u.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE u.id <> :child AND u.depth <= :max_depth
)
SELECT coalesce(bool_or(id = :child), false), max(depth) FROM up
""")

# True if a chain goes more than :room edges down from ``child``.
_DEEPER_BELOW = text("""
WITH RECURSIVE down(id, depth) AS (
    SELECT CAST(:child AS uuid), 0
    UNION ALL
    SELECT e.from_id, d.depth + 1 FROM down d
     CROSS JOIN LATERAL (
        SELECT from_id FROM relation_edges
         WHERE to_id = d.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE d.depth <= :room
)
SELECT EXISTS (SELECT 1 FROM down WHERE depth > :room)
""")

# The walk up from each of ``starts`` (the sources of a batch just written), to the top.
_WALK_UP = """
WITH RECURSIVE walk(start, id, depth) AS (
    SELECT e.from_id, e.to_id, 1 FROM relation_edges e
     WHERE e.from_id = ANY(CAST(:starts AS uuid[]))
       AND (e.tenant_id = :tenant AND e.relation = :relation) IS TRUE
    UNION ALL
    SELECT w.start, e.to_id, w.depth + 1 FROM walk w
     CROSS JOIN LATERAL (
        SELECT to_id FROM relation_edges
         WHERE from_id = w.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE w.id <> w.start AND w.depth <= :max_depth
)"""

# True if a walk up from one of ``starts`` comes back to it (a cycle) or goes past the cap.
# Any new cycle holds a new edge, whose source is a start, so it is found from there.
# PostgreSQL evaluates the walk only as far as EXISTS pulls it: a cycle is found after as
# many steps as it is long, and a walk that ran into a cycle through someone else stops with it.
_ANY_CYCLE = text(_WALK_UP + """
SELECT EXISTS (SELECT 1 FROM walk WHERE id = start OR depth > :max_depth)
""")

# True if, with the batch written (and no cycle), some chain through a start is longer than
# the cap: walked down from the topmost starts (no other start above them; the others are in
# their subtrees), each from its own depth, so every GUID below them is visited once.
_ANY_TOO_DEEP = text(_WALK_UP + """,
tops(id, depth) AS (
    SELECT start, max(depth) FROM walk GROUP BY start
    HAVING NOT bool_or(id = ANY(CAST(:starts AS uuid[])))
),
down(id, depth) AS (
    SELECT id, depth FROM tops
    UNION ALL
    SELECT e.from_id, d.depth + 1 FROM down d
     CROSS JOIN LATERAL (
        SELECT from_id FROM relation_edges
         WHERE to_id = d.id AND (tenant_id = :tenant AND relation = :relation) IS TRUE OFFSET 0) e
     WHERE d.depth <= :max_depth
)
SELECT EXISTS (SELECT 1 FROM down WHERE depth > :max_depth)
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


class DepthRefused(Conflict):
    """The edge would make a chain of a tree relation longer than ``MAX_DEPTH``, or the chain
    above its target already is, so a cycle check cannot finish (409)."""


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


def tree_refusal(session: Session, tenant_id: uuid.UUID, relation: str, *, child: uuid.UUID,
                 parent: uuid.UUID) -> CycleRefused | DepthRefused | None:
    """Why an edge ``child -> parent`` may not join the tree relation ``relation`` (it would
    close a cycle or make a chain longer than ``MAX_DEPTH``, or that cannot be known), or None."""
    params = {"tenant": tenant_id, "relation": relation, "child": child, "parent": parent,
              "max_depth": MAX_DEPTH}
    cycle, above = session.execute(_ABOVE, params).one()
    if cycle:
        return CycleRefused(f"{relation} would close a cycle", field="to_id")
    if above > MAX_DEPTH:
        return DepthRefused(f"the {relation} chain above the target is longer than {MAX_DEPTH:,} edges, "
                            "so this edge cannot be checked", field="to_id")
    if session.scalar(_DEEPER_BELOW, {**params, "room": MAX_DEPTH - above - 1}):
        return DepthRefused(f"{relation} chains are at most {MAX_DEPTH:,} edges long; this edge "
                            "would make one longer", field="to_id")
    return None


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
        refusal = tree_refusal(session, tenant_id, relation, child=from_id, parent=to_id)
        if isinstance(refusal, CycleRefused):
            raise CycleRefused(f"{relation} would close a cycle: {to_id} is already under {from_id}",
                               field="to_id")
        if refusal is not None:
            raise refusal
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
    and checked with one walk up (cycles, chains past ``MAX_DEPTH``) and one down (chains
    made too long); only if either finds a problem are the pairs written one by one, in
    order, each checked on its own.
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
        params = {"tenant": tenant_id, "relation": relation, "starts": list(changes), "max_depth": MAX_DEPTH}
        if not session.scalar(_ANY_CYCLE, params) and not session.scalar(_ANY_TOO_DEEP, params):
            return sorted(refused, key=lambda r: r.index)
        batch.rollback()
    for source, (index, target) in sorted(changes.items(), key=lambda item: item[1][0]):
        refusal = tree_refusal(session, tenant_id, relation, child=source, parent=target)
        if refusal is not None:
            refused.append(Refusal(index, "to_id", refusal.reason))
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

