"""Typed relations between employees, kept in the relation graph (domain.graph).

Employment is the graph's caller for its people: before any edge is written it shows the
graph that both GUIDs are the tenant's employees (``queries.existing_ids``, FOR SHARE:
neither can be deleted until the transaction ends). The caller commits the graph's
session first and the tenant's second, so a delete waiting on those rows runs after the
edge exists, and its ``EmployeeDeleted`` handler removes it again.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.employment import queries
from domain.employment.errors import InvalidInput
from domain.employment.queries import PersonView
from domain.employment.values import clean_email
from domain.errors import NotFound
from domain.graph import queries as graph_queries
from domain.graph import services as graph
from domain.graph.services import CycleRefused, DepthRefused, OwnedIds

REPORTS_TO = "reports_to"
RELATIONS = (REPORTS_TO, "deputy_of", "mentor_of")


@dataclass(frozen=True)
class RelationView:
    """One edge of an employee: the relation, its two ends, and the other person."""

    relation: str
    from_id: uuid.UUID
    to_id: uuid.UUID
    other: PersonView | None  # None: the other end is not (any longer) an employee


def owned_by(db: Session) -> OwnedIds:
    """The graph's ownership check for the tenant of ``db``: which GUIDs are its
    employees, held until the transaction ends."""

    def owned(ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        return queries.existing_ids(db, ids, lock=True)

    return owned


def check_relation(relation: str) -> str:
    """One of the relations employees can have."""
    if relation not in RELATIONS:
        raise InvalidInput(f"must be one of {', '.join(RELATIONS)}", field="relation")
    return relation


def link(db: Session, graph_db: Session, tenant_id: uuid.UUID, *, relation: str,
         from_id: uuid.UUID, to_id: uuid.UUID) -> bool:
    """``from_id`` stands in ``relation`` to ``to_id``; False if that was already so.

    A reports_to edge that would close a cycle is refused (409, ``to_id``), as is a second
    manager for the same person (409, ``from_id``: remove the first line first).
    """
    check_relation(relation)
    return graph.add_edge(graph_db, tenant_id, relation, from_id=from_id, to_id=to_id, owned=owned_by(db))


def unlink(graph_db: Session, tenant_id: uuid.UUID, *, relation: str, from_id: uuid.UUID,
           to_id: uuid.UUID) -> None:
    """Remove one relation of the tenant (NotFound if there is none)."""
    if relation not in RELATIONS or not graph.remove_edge(graph_db, tenant_id, relation, from_id=from_id,
                                                          to_id=to_id):
        raise NotFound("no such relation", field="relation")


def set_manager(db: Session, graph_db: Session, tenant_id: uuid.UUID, employee_id: uuid.UUID,
                manager_email: str) -> None:
    """``employee_id`` reports to the employee with ``manager_email`` (moved if needed)."""
    email = clean_email(manager_email, field="manager_email")
    manager_id = queries.ids_by_email(db, [email]).get(email)
    if manager_id is None:
        raise NotFound("no employee has this work email", field="manager_email")
    try:
        graph.add_edge(graph_db, tenant_id, REPORTS_TO, from_id=employee_id, to_id=manager_id,
                       owned=owned_by(db), replace=True)
    except CycleRefused as exc:
        raise CycleRefused(f"{exc.reason}: they would report to someone who reports to them",
                           field="manager_email") from None
    except DepthRefused as exc:
        raise DepthRefused(exc.reason, field="manager_email") from None


def clear_manager(graph_db: Session, tenant_id: uuid.UUID, employee_id: uuid.UUID) -> None:
    """``employee_id`` reports to nobody (if they reported to someone)."""
    graph.clear_target(graph_db, tenant_id, REPORTS_TO, employee_id)


def manager_of(db: Session, graph_db: Session, tenant_id: uuid.UUID,
               employee_id: uuid.UUID) -> PersonView | None:
    """Whom the employee reports to (None: nobody, or someone no longer employed)."""
    manager = graph_queries.targets(graph_db, tenant_id, REPORTS_TO, [employee_id]).get(employee_id)
    return queries.people(db, [manager]).get(manager) if manager else None


def relations_of(db: Session, graph_db: Session, tenant_id: uuid.UUID,
                 employee_id: uuid.UUID) -> list[RelationView]:
    """Every relation of one employee, both directions (NotFound for anyone else's)."""
    if employee_id not in queries.existing_ids(db, [employee_id]):
        raise NotFound("no such employee", field="employee_id")
    edges = graph_queries.edges_of(graph_db, tenant_id, employee_id)
    others = queries.people(db, {e.to_id if e.from_id == employee_id else e.from_id for e in edges})
    return [RelationView(e.relation, e.from_id, e.to_id,
                         others.get(e.to_id if e.from_id == employee_id else e.from_id)) for e in edges]
