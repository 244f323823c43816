"""Reporting lines: direct reports, the chain of command, everyone under a person, and the
org chart of a unit, answered by the relation graph's recursive queries.

Each first checks the employee (or unit) is the tenant's, then walks the graph, then
names the people found (GUIDs the tenant no longer has are left out).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.employment import queries
from domain.employment.queries import OrgUnitView, PersonView
from domain.errors import NotFound
from domain.graph import queries as graph_queries
from domain.graph.queries import Under


@dataclass(frozen=True)
class ReportLine:
    """A person in a reporting structure: their manager and how far they are."""

    person: PersonView
    manager_id: uuid.UUID | None
    depth: int


@dataclass(frozen=True)
class Chart:
    """The reporting tree of an org unit: roots first, each person followed by their reports."""

    unit: OrgUnitView
    sub_units: bool
    lines: list[ReportLine]


def _known(db: Session, employee_id: uuid.UUID) -> None:
    if employee_id not in queries.existing_ids(db, [employee_id]):
        raise NotFound("no such employee", field="employee_id")


def direct_reports(db: Session, graph_db: Session, tenant_id: uuid.UUID,
                   employee_id: uuid.UUID) -> list[PersonView]:
    """Who reports to the employee directly, by name."""
    _known(db, employee_id)
    found = queries.people(db, graph_queries.direct_reports(graph_db, tenant_id, employee_id))
    return sorted(found.values(), key=lambda p: (p.name, p.work_email))


def chain_of_command(db: Session, graph_db: Session, tenant_id: uuid.UUID,
                     employee_id: uuid.UUID) -> list[ReportLine]:
    """The employee's manager, their manager, ... up to the top (depth 1 = the manager)."""
    _known(db, employee_id)
    chain = graph_queries.chain(graph_db, tenant_id, employee_id)
    found = queries.people(db, [link.id for link in chain])
    ups: list[uuid.UUID | None] = [link.id for link in chain[1:]] + [None] if chain else []
    return [ReportLine(found[link.id], up, link.depth) for link, up in zip(chain, ups, strict=True)
            if link.id in found]


def everyone_under(db: Session, graph_db: Session, tenant_id: uuid.UUID,
                   employee_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID | None, int]]:
    """Everyone under the employee at any depth: (GUID, manager's GUID, depth), nearest first."""
    _known(db, employee_id)
    return graph_queries.subordinates(graph_db, tenant_id, employee_id)


# Subordinates named per page: a manager of a hundred thousand (one import can make one) cost
# the whole list's names and 21 MB of JSON per request.
MAX_SUBORDINATES_PER_PAGE = 1_000


def subordinates(db: Session, graph_db: Session, tenant_id: uuid.UUID, employee_id: uuid.UUID, *,
                 page: int = 1, per_page: int = MAX_SUBORDINATES_PER_PAGE) -> queries.Page[ReportLine]:
    """One page of everyone under the employee at any depth, named, nearest first. Only the
    page's people are named; ``total`` is everyone the graph has under them (a page leaves
    out a GUID the tenant no longer has, until its edges are gone)."""
    per_page = max(1, min(per_page, MAX_SUBORDINATES_PER_PAGE))
    page = max(1, page)
    under = everyone_under(db, graph_db, tenant_id, employee_id)
    part = under[(page - 1) * per_page:page * per_page]
    found = queries.people(db, [person for person, _, _ in part])
    lines = [ReportLine(found[person], manager, depth) for person, manager, depth in part if person in found]
    return queries.Page(lines, len(under), page, per_page)


def org_chart(db: Session, graph_db: Session, tenant_id: uuid.UUID, org_unit_id: uuid.UUID, *,
              sub_units: bool = True) -> Chart:
    """The reporting tree among the people of a unit (and of its sub-units, by default)."""
    unit = queries.org_unit(db, org_unit_id)
    members = queries.people_in_unit(db, org_unit_id, sub_units=sub_units)
    found = queries.people(db, members)
    tree = graph_queries.chart(graph_db, tenant_id, members)
    children: dict[uuid.UUID | None, list[Under]] = {}
    for node in tree:
        children.setdefault(node.manager_id, []).append(node)
    ordered: list[ReportLine] = []
    stack = _by_name(children.get(None, []), found)
    while stack:
        node = stack.pop()
        ordered.append(ReportLine(found[node.id], node.manager_id, node.depth))
        stack += _by_name(children.get(node.id, []), found)
    return Chart(unit, sub_units, ordered)


def _by_name(nodes: list[Under], people: dict[uuid.UUID, PersonView]) -> list[Under]:
    """Nodes in reverse name order (popped from a stack, they come out by name)."""
    known = [n for n in nodes if n.id in people]
    return sorted(known, key=lambda n: (people[n.id].name, people[n.id].work_email), reverse=True)
