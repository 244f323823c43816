"""HTML pages of the employment context: employees (list with search and paging, create
and edit forms), the structure (job types and org units) and a unit's org chart.

Every change goes through the same domain services as the JSON API; a refusal is shown
next to the field it names with the domain error's status, and an employee or unit of
another tenant is a 404 page.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from domain.employment import queries, relations, reporting, services, structure
from domain.employment.queries import EmployeeView
from domain.errors import DomainError
from domain.text import CONTROL
from web.auth import page_requires
from web.employment import bp
from web.employment.chart import layout
from web.employment.common import READ, WRITE, db, graph_db
from web.employment.forms import EmployeeForm, JobTypeForm, OrgUnitForm
from web.forms import place_error
from web.i18n import gettext
from web.pages import page_number

# Errors shown beside one row's controls: {id: {field: [reason]}}.
RowErrors = dict[uuid.UUID, dict[str, list[str]]]


def _see_other(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), code=303)


# --- employees ----------------------------------------------------------------------------

@bp.get("/employment/employees")
@page_requires(READ)
def employees_page() -> Any:
    """The tenant's employees by name: search by name or work email, 25 a page."""
    search = CONTROL.sub("", request.args.get("q", ""))[:100].strip()
    found = queries.list_employees(db(), search=search, page=page_number())
    return render_template("employment/employees.html", found=found, q=search,
                           may_write=g.caller.may(WRITE))


def _employee_form(form: EmployeeForm, *, employee: EmployeeView | None = None,
                   status: int = 200) -> tuple[str, int]:
    form.set_choices(queries.job_types(db()), queries.org_units(db()))
    return render_template("employment/employee_form.html", form=form, employee=employee), status


@bp.get("/employment/employees/new")
@page_requires(WRITE)
def new_employee_page() -> Any:
    """The form for a new employee."""
    return _employee_form(EmployeeForm(formdata=None, data={"status": "active"}))


@bp.post("/employment/employees")
@page_requires(WRITE)
def create_employee_page() -> Any:
    """Add an employee (and whom they report to)."""
    form = EmployeeForm()
    if not form.validate_on_submit():
        return _employee_form(form, status=422)
    try:
        view = services.create_employee(db(), graph_db(), g.tenant_id, form.fields())
    except DomainError as exc:
        place_error(form, exc, form.name)
        return _employee_form(form, status=exc.status)
    flash(gettext("%(name)s added.", name=view.name))
    return _see_other("employment.employees_page", q=view.work_email)


@bp.get("/employment/employees/<uuid:employee_id>")
@page_requires(WRITE)
def employee_page(employee_id: uuid.UUID) -> Any:
    """An employee's details as an edit form."""
    employee = queries.employee(db(), employee_id)
    manager = relations.manager_of(db(), graph_db(), g.tenant_id, employee_id)
    data = {**employee.__dict__, "manager_email": manager.work_email if manager else ""}
    return _employee_form(EmployeeForm(formdata=None, data=data), employee=employee)


@bp.post("/employment/employees/<uuid:employee_id>")
@page_requires(WRITE)
def update_employee_page(employee_id: uuid.UUID) -> Any:
    """Save an employee's details (a blank manager: they report to nobody)."""
    employee = queries.employee(db(), employee_id)
    form = EmployeeForm()
    if not form.validate_on_submit():
        return _employee_form(form, employee=employee, status=422)
    try:
        view = services.update_employee(db(), graph_db(), g.tenant_id, employee_id, form.fields())
    except DomainError as exc:
        if exc.field == "employee_id":
            raise
        place_error(form, exc, form.name)
        return _employee_form(form, employee=employee, status=exc.status)
    flash(gettext("%(name)s saved.", name=view.name))
    return _see_other("employment.employee_page", employee_id=employee_id)


@bp.post("/employment/employees/<uuid:employee_id>/delete")
@page_requires(WRITE)
def delete_employee_page(employee_id: uuid.UUID) -> Any:
    """Delete an employee; their reporting lines go with them."""
    services.delete_employee(db(), g.tenant_id, employee_id, correlation_id=g.get("request_id"))
    flash(gettext("Employee deleted."))
    return _see_other("employment.employees_page")


# --- structure ----------------------------------------------------------------------------

def _structure(*, job_type_form: JobTypeForm | None = None, unit_form: OrgUnitForm | None = None,
               errors: RowErrors | None = None, status: int = 200) -> tuple[str, int]:
    units = queries.org_units(db())
    unit_form = unit_form or OrgUnitForm(formdata=None)
    unit_form.set_choices(units)
    page = render_template("employment/structure.html", job_types=queries.job_types(db()), units=units,
                           job_type_form=job_type_form or JobTypeForm(formdata=None), unit_form=unit_form,
                           errors=errors or {}, may_write=g.caller.may(WRITE))
    return page, status


def _row_error(row_id: uuid.UUID, exc: DomainError, missing: str) -> RowErrors:
    """A refusal for one row; an unknown row (``missing`` named, 404) is a 404 page."""
    if exc.field == missing and exc.status == 404:
        raise exc
    return {row_id: {missing: [exc.reason]}}


@bp.get("/employment/structure")
@page_requires(READ)
def structure_page() -> Any:
    """Job types and the org unit tree (with forms for those who may change them)."""
    return _structure()


@bp.post("/employment/job-types")
@page_requires(WRITE)
def create_job_type_page() -> Any:
    """Add a job type."""
    form = JobTypeForm()
    if not form.validate_on_submit():
        return _structure(job_type_form=form, status=422)
    try:
        view = structure.create_job_type(db(), g.tenant_id, form.name.data or "")
    except DomainError as exc:
        place_error(form, exc, form.name)
        return _structure(job_type_form=form, status=exc.status)
    flash(gettext("Job type %(name)s added.", name=view.name))
    return _see_other("employment.structure_page")


@bp.post("/employment/job-types/<uuid:job_type_id>/delete")
@page_requires(WRITE)
def delete_job_type_page(job_type_id: uuid.UUID) -> Any:
    """Delete a job type nobody holds."""
    try:
        structure.delete_job_type(db(), job_type_id)
    except DomainError as exc:
        return _structure(errors=_row_error(job_type_id, exc, "job_type_id"), status=exc.status)
    flash(gettext("Job type deleted."))
    return _see_other("employment.structure_page")


@bp.post("/employment/org-units")
@page_requires(WRITE)
def create_org_unit_page() -> Any:
    """Add an org unit."""
    form = OrgUnitForm()
    if not form.validate_on_submit():
        return _structure(unit_form=form, status=422)
    try:
        view = structure.create_org_unit(db(), g.tenant_id, form.name.data or "", form.parent_id.data)
    except DomainError as exc:
        place_error(form, exc, form.name)
        return _structure(unit_form=form, status=exc.status)
    flash(gettext("Org unit %(name)s added.", name=view.name))
    return _see_other("employment.structure_page")


def _unit_form(form: OrgUnitForm, unit: queries.OrgUnitView, status: int = 200) -> tuple[str, int]:
    form.set_choices(queries.org_units(db()))
    return render_template("employment/org_unit_form.html", form=form, unit=unit), status


@bp.get("/employment/org-units/<uuid:org_unit_id>")
@page_requires(WRITE)
def org_unit_page(org_unit_id: uuid.UUID) -> Any:
    """An org unit's name and place, as an edit form."""
    unit = queries.org_unit(db(), org_unit_id)
    return _unit_form(OrgUnitForm(formdata=None, data={"name": unit.name, "parent_id": unit.parent_id}), unit)


@bp.post("/employment/org-units/<uuid:org_unit_id>")
@page_requires(WRITE)
def update_org_unit_page(org_unit_id: uuid.UUID) -> Any:
    """Rename or move an org unit."""
    unit = queries.org_unit(db(), org_unit_id)
    form = OrgUnitForm()
    if not form.validate_on_submit():
        return _unit_form(form, unit, 422)
    try:
        view = structure.update_org_unit(db(), org_unit_id, form.name.data or "", form.parent_id.data)
    except DomainError as exc:
        if exc.field == "org_unit_id":
            raise
        place_error(form, exc, form.name)
        return _unit_form(form, unit, exc.status)
    flash(gettext("Org unit %(name)s saved.", name=view.name))
    return _see_other("employment.structure_page")


@bp.post("/employment/org-units/<uuid:org_unit_id>/delete")
@page_requires(WRITE)
def delete_org_unit_page(org_unit_id: uuid.UUID) -> Any:
    """Delete an org unit without employees or sub-units."""
    try:
        structure.delete_org_unit(db(), org_unit_id)
    except DomainError as exc:
        return _structure(errors=_row_error(org_unit_id, exc, "org_unit_id"), status=exc.status)
    flash(gettext("Org unit deleted."))
    return _see_other("employment.structure_page")


@bp.get("/employment/org-units/<uuid:org_unit_id>/chart")
@page_requires(READ)
def org_chart_page(org_unit_id: uuid.UUID) -> Any:
    """The reporting tree of a unit and its sub-units, drawn as SVG (?sub_units=0: the unit only)."""
    sub_units = request.args.get("sub_units", "1") not in ("0", "false", "no")
    chart = reporting.org_chart(db(), graph_db(), g.tenant_id, org_unit_id, sub_units=sub_units)
    return render_template("employment/chart.html", chart=chart, drawing=layout(chart.lines))
