"""Read side of the employment context, and its public query API.

Other contexts (publications' audiences, the relation graph's callers) ask these, never
the tables: the people of an org unit with or without its sub-units, everyone, which of
some ids are the tenant's employees, people by id or by work email. Every function takes
a tenant session from the data provider, so the tenant filter (and RLS on the trial
database) applies; the recursive SQL over org units also names the tenant itself.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from sqlalchemy import TextClause, Uuid, any_, bindparam, func, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from domain.employment.models import (
    IMPORT_PHASE_LABELS,  # noqa: F401 - public for pages: the models are private
    IMPORT_STATUS_LABELS,  # noqa: F401 - public for pages: the models are private
    STATUS_LABELS,  # noqa: F401 - public for pages: the models are private
    Employee,
    ImportJob,
    ImportProblem,
    JobType,
    OrgUnit,
)
from domain.errors import NotFound

T = TypeVar("T")
MAX_UNIT_DEPTH = 1_000
MAX_PER_PAGE = 100

# A unit and every unit below it (any depth), within the session's tenant. The walk goes one
# level past MAX_UNIT_DEPTH: a row there says the tree is deeper than the cap allows (or
# loops), so a check cannot conclude anything from a unit the walk did not reach.
_UNIT_TREE = text("""
WITH RECURSIVE tree(id, depth) AS (
    SELECT id, 0 FROM org_units WHERE tenant_id = :tenant AND id = :start
    UNION ALL
    SELECT o.id, t.depth + 1 FROM tree t
      JOIN org_units o ON o.tenant_id = :tenant AND o.parent_id = t.id
     WHERE t.depth <= :max_depth
)
SELECT id, depth FROM tree
""")

# A unit and the units above it up to the top (depth 0 = the unit), one level past the cap
# likewise.
_UNIT_CHAIN = text("""
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM org_units WHERE tenant_id = :tenant AND id = :start
    UNION ALL
    SELECT o.id, o.parent_id, u.depth + 1 FROM up u
      JOIN org_units o ON o.tenant_id = :tenant AND o.id = u.parent_id
     WHERE u.depth <= :max_depth
)
SELECT id, depth FROM up
""")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list."""

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the whole list has (at least one)."""
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True)
class EmployeeView:
    """An employee as pages and the API show them."""

    id: uuid.UUID
    name: str
    work_email: str
    job_type_id: uuid.UUID | None
    job_type: str | None
    org_unit_id: uuid.UUID | None
    org_unit: str | None
    start_date: date | None
    end_date: date | None
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PersonView:
    """Who someone is, in a list of people (reports, a chain, a chart)."""

    id: uuid.UUID
    name: str
    work_email: str
    job_type: str | None


@dataclass(frozen=True)
class JobTypeView:
    """A job type and how many employees hold it."""

    id: uuid.UUID
    name: str
    employees: int


@dataclass(frozen=True)
class OrgUnitView:
    """An org unit, its place in the tree and how many employees it has (itself only)."""

    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    depth: int
    path: tuple[str, ...]  # names from the top unit down to this one
    employees: int


def tenant_of(session: Session) -> uuid.UUID:
    """The tenant a provider session is bound to."""
    tenant_id: uuid.UUID = session.info["tenant_id"]
    return tenant_id


def id_array(ids: Iterable[uuid.UUID], name: str = "ids") -> object:
    """A bound ``uuid[]`` parameter (``= ANY(...)``: one parameter whatever the count)."""
    return bindparam(name, list(ids), type_=ARRAY(Uuid()))


# --- employees --------------------------------------------------------------------------

def _employee_rows():  # type: ignore[no-untyped-def]
    return (select(Employee, JobType.name, OrgUnit.name)
            .outerjoin(JobType, JobType.id == Employee.job_type_id)
            .outerjoin(OrgUnit, OrgUnit.id == Employee.org_unit_id))


def _view(employee: Employee, job_type: str | None, org_unit: str | None) -> EmployeeView:
    e = employee
    return EmployeeView(e.id, e.name, e.work_email, e.job_type_id, job_type, e.org_unit_id, org_unit,
                        e.start_date, e.end_date, e.status, e.created_at, e.updated_at)


def employee(session: Session, employee_id: uuid.UUID) -> EmployeeView:
    """One employee of the tenant (NotFound for anyone else, whatever tenant they are in)."""
    row = session.execute(_employee_rows().where(Employee.id == employee_id)).one_or_none()
    if row is None:
        raise NotFound("no such employee", field="employee_id")
    return _view(*row)


def list_employees(session: Session, *, search: str = "", page: int = 1, per_page: int = 25,
                   org_unit_id: uuid.UUID | None = None) -> Page[EmployeeView]:
    """Employees by name, matching ``search`` in the name or work email, one page."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    where = []
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(Employee.name.ilike(pattern), Employee.work_email.ilike(pattern.lower())))
    if org_unit_id is not None:
        where.append(Employee.org_unit_id == org_unit_id)
    total = session.scalar(select(func.count()).select_from(Employee).where(*where)) or 0
    rows = session.execute(_employee_rows().where(*where).order_by(Employee.name, Employee.work_email)
                           .limit(per_page).offset((page - 1) * per_page))
    return Page([_view(*row) for row in rows], total, page, per_page)


def existing_ids(session: Session, ids: Collection[uuid.UUID], *, lock: bool = False) -> set[uuid.UUID]:
    """Which of ``ids`` are employees of the tenant ("these ids exist").

    With ``lock`` the rows are held (FOR SHARE) until the transaction ends, so none of them
    can be deleted meanwhile: a caller writing edges to them commits those first.
    """
    if not ids:
        return set()
    query = select(Employee.id).where(Employee.id == any_(id_array(ids)))
    if lock:
        query = query.with_for_update(read=True)
    return set(session.scalars(query))


def people(session: Session, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, PersonView]:
    """The tenant's employees among ``ids``, by id (others are left out)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Employee.id, Employee.name, Employee.work_email, JobType.name)
        .outerjoin(JobType, JobType.id == Employee.job_type_id)
        .where(Employee.id == any_(id_array(ids))))
    return {row[0]: PersonView(*row) for row in rows}


def ids_by_email(session: Session, emails: Collection[str], *, lock: bool = False) -> dict[str, uuid.UUID]:
    """Work email (lower-case) -> employee id, for the emails that are the tenant's."""
    if not emails:
        return {}
    wanted = list({e.lower() for e in emails})
    query = select(Employee.work_email, Employee.id).where(
        Employee.work_email == any_(bindparam("emails", wanted, type_=ARRAY(Employee.work_email.type))))
    if lock:
        query = query.with_for_update(read=True)
    return dict(session.execute(query).all())  # type: ignore[arg-type]


def everyone(session: Session, *, include_left: bool = False) -> list[uuid.UUID]:
    """Every employee of the tenant (by default not those who have left)."""
    query = select(Employee.id).order_by(Employee.name, Employee.id)
    if not include_left:
        query = query.where(Employee.status != "left")
    return list(session.scalars(query))


def people_in_unit(session: Session, org_unit_id: uuid.UUID, *, sub_units: bool,
                   include_left: bool = False) -> list[uuid.UUID]:
    """The employees of an org unit, and with ``sub_units`` of every unit below it."""
    units = unit_tree(session, org_unit_id) if sub_units else [_unit(session, org_unit_id).id]
    query = select(Employee.id).where(Employee.org_unit_id == any_(id_array(units, "units")))
    if not include_left:
        query = query.where(Employee.status != "left")
    return list(session.scalars(query.order_by(Employee.name, Employee.id)))


# --- structure --------------------------------------------------------------------------

def _unit(session: Session, org_unit_id: uuid.UUID) -> OrgUnit:
    unit = session.get(OrgUnit, org_unit_id)
    if unit is None:
        raise NotFound("no such org unit", field="org_unit_id")
    return unit


@dataclass(frozen=True)
class UnitWalk:
    """Where a walk of the unit tree from one unit went (down to its sub-units, or up to the
    top): the units reached within ``MAX_UNIT_DEPTH`` levels, the start first, and how many
    levels that is. ``complete`` is False when there are more levels beyond the cap (a tree
    deeper than the cap allows, or a loop): what the walk did not reach is then unknown."""

    ids: list[uuid.UUID]
    levels: int
    complete: bool


def _walk(session: Session, statement: TextClause, start: uuid.UUID) -> UnitWalk:
    rows = session.execute(statement, {"tenant": tenant_of(session), "start": start,
                                       "max_depth": MAX_UNIT_DEPTH}).all()
    if not rows:
        raise NotFound("no such org unit", field="org_unit_id")
    ids = [unit_id for unit_id, depth in sorted(rows, key=lambda row: row[1]) if depth <= MAX_UNIT_DEPTH]
    deepest = max(depth for _, depth in rows)
    return UnitWalk(ids, min(deepest, MAX_UNIT_DEPTH), deepest <= MAX_UNIT_DEPTH)


def unit_tree(session: Session, org_unit_id: uuid.UUID) -> list[uuid.UUID]:
    """An org unit and every unit below it (NotFound for a unit that is not the tenant's)."""
    return _walk(session, _UNIT_TREE, org_unit_id).ids


def unit_subtree(session: Session, org_unit_id: uuid.UUID) -> UnitWalk:
    """An org unit and the units below it, nearest first, and how deep they go."""
    return _walk(session, _UNIT_TREE, org_unit_id)


def unit_ancestry(session: Session, org_unit_id: uuid.UUID) -> UnitWalk:
    """An org unit and the units above it, up to the top (``levels``: the unit's depth)."""
    return _walk(session, _UNIT_CHAIN, org_unit_id)


def job_types(session: Session) -> list[JobTypeView]:
    """The tenant's job types by name, with how many employees hold each."""
    held = (select(Employee.job_type_id, func.count().label("n")).group_by(Employee.job_type_id)
            .subquery())
    rows = session.execute(select(JobType.id, JobType.name, func.coalesce(held.c.n, 0))
                           .outerjoin(held, held.c.job_type_id == JobType.id).order_by(JobType.name))
    return [JobTypeView(*row) for row in rows]


def job_type(session: Session, job_type_id: uuid.UUID) -> JobTypeView:
    """One job type of the tenant (NotFound otherwise)."""
    for view in job_types(session):
        if view.id == job_type_id:
            return view
    raise NotFound("no such job type", field="job_type_id")


def org_units(session: Session) -> list[OrgUnitView]:
    """Every org unit of the tenant in tree order: each unit, then its sub-units by name."""
    counts = dict(session.execute(select(Employee.org_unit_id, func.count())
                                  .where(Employee.org_unit_id.is_not(None))
                                  .group_by(Employee.org_unit_id)).all())
    units = list(session.execute(select(OrgUnit.id, OrgUnit.name, OrgUnit.parent_id)
                                 .order_by(OrgUnit.name, OrgUnit.id)))
    known = {u.id for u in units}
    children: dict[uuid.UUID | None, list[tuple[uuid.UUID, str, uuid.UUID | None]]] = {}
    for unit_id, name, parent_id in units:
        # A unit whose parent is gone (never, unless rows were moved by hand) shows at the top.
        children.setdefault(parent_id if parent_id in known else None, []).append((unit_id, name, parent_id))
    ordered: list[OrgUnitView] = []
    stack = [(u, (), 0) for u in reversed(children.get(None, []))]
    while stack:
        (unit_id, name, parent_id), path, depth = stack.pop()
        here = (*path, name)
        ordered.append(OrgUnitView(unit_id, name, parent_id, depth, here, counts.get(unit_id, 0)))
        stack += [(c, here, depth + 1) for c in reversed(children.get(unit_id, []))]
    return ordered


def org_unit(session: Session, org_unit_id: uuid.UUID) -> OrgUnitView:
    """One org unit of the tenant with its path (NotFound otherwise)."""
    _unit(session, org_unit_id)
    for view in org_units(session):
        if view.id == org_unit_id:
            return view
    raise NotFound("no such org unit", field="org_unit_id")


# --- imports ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ProblemView:
    """Why one line of an import was not (fully) applied."""

    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class ImportView:
    """Where an import stands, with one page of its problems."""

    id: uuid.UUID
    filename: str
    status: str
    phase: str
    rows_total: int
    rows_done: int
    managers_done: int
    created: int
    updated: int
    unchanged: int
    failed: int
    edges: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    problems: Page[ProblemView]

    @property
    def percent(self) -> int:
        """How far along the run is (employees first, then reporting lines)."""
        if self.status in ("completed", "failed"):
            return 100
        if not self.rows_total:
            return 0
        return (self.rows_done + self.managers_done) * 100 // (2 * self.rows_total)

    @property
    def finished(self) -> bool:
        """True once the import completed or failed."""
        return self.status in ("completed", "failed")


def import_job(session: Session, import_id: uuid.UUID, *, page: int = 1,
               per_page: int = MAX_PER_PAGE) -> ImportView:
    """One import of the tenant and a page of its problems, by line (NotFound otherwise)."""
    job = session.get(ImportJob, import_id)
    if job is None:
        raise NotFound("no such import", field="import_id")
    per_page, page = max(1, min(per_page, 1000)), max(1, page)
    total = session.scalar(select(func.count()).select_from(ImportProblem)
                           .where(ImportProblem.job_id == import_id)) or 0
    rows = session.execute(select(ImportProblem.line, ImportProblem.field, ImportProblem.reason)
                           .where(ImportProblem.job_id == import_id)
                           .order_by(ImportProblem.line, ImportProblem.field)
                           .limit(per_page).offset((page - 1) * per_page))
    problems = Page([ProblemView(*row) for row in rows], total, page, per_page)
    return ImportView(job.id, job.filename, job.status, job.phase, job.rows_total, job.rows_done,
                      job.managers_done, job.created, job.updated, job.unchanged, job.failed, job.edges,
                      job.error, job.created_at, job.finished_at, problems)


def imports(session: Session, limit: int = 20) -> list[ImportView]:
    """The tenant's latest imports, newest first (without their problems)."""
    jobs = session.scalars(select(ImportJob).order_by(ImportJob.created_at.desc()).limit(limit))
    empty: Page[ProblemView] = Page([], 0, 1, 1)
    return [ImportView(j.id, j.filename, j.status, j.phase, j.rows_total, j.rows_done, j.managers_done,
                       j.created, j.updated, j.unchanged, j.failed, j.edges, j.error, j.created_at,
                       j.finished_at, empty) for j in jobs]
