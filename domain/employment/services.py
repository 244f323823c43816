"""Use cases of the employment context for employees: create, change, delete.

Each takes the tenant's session (``db``) and, where reporting lines change, the relation
graph's session (``graph_db``, the management database); the caller commits both, the
graph first (see ``relations``). Deleting an employee records ``EmployeeDeleted`` in the
same transaction: its subscriber removes the person's edges from the graph.

The job type and org unit an employee is given are read FOR KEY SHARE: one being deleted
meanwhile is waited for and then not found (404), and a delete that comes second waits and
then finds the employee (409, in use). A change of manager locks the two people in the
order of their ids before anything else, so two requests making two people each other's
manager queue instead of deadlocking, and the second is refused as a cycle (409).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.employment import queries, relations
from domain.employment.errors import InvalidInput
from domain.employment.models import Employee, JobType, OrgUnit
from domain.employment.queries import EmployeeView
from domain.employment.values import check_dates, check_status, clean_email, clean_name
from domain.errors import Conflict, NotFound
from domain.messaging import outbox
from domain.messaging.contracts.employment import EmployeeDeletedV1


@dataclass(frozen=True)
class EmployeeFields:
    """What a person types about an employee (the API body, the form, an import row)."""

    name: str
    work_email: str
    job_type_id: uuid.UUID | None = None
    org_unit_id: uuid.UUID | None = None
    start_date: date | None = None
    end_date: date | None = None
    status: str = "active"
    # The work email of the employee they report to (moved if they reported to someone
    # else); "" for nobody; None leaves their reporting line as it is.
    manager_email: str | None = None


def _checked(db: Session, fields: EmployeeFields) -> dict[str, object]:
    """The employee's columns from ``fields``, every value checked (nothing written yet)."""
    values: dict[str, object] = {
        "name": clean_name(fields.name), "work_email": clean_email(fields.work_email),
        "job_type_id": fields.job_type_id, "org_unit_id": fields.org_unit_id,
        "start_date": fields.start_date, "end_date": fields.end_date,
        "status": check_status(fields.status)}
    check_dates(fields.start_date, fields.end_date)
    if fields.job_type_id is not None and not _held(db, JobType, fields.job_type_id):
        raise NotFound("no such job type", field="job_type_id")
    if fields.org_unit_id is not None and not _held(db, OrgUnit, fields.org_unit_id):
        raise NotFound("no such org unit", field="org_unit_id")
    if fields.manager_email:
        manager = clean_email(fields.manager_email, field="manager_email")
        if manager == values["work_email"]:
            raise InvalidInput("an employee cannot report to themselves", field="manager_email")
    return values


def _held(db: Session, model: type[JobType] | type[OrgUnit], row_id: uuid.UUID) -> bool:
    """True if the tenant has the row; it cannot be deleted until the transaction ends."""
    query = select(model.id).where(model.id == row_id).with_for_update(read=True, key_share=True)
    return db.scalar(query) is not None


def _email_taken(db: Session, email: str, other_than: uuid.UUID | None) -> None:
    taken = db.scalar(select(Employee.id).where(Employee.work_email == email))
    if taken is not None and taken != other_than:
        raise Conflict("another employee has this work email", field="work_email")


def _flush(db: Session, employee: Employee) -> None:
    """Write the row; a concurrent request that took the email first is a 409, not a 500."""
    try:
        with db.begin_nested():
            db.add(employee)
            db.flush()
    except IntegrityError as exc:
        if "uq_employees_tenant_id" in str(exc.orig):
            raise Conflict("another employee has this work email", field="work_email") from None
        raise


def create_employee(db: Session, graph_db: Session, tenant_id: uuid.UUID,
                    fields: EmployeeFields) -> EmployeeView:
    """A new employee of the tenant (and their reporting line, if a manager is given)."""
    values = _checked(db, fields)
    _email_taken(db, str(values["work_email"]), None)
    employee = Employee(id=uuid.uuid4(), tenant_id=tenant_id, **values)
    _flush(db, employee)
    _reporting_line(db, graph_db, tenant_id, employee.id, fields.manager_email)
    return queries.employee(db, employee.id)


def update_employee(db: Session, graph_db: Session, tenant_id: uuid.UUID, employee_id: uuid.UUID,
                    fields: EmployeeFields) -> EmployeeView:
    """Replace an employee's details (their reporting line too, if a manager is given)."""
    employee = _lock_people(db, employee_id, _manager_id(db, fields.manager_email))
    if employee is None:
        raise NotFound("no such employee", field="employee_id")
    values = _checked(db, fields)
    _email_taken(db, str(values["work_email"]), employee_id)
    changed = {k: v for k, v in values.items() if getattr(employee, k) != v}
    for key, value in changed.items():
        setattr(employee, key, value)
    if changed:
        employee.updated_at = utcnow()
        _flush(db, employee)
    _reporting_line(db, graph_db, tenant_id, employee_id, fields.manager_email)
    return queries.employee(db, employee_id)


def _manager_id(db: Session, manager_email: str | None) -> uuid.UUID | None:
    """Who ``manager_email`` names, if it is a well-formed email of one of the tenant's
    employees (anything else is refused later, in the order the checks go)."""
    if not manager_email:
        return None
    try:
        email = clean_email(manager_email, field="manager_email")
    except InvalidInput:
        return None
    return queries.ids_by_email(db, [email]).get(email)


def _lock_people(db: Session, employee_id: uuid.UUID, manager_id: uuid.UUID | None) -> Employee | None:
    """The employee, locked FOR UPDATE, and their new manager locked FOR SHARE (as the
    graph's ownership check locks them), in the order of their ids."""
    employee = None
    for person in sorted({employee_id} | ({manager_id} if manager_id else set())):
        if person == employee_id:
            employee = db.get(Employee, employee_id, with_for_update=True)
        else:
            db.execute(select(Employee.id).where(Employee.id == person).with_for_update(read=True))
    return employee


def _reporting_line(db: Session, graph_db: Session, tenant_id: uuid.UUID, employee_id: uuid.UUID,
                    manager_email: str | None) -> None:
    if manager_email:
        relations.set_manager(db, graph_db, tenant_id, employee_id, manager_email)
    elif manager_email == "":
        relations.clear_manager(graph_db, tenant_id, employee_id)


def delete_employee(db: Session, tenant_id: uuid.UUID, employee_id: uuid.UUID, *,
                    correlation_id: str | None) -> None:
    """Delete an employee; ``EmployeeDeleted`` (same transaction) clears their edges."""
    employee = db.get(Employee, employee_id, with_for_update=True)
    if employee is None:
        raise NotFound("no such employee", field="employee_id")
    db.delete(employee)
    db.flush()
    outbox.record(db, EmployeeDeletedV1(tenant_id=tenant_id, employee_id=employee_id),
                  tenant_id=tenant_id, correlation_id=correlation_id)
