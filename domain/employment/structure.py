"""Use cases for the organisation's structure: job types and org units (a tree).

Placing a unit under a parent (a new unit, or a move) is checked with recursive queries
while the tenant's structure lock is held, so two writes at once cannot make a loop or a
too deep tree between them: a unit cannot go under itself or one of its own sub-units,
and no unit may be more than ``MAX_UNIT_DEPTH`` levels below the top (the depth every walk
of the tree reads to). A walk that finds more levels than that (a tree made deeper before
the cap was held) cannot tell, so the write is refused rather than trusted.

Job type names are unique without regard to case by a check, not by the table (its unique
constraint is on the name as written), so creating or renaming a job type takes the same
lock: two writers of "Nurse" and "nurse" take turns, and the second finds the first.
"""
from __future__ import annotations

import uuid

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.employment import queries
from domain.employment.errors import InUse, InvalidInput
from domain.employment.models import Employee, JobType, OrgUnit
from domain.employment.queries import MAX_UNIT_DEPTH, JobTypeView, OrgUnitView
from domain.employment.values import clean_name
from domain.errors import Conflict, NotFound

LOCK_CLASS = 0x6F726775  # "orgu": the first key of every tenant's structure lock
JOB_TYPE_MAX = 120


def _lock_structure(db: Session) -> None:
    """Hold the tenant's structure lock until the transaction ends."""
    key = int.from_bytes(queries.tenant_of(db).bytes[:4], "big", signed=True)
    db.execute(text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": LOCK_CLASS, "key": key})


# --- job types --------------------------------------------------------------------------

def _job_type_name(name: str) -> str:
    cleaned = clean_name(name)
    if len(cleaned) > JOB_TYPE_MAX:
        raise InvalidInput(f"at most {JOB_TYPE_MAX} characters", field="name")
    return cleaned


def _name_taken(db: Session, name: str, other_than: uuid.UUID | None) -> None:
    taken = db.scalar(select(JobType.id).where(func.lower(JobType.name) == name.lower()))
    if taken is not None and taken != other_than:
        raise Conflict("a job type with this name exists", field="name")


def _flush_job_type(db: Session, job_type: JobType) -> None:
    try:
        with db.begin_nested():
            db.add(job_type)
            db.flush()
    except IntegrityError:
        raise Conflict("a job type with this name exists", field="name") from None


def create_job_type(db: Session, tenant_id: uuid.UUID, name: str) -> JobTypeView:
    """A new job type, named once per tenant (without regard to case)."""
    cleaned = _job_type_name(name)
    _lock_structure(db)  # the table's unique name is case-sensitive: two writers take turns here
    _name_taken(db, cleaned, None)
    job_type = JobType(id=uuid.uuid4(), tenant_id=tenant_id, name=cleaned)
    _flush_job_type(db, job_type)
    return queries.job_type(db, job_type.id)


def rename_job_type(db: Session, job_type_id: uuid.UUID, name: str) -> JobTypeView:
    """Rename a job type."""
    _lock_structure(db)
    job_type = db.get(JobType, job_type_id, with_for_update=True)
    if job_type is None:
        raise NotFound("no such job type", field="job_type_id")
    cleaned = _job_type_name(name)
    _name_taken(db, cleaned, job_type_id)
    job_type.name = cleaned
    _flush_job_type(db, job_type)
    return queries.job_type(db, job_type_id)


def delete_job_type(db: Session, job_type_id: uuid.UUID) -> None:
    """Delete a job type nobody holds."""
    job_type = db.get(JobType, job_type_id, with_for_update=True)
    if job_type is None:
        raise NotFound("no such job type", field="job_type_id")
    held = db.scalar(select(func.count()).select_from(Employee).where(Employee.job_type_id == job_type_id))
    if held:
        raise InUse(f"{held} employee(s) hold this job type; change theirs first", field="job_type_id")
    db.delete(job_type)
    db.flush()


# --- org units --------------------------------------------------------------------------

def _parent(db: Session, parent_id: uuid.UUID | None) -> None:
    if parent_id is not None and db.get(OrgUnit, parent_id) is None:
        raise NotFound("no such org unit", field="parent_id")


def _place(db: Session, unit_id: uuid.UUID | None, parent_id: uuid.UUID) -> None:
    """Refuse putting a unit (``None``: a new one) under ``parent_id`` if it would close a
    loop or put a unit deeper than the cap, or if that cannot be known (409, parent_id)."""
    above = queries.unit_ancestry(db, parent_id)
    if not above.complete:
        raise Conflict(f"the units above this parent are more than {MAX_UNIT_DEPTH:,} levels deep, "
                       "so the place cannot be checked; move the parent higher first", field="parent_id")
    if unit_id is not None and unit_id in above.ids:
        raise Conflict("a unit cannot move under itself or one of its own sub-units", field="parent_id")
    below = queries.unit_subtree(db, unit_id).levels + 1 if unit_id is not None else 1
    if above.levels + below > MAX_UNIT_DEPTH:
        raise Conflict(f"units may be at most {MAX_UNIT_DEPTH:,} levels below the top; here "
                       f"{'the unit or its sub-units' if unit_id else 'the unit'} would be "
                       f"{above.levels + below:,} levels down", field="parent_id")


def _sibling_taken(db: Session, name: str, parent_id: uuid.UUID | None, other_than: uuid.UUID | None) -> None:
    parent = OrgUnit.parent_id.is_(None) if parent_id is None else OrgUnit.parent_id == parent_id
    taken = db.scalar(select(OrgUnit.id).where(parent, func.lower(OrgUnit.name) == name.lower()))
    if taken is not None and taken != other_than:
        raise Conflict("this unit already has a sub-unit with this name" if parent_id
                       else "a top-level unit with this name exists", field="name")


def create_org_unit(db: Session, tenant_id: uuid.UUID, name: str,
                    parent_id: uuid.UUID | None) -> OrgUnitView:
    """A new org unit, at the top or under ``parent_id``; names are unique among siblings."""
    cleaned = clean_name(name)
    _lock_structure(db)
    _parent(db, parent_id)
    if parent_id is not None:
        _place(db, None, parent_id)
    _sibling_taken(db, cleaned, parent_id, None)
    unit = OrgUnit(id=uuid.uuid4(), tenant_id=tenant_id, name=cleaned, parent_id=parent_id)
    db.add(unit)
    db.flush()
    return queries.org_unit(db, unit.id)


def update_org_unit(db: Session, org_unit_id: uuid.UUID, name: str,
                    parent_id: uuid.UUID | None) -> OrgUnitView:
    """Rename and/or move an org unit (never under itself or one of its sub-units)."""
    cleaned = clean_name(name)
    _lock_structure(db)
    unit = db.get(OrgUnit, org_unit_id, with_for_update=True)
    if unit is None:
        raise NotFound("no such org unit", field="org_unit_id")
    _parent(db, parent_id)
    if parent_id is not None and parent_id != unit.parent_id:  # a rename in place moves nothing
        _place(db, org_unit_id, parent_id)
    _sibling_taken(db, cleaned, parent_id, org_unit_id)
    unit.name, unit.parent_id = cleaned, parent_id
    db.flush()
    return queries.org_unit(db, org_unit_id)


def delete_org_unit(db: Session, org_unit_id: uuid.UUID) -> None:
    """Delete an org unit without employees or sub-units."""
    _lock_structure(db)
    unit = db.get(OrgUnit, org_unit_id, with_for_update=True)
    if unit is None:
        raise NotFound("no such org unit", field="org_unit_id")
    children = db.scalar(select(func.count()).select_from(OrgUnit).where(OrgUnit.parent_id == org_unit_id))
    if children:
        raise InUse(f"the unit has {children} sub-unit(s); move or delete them first", field="org_unit_id")
    people = db.scalar(select(func.count()).select_from(Employee).where(Employee.org_unit_id == org_unit_id))
    if people:
        raise InUse(f"{people} employee(s) are in this unit; move them first", field="org_unit_id")
    db.delete(unit)
    db.flush()
