"""JSON API of the employment context: employees, job types and org units."""
from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from flask import g, jsonify, url_for
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from domain.employment import queries, services, structure
from domain.employment.services import EmployeeFields
from web.api import Number, PageOut, PlainText, Query, parse_json, parse_query
from web.auth import requires
from web.employment import bp
from web.employment.common import READ, WRITE, EmployeeOut, OrgUnitOut, db, graph_db
from web.openapi import doc

Name = Annotated[PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Status = Literal["active", "on_leave", "left"]


class EmployeeBody(BaseModel):
    """An employee: name, work email (unique in the tenant), job type, unit, dates, status.

    ``manager_email`` sets whom they report to ("" for nobody); left out, their reporting
    line stays as it is."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    work_email: EmailStr
    job_type_id: uuid.UUID | None = None
    org_unit_id: uuid.UUID | None = None
    start_date: date | None = None
    end_date: date | None = None
    status: Status = "active"
    manager_email: PlainText | None = Field(default=None, max_length=320)  # checked by the domain

    def fields(self) -> EmployeeFields:
        """What the domain takes."""
        return EmployeeFields(name=self.name, work_email=str(self.work_email),
                              job_type_id=self.job_type_id, org_unit_id=self.org_unit_id,
                              start_date=self.start_date, end_date=self.end_date, status=self.status,
                              manager_email=self.manager_email)


class EmployeeQuery(Query):
    """Search and paging of the employee list."""

    q: PlainText = Field(default="", max_length=100, description="part of a name or work email")
    page: Number = Field(default=1, ge=1, le=1_000_000)
    per_page: Number = Field(default=25, ge=1, le=queries.MAX_PER_PAGE)
    org_unit_id: uuid.UUID | None = None


class EmployeePage(PageOut):
    """One page of employees, by name."""

    items: list[EmployeeOut]


class JobTypeBody(BaseModel):
    """A job type's name (unique in the tenant, whatever the case)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class JobTypeOut(BaseModel):
    """A job type and how many employees hold it."""

    id: uuid.UUID
    name: str
    employees: int


class JobTypeList(BaseModel):
    """The tenant's job types by name."""

    items: list[JobTypeOut]


class OrgUnitBody(BaseModel):
    """An org unit: its name (unique among its siblings) and its parent (none: at the top)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    parent_id: uuid.UUID | None = None


class OrgUnitList(BaseModel):
    """The tenant's org units in tree order (each unit, then its sub-units)."""

    items: list[OrgUnitOut]


def _employee_json(view: queries.EmployeeView, status: int = 200) -> Any:
    response = jsonify(EmployeeOut.of(view).model_dump(mode="json"))
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("employment.get_employee", employee_id=view.id)
    return response


# --- employees --------------------------------------------------------------------------

@bp.get("/api/v1/employment/employees")
@requires(READ)
@doc("List employees (search by name or work email, paged)", query=EmployeeQuery,
     responses={200: EmployeePage}, auth=True)
def list_employees() -> Any:
    """One page of the tenant's employees by name."""
    query = parse_query(EmployeeQuery)
    found = queries.list_employees(db(), search=query.q, page=query.page, per_page=query.per_page,
                                   org_unit_id=query.org_unit_id)
    return jsonify(EmployeePage.of(found, [EmployeeOut.of(e) for e in found.items]).model_dump(mode="json"))


@bp.post("/api/v1/employment/employees")
@requires(WRITE)
@doc("Add an employee", body=EmployeeBody, auth=True,
     responses={201: EmployeeOut, 404: "unknown job type, org unit or manager", 409: "work email taken"})
def create_employee() -> Any:
    """Record a new employee (and whom they report to, if given)."""
    body = parse_json(EmployeeBody)
    return _employee_json(services.create_employee(db(), graph_db(), g.tenant_id, body.fields()), 201)


@bp.get("/api/v1/employment/employees/<uuid:employee_id>")
@requires(READ)
@doc("Read an employee", responses={200: EmployeeOut, 404: "not an employee of this tenant"}, auth=True)
def get_employee(employee_id: uuid.UUID) -> Any:
    """One employee of the tenant."""
    return _employee_json(queries.employee(db(), employee_id))


@bp.put("/api/v1/employment/employees/<uuid:employee_id>")
@requires(WRITE)
@doc("Change an employee", body=EmployeeBody, auth=True,
     responses={200: EmployeeOut, 404: "not an employee of this tenant", 409: "work email taken"})
def update_employee(employee_id: uuid.UUID) -> Any:
    """Replace an employee's details."""
    body = parse_json(EmployeeBody)
    return _employee_json(services.update_employee(db(), graph_db(), g.tenant_id, employee_id,
                                                   body.fields()))


@bp.delete("/api/v1/employment/employees/<uuid:employee_id>")
@requires(WRITE)
@doc("Delete an employee (their relations are removed from the graph)", auth=True,
     responses={204: "deleted", 404: "not an employee of this tenant"})
def delete_employee(employee_id: uuid.UUID) -> Any:
    """Delete the employee; the employment worker removes their edges."""
    services.delete_employee(db(), g.tenant_id, employee_id, correlation_id=g.get("request_id"))
    return "", 204


# --- job types --------------------------------------------------------------------------

def _job_type_out(view: queries.JobTypeView) -> dict[str, Any]:
    return JobTypeOut(id=view.id, name=view.name, employees=view.employees).model_dump(mode="json")


@bp.get("/api/v1/employment/job-types")
@requires(READ)
@doc("List job types", responses={200: JobTypeList}, auth=True)
def list_job_types() -> Any:
    """The tenant's job types by name."""
    views = queries.job_types(db())
    return jsonify(JobTypeList(items=[JobTypeOut(**v.__dict__) for v in views]).model_dump(mode="json"))


@bp.post("/api/v1/employment/job-types")
@requires(WRITE)
@doc("Add a job type", body=JobTypeBody, responses={201: JobTypeOut, 409: "name taken"}, auth=True)
def create_job_type() -> Any:
    """A new job type."""
    body = parse_json(JobTypeBody)
    return jsonify(_job_type_out(structure.create_job_type(db(), g.tenant_id, body.name))), 201


@bp.put("/api/v1/employment/job-types/<uuid:job_type_id>")
@requires(WRITE)
@doc("Rename a job type", body=JobTypeBody, responses={200: JobTypeOut, 409: "name taken"}, auth=True)
def rename_job_type(job_type_id: uuid.UUID) -> Any:
    """Rename a job type."""
    body = parse_json(JobTypeBody)
    return jsonify(_job_type_out(structure.rename_job_type(db(), job_type_id, body.name)))


@bp.delete("/api/v1/employment/job-types/<uuid:job_type_id>")
@requires(WRITE)
@doc("Delete a job type nobody holds", responses={204: "deleted", 409: "still held"}, auth=True)
def delete_job_type(job_type_id: uuid.UUID) -> Any:
    """Delete the job type."""
    structure.delete_job_type(db(), job_type_id)
    return "", 204


# --- org units --------------------------------------------------------------------------

@bp.get("/api/v1/employment/org-units")
@requires(READ)
@doc("List org units in tree order", responses={200: OrgUnitList}, auth=True)
def list_org_units() -> Any:
    """Every org unit of the tenant, each followed by its sub-units."""
    return jsonify(OrgUnitList(items=[OrgUnitOut.of(u) for u in queries.org_units(db())])
                   .model_dump(mode="json"))


@bp.post("/api/v1/employment/org-units")
@requires(WRITE)
@doc("Add an org unit", body=OrgUnitBody, auth=True,
     responses={201: OrgUnitOut, 404: "unknown parent", 409: "a sibling has this name"})
def create_org_unit() -> Any:
    """A new org unit at the top or under a parent."""
    body = parse_json(OrgUnitBody)
    view = structure.create_org_unit(db(), g.tenant_id, body.name, body.parent_id)
    return jsonify(OrgUnitOut.of(view).model_dump(mode="json")), 201


@bp.get("/api/v1/employment/org-units/<uuid:org_unit_id>")
@requires(READ)
@doc("Read an org unit", responses={200: OrgUnitOut, 404: "not a unit of this tenant"}, auth=True)
def get_org_unit(org_unit_id: uuid.UUID) -> Any:
    """One org unit and its path from the top."""
    return jsonify(OrgUnitOut.of(queries.org_unit(db(), org_unit_id)).model_dump(mode="json"))


@bp.put("/api/v1/employment/org-units/<uuid:org_unit_id>")
@requires(WRITE)
@doc("Rename or move an org unit", body=OrgUnitBody, auth=True,
     responses={200: OrgUnitOut, 409: "under itself or a sub-unit, or a sibling has the name"})
def update_org_unit(org_unit_id: uuid.UUID) -> Any:
    """Rename and/or move the unit (never under itself or one of its sub-units)."""
    body = parse_json(OrgUnitBody)
    view = structure.update_org_unit(db(), org_unit_id, body.name, body.parent_id)
    return jsonify(OrgUnitOut.of(view).model_dump(mode="json"))


@bp.delete("/api/v1/employment/org-units/<uuid:org_unit_id>")
@requires(WRITE)
@doc("Delete an org unit without employees or sub-units", auth=True,
     responses={204: "deleted", 409: "has employees or sub-units"})
def delete_org_unit(org_unit_id: uuid.UUID) -> Any:
    """Delete the unit."""
    structure.delete_org_unit(db(), org_unit_id)
    return "", 204
