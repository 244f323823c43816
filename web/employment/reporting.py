"""JSON API of reporting lines and other relations: edges in the relation graph between the
tenant's employees, and the walks over them (chain of command, everyone under a person,
a unit's org chart)."""
from __future__ import annotations

import uuid
from typing import Any, Literal

from flask import g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from domain.employment import relations, reporting
from domain.employment.reporting import ReportLine
from web.api import Number, PageOut, Query, parse_json, parse_query
from web.auth import requires
from web.employment import bp
from web.employment.common import READ, WRITE, OrgUnitOut, PersonOut, db, graph_db
from web.openapi import doc

Relation = Literal["reports_to", "deputy_of", "mentor_of"]


class RelationBody(BaseModel):
    """``from_id`` stands in ``relation`` to ``to_id`` (both employees of the tenant)."""

    model_config = ConfigDict(extra="forbid")

    relation: Relation
    from_id: uuid.UUID
    to_id: uuid.UUID


class RelationOut(BaseModel):
    """One relation, and the other person in it."""

    relation: str
    from_id: uuid.UUID
    to_id: uuid.UUID
    other: PersonOut | None


class RelationList(BaseModel):
    """An employee's relations, both directions, oldest first."""

    items: list[RelationOut]


class PersonList(BaseModel):
    """People, by name."""

    items: list[PersonOut]


class LineOut(BaseModel):
    """A person in a reporting structure, their manager, and how far they are."""

    person: PersonOut
    manager_id: uuid.UUID | None
    depth: int


class LineList(BaseModel):
    """People in a reporting structure, nearest first."""

    items: list[LineOut]


class LinePage(PageOut):
    """One page of people in a reporting structure, nearest first."""

    items: list[LineOut]


class SubordinatesQuery(Query):
    """Paging of everyone under a person."""

    page: Number = Field(default=1, ge=1, le=1_000_000)
    per_page: Number = Field(default=reporting.MAX_SUBORDINATES_PER_PAGE, ge=1,
                             le=reporting.MAX_SUBORDINATES_PER_PAGE)


class ChartQuery(Query):
    """Whether the people of the unit's sub-units are on its chart."""

    sub_units: bool = True


class ChartOut(BaseModel):
    """A unit's reporting tree: roots first, each person followed by their reports."""

    unit: OrgUnitOut
    sub_units: bool
    items: list[LineOut]


def _lines(lines: list[ReportLine]) -> list[LineOut]:
    return [LineOut(person=PersonOut.of(line.person), manager_id=line.manager_id, depth=line.depth)
            for line in lines]


@bp.post("/api/v1/employment/relations")
@requires(WRITE)
@doc("Relate two employees (reports_to refuses a cycle)", body=RelationBody, auth=True,
     responses={201: RelationBody, 200: "it existed already", 404: "not an employee of this tenant",
                409: "a cycle, or a second manager"})
def create_relation() -> Any:
    """Write the edge to the relation graph."""
    body = parse_json(RelationBody)
    created = relations.link(db(), graph_db(), g.tenant_id, relation=body.relation, from_id=body.from_id,
                             to_id=body.to_id)
    return jsonify(body.model_dump(mode="json")), 201 if created else 200


@bp.delete("/api/v1/employment/relations/<relation>/<uuid:from_id>/<uuid:to_id>")
@requires(WRITE)
@doc("Remove a relation", responses={204: "removed", 404: "no such relation"}, auth=True)
def delete_relation(relation: str, from_id: uuid.UUID, to_id: uuid.UUID) -> Any:
    """Remove the edge from the relation graph."""
    relations.unlink(graph_db(), g.tenant_id, relation=relation, from_id=from_id, to_id=to_id)
    return "", 204


@bp.get("/api/v1/employment/employees/<uuid:employee_id>/relations")
@requires(READ)
@doc("An employee's relations", responses={200: RelationList}, auth=True)
def list_relations(employee_id: uuid.UUID) -> Any:
    """Every relation of the employee, both directions."""
    views = relations.relations_of(db(), graph_db(), g.tenant_id, employee_id)
    items = [RelationOut(relation=v.relation, from_id=v.from_id, to_id=v.to_id,
                         other=PersonOut.of(v.other) if v.other else None) for v in views]
    return jsonify(RelationList(items=items).model_dump(mode="json"))


@bp.get("/api/v1/employment/employees/<uuid:employee_id>/direct-reports")
@requires(READ)
@doc("Who reports to an employee directly", responses={200: PersonList}, auth=True)
def direct_reports(employee_id: uuid.UUID) -> Any:
    """The employee's direct reports, by name."""
    people = reporting.direct_reports(db(), graph_db(), g.tenant_id, employee_id)
    return jsonify(PersonList(items=[PersonOut.of(p) for p in people]).model_dump(mode="json"))


@bp.get("/api/v1/employment/employees/<uuid:employee_id>/chain")
@requires(READ)
@doc("An employee's chain of command, up to the top", responses={200: LineList}, auth=True)
def chain_of_command(employee_id: uuid.UUID) -> Any:
    """Their manager (depth 1), that manager's manager, ... up to the top."""
    lines = reporting.chain_of_command(db(), graph_db(), g.tenant_id, employee_id)
    return jsonify(LineList(items=_lines(lines)).model_dump(mode="json"))


@bp.get("/api/v1/employment/employees/<uuid:employee_id>/subordinates")
@requires(READ)
@doc("Everyone under an employee, at any depth (paged, 1,000 a page at most)", query=SubordinatesQuery,
     responses={200: LinePage}, auth=True)
def subordinates(employee_id: uuid.UUID) -> Any:
    """Direct and indirect reports, nearest first."""
    query = parse_query(SubordinatesQuery)
    found = reporting.subordinates(db(), graph_db(), g.tenant_id, employee_id, page=query.page,
                                   per_page=query.per_page)
    return jsonify(LinePage.of(found, _lines(found.items)).model_dump(mode="json"))


@bp.get("/api/v1/employment/org-units/<uuid:org_unit_id>/chart")
@requires(READ)
@doc("The reporting tree of an org unit (with its sub-units unless sub_units=false)", query=ChartQuery,
     responses={200: ChartOut}, auth=True)
def org_chart(org_unit_id: uuid.UUID) -> Any:
    """The unit's people as a reporting tree."""
    query = parse_query(ChartQuery)
    chart = reporting.org_chart(db(), graph_db(), g.tenant_id, org_unit_id, sub_units=query.sub_units)
    return jsonify(ChartOut(unit=OrgUnitOut.of(chart.unit), sub_units=chart.sub_units,
                            items=_lines(chart.lines)).model_dump(mode="json"))
