"""Bulk import of employees: record the upload, then run it in checkpointed batches.

``record_import`` keeps the file in an ``import_jobs`` row (pending) and queues
``RunImport`` in the same transaction. ``run`` (the ``employment`` worker) reads the file,
checks every row (``rows``) and applies it in two passes of ``BATCH`` rows:

- employees: valid rows are upserted by work email (a row that changes nothing writes
  nothing), bad rows become problems with their line and reason. Only the columns the
  header names are set on an employee that exists: a column left out keeps its value
  (``rows`` says what an empty cell means);
- managers: each row with a ``manager_email`` whose employee was applied (its line has no
  problem) becomes a ``reports_to`` edge in the relation graph once every employee exists
  (a cycle or an unknown manager is a problem). This pass reads only the two emails and
  the recorded problems, so a run resuming it decides as the first run did, whatever
  job types or units were renamed or deleted in between.

Each batch moves its checkpoint (``rows_done`` / ``managers_done``) in the transaction of
its effects, after taking the import's row lock and checking the checkpoint is still
where the batch started, so a batch is applied once whatever dies when. A run holds a
session-level advisory lock for its import: a second delivery of the command (the relay
re-sends it once the lease passed) finds it busy and leaves it, and a run that died frees
it with its connection, so the next delivery resumes after the last committed batch. A
copy that takes the lock after the import ended (it read the import before) finds it
finished under the lock and leaves it as it is.
Re-importing a file that was applied changes nothing.

Operators (and the crash drill) can hold every import before a batch by taking
``pg_advisory_lock(CHECKPOINT_CLASS, position)`` on the tenant's database, where
``position`` is the rows the import has passed so far (employees, then managers).
"""
from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import any_, bindparam, func, literal_column, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.provider import DataProvider, write_lock_key
from domain.employment import queries, rows
from domain.employment.errors import InvalidInput
from domain.employment.models import Employee, ImportJob, ImportProblem, JobType, OrgUnit
from domain.employment.queries import ImportView
from domain.employment.relations import REPORTS_TO, owned_by
from domain.employment.rows import Checked, ManagerRow, Problem, Reference, Sheet, ValidRow
from domain.errors import DomainError, NotFound
from domain.graph import services as graph
from domain.messaging import outbox
from domain.messaging.contracts.employment import RunImportV1
from domain.text import CONTROL

log = logging.getLogger(__name__)
BATCH = 1_000
CHECKPOINT_CLASS = 0x696D706F  # "impo": the first key of every import checkpoint lock
_COLUMNS = ("name", "work_email", "job_type_id", "org_unit_id", "start_date", "end_date", "status")
# The employee column each column of a file sets on an employee that exists.
_SETS = {"name": "name", "job_type": "job_type_id", "org_unit": "org_unit_id", "start_date": "start_date",
         "end_date": "end_date", "status": "status"}


@dataclass(frozen=True)
class RunOutcome:
    """What one run did: where the import stands, or that another run holds it."""

    status: str
    busy: bool = False

    @property
    def finished(self) -> bool:
        """True once the import completed or failed (its command is delivered)."""
        return self.status in ("completed", "failed")


def record_import(db: Session, tenant_id: uuid.UUID, filename: str, data: bytes, *,
                  created_by: uuid.UUID | None, correlation_id: str | None) -> ImportView:
    """Keep an uploaded file as a pending import and queue its run (one transaction).

    The file is checked by content first: UTF-8 CSV, a header of known columns with the
    required ones, 1 to ``rows.MAX_ROWS`` rows (InvalidInput naming ``file``)."""
    content = rows.decode(data)
    records = rows.read(content).records
    if not records:
        raise InvalidInput("the file has no employees below its header line", field=rows.FILE)
    base = (filename or "upload.csv").replace("\\", "/").rsplit("/", 1)[-1]
    name = CONTROL.sub("", base)[:255] or "upload.csv"  # PostgreSQL's text takes no NUL
    job = ImportJob(id=uuid.uuid4(), tenant_id=tenant_id, filename=name, content=content,
                    created_by=created_by, status="pending", phase="employees", rows_total=len(records),
                    rows_done=0, managers_done=0, created=0, updated=0, unchanged=0, failed=0, edges=0)
    db.add(job)
    db.flush()
    outbox.record(db, RunImportV1(import_id=job.id, tenant_id=tenant_id), tenant_id=tenant_id,
                  correlation_id=correlation_id)
    return queries.import_job(db, job.id)


# -- running ---------------------------------------------------------------------------

def run(provider: DataProvider, tenant_id: uuid.UUID, import_id: uuid.UUID, *,
        batch: int = BATCH) -> RunOutcome:
    """Run (or resume) an import to its end; at most one run per import at a time."""
    with provider.tenant(tenant_id) as db:
        job = db.get(ImportJob, import_id)
        if job is None:
            raise NotFound("no such import", field="import_id")
        if job.status in ("completed", "failed"):
            return RunOutcome(job.status)
    with _exclusive(provider, tenant_id, import_id) as held:
        if not held:
            return RunOutcome("running", busy=True)
        return _Run(provider, tenant_id, import_id, batch).run()


@contextmanager
def _exclusive(provider: DataProvider, tenant_id: uuid.UUID, import_id: uuid.UUID) -> Iterator[bool]:
    """A session-level advisory lock on the tenant's database for one run of an import; it
    dies with the connection, so a killed run never blocks the next one."""
    key = write_lock_key(import_id)
    with provider.engine(provider.route(tenant_id).url).connect() as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


class _Run:
    """One run of one import."""

    def __init__(self, provider: DataProvider, tenant_id: uuid.UUID, import_id: uuid.UUID,
                 batch: int) -> None:
        self.provider, self.tenant_id, self.id, self.batch = provider, tenant_id, import_id, batch
        self.sheet = Sheet((), [])
        self.checked: list[Checked] = []  # the employees phase's rows
        self.updates: tuple[str, ...] = ()
        self.reporting: list[ManagerRow | None] | None = None  # the managers phase's, once known

    def run(self) -> RunOutcome:
        """Check the file, then apply what is left of it, batch by batch."""
        with self.provider.tenant(self.tenant_id) as db:
            job = self._job(db, lock=True)
            if job.status in ("completed", "failed"):  # a copy of the command that took the lock late
                return RunOutcome(job.status)
            job.status, job.updated_at = "running", utcnow()
            content, phase = job.content, job.phase
            reference = _reference(db) if phase == "employees" else None
            db.commit()
        try:
            self.sheet = rows.read(content)
            if reference is not None:
                self.checked = rows.check(self.sheet.records, reference)
            self.updates = _updated_columns(self.sheet.columns)
        except DomainError as exc:  # the file passed at upload; a bug or a hand-edited row
            return self._fail(exc.reason)
        while phase == "employees":
            phase = self._employees()
        while phase == "managers":
            phase = self._managers()
        return RunOutcome("completed")

    def _job(self, db: Session, *, lock: bool = False) -> ImportJob:
        job = db.get(ImportJob, self.id, with_for_update=lock, populate_existing=lock)
        assert job is not None  # checked by run(); import rows are never deleted under a run
        return job

    def _begin_batch(self, db: Session, position: int) -> ImportJob:
        """Pass the batch's checkpoint lock, then lock the import row."""
        db.execute(text("SELECT pg_advisory_xact_lock_shared(:cls, :position)"),
                   {"cls": CHECKPOINT_CLASS, "position": position})
        _custom_plans(db)
        return self._job(db, lock=True)

    def _employees(self) -> str:
        with self.provider.tenant(self.tenant_id) as db:
            job = db.get(ImportJob, self.id)
            assert job is not None
            start = job.rows_done
            job = self._begin_batch(db, start)
            if job.phase != "employees" or job.rows_done != start:
                return job.phase  # another run moved on meanwhile
            end = min(start + self.batch, job.rows_total)
            part = self.checked[start:end]
            valid, misfits = _dates_fit(db, [r for r in part if isinstance(r, ValidRow)], self.updates)
            created, updated = _upsert(db, self.tenant_id, valid, self.updates)
            _record_problems(db, self.tenant_id, self.id,
                             [p for r in part if not isinstance(r, ValidRow) for p in r] + misfits)
            job.created += created
            job.updated += updated
            job.unchanged += len(valid) - created - updated
            job.failed += len(part) - len(valid)
            job.rows_done = end
            if end >= job.rows_total:
                job.phase = "managers"
            job.updated_at = utcnow()
            db.commit()
            return job.phase

    def _managers(self) -> str:
        with self.provider.tenant(self.tenant_id) as db, self.provider.management() as graph_db:
            job = db.get(ImportJob, self.id)
            assert job is not None
            start = job.managers_done
            job = self._begin_batch(db, job.rows_total + start)
            if job.phase != "managers" or job.managers_done != start:
                return job.phase
            _custom_plans(graph_db)
            if self.reporting is None:
                self.reporting = rows.reporting_lines(self.sheet.records, _refused_lines(db, self.id))
            end = min(start + self.batch, job.rows_total)
            wanted = [r for r in self.reporting[start:end] if r is not None]
            placed, problems = _set_managers(db, graph_db, self.tenant_id, wanted)
            graph_db.commit()  # before the checkpoint: a re-run finds the edges and writes nothing
            _record_problems(db, self.tenant_id, self.id, problems)
            job.edges += placed
            job.managers_done = end
            if end >= job.rows_total:
                job.phase, job.status, job.finished_at = "done", "completed", utcnow()
            job.updated_at = utcnow()
            db.commit()
            return job.phase

    def _fail(self, reason: str) -> RunOutcome:
        with self.provider.tenant(self.tenant_id) as db:
            job = self._job(db, lock=True)
            job.status, job.error = "failed", reason[:2000]
            job.finished_at = job.updated_at = utcnow()
            db.commit()
        log.warning("import %s failed: %s", self.id, reason)
        return RunOutcome("failed")


def _custom_plans(session: Session) -> None:
    """Plan this transaction's statements for their actual arrays of ids and emails.

    A batch runs the same statements again and again on one connection, so the driver
    prepares them, and after five runs PostgreSQL may switch to a generic plan that does
    not know the arrays' sizes: it scanned every employee for each batch's 1,000 emails
    (0.05 s a batch became 4 s, from the 11th batch of a 20,000-row import on)."""
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _reference(db: Session) -> Reference:
    job_types = {name.lower(): job_type_id
                 for job_type_id, name in db.execute(select(JobType.id, JobType.name))}
    units: dict[str, list[uuid.UUID]] = {}
    for unit_id, name in db.execute(select(OrgUnit.id, OrgUnit.name).order_by(OrgUnit.id)):
        units.setdefault(name.lower(), []).append(unit_id)
    return Reference(job_types, units)


def _updated_columns(columns: Collection[str]) -> tuple[str, ...]:
    """The employee columns a file with these columns sets on an employee that exists."""
    return tuple(_SETS[c] for c in rows.COLUMNS if c in columns and c in _SETS)


# Insert or update by work email; a row that changes nothing is neither written nor
# returned (the ON CONFLICT ... WHERE skips it). Built once per set of columns a file has,
# bound per batch (executemany: SQLAlchemy sends a batch as one multi-row INSERT compiled once).
@functools.cache
def _upsert_statement(updates: tuple[str, ...]) -> Insert:
    new = pg_insert(Employee).excluded
    return pg_insert(Employee).on_conflict_do_update(
        constraint="uq_employees_tenant_id",
        set_={**{c: getattr(new, c) for c in updates}, "updated_at": func.now()},
        where=tuple_(*(getattr(Employee, c) for c in updates)).is_distinct_from(
            tuple_(*(getattr(new, c) for c in updates))),
    ).returning(literal_column("xmax = 0"))


def _upsert(db: Session, tenant_id: uuid.UUID, valid: list[ValidRow],
            updates: tuple[str, ...]) -> tuple[int, int]:
    """Insert or update ``valid`` by work email, setting ``updates`` on those that exist;
    (created, updated)."""
    if not valid:
        return 0, 0
    values = [{"id": uuid.uuid4(), "tenant_id": tenant_id, **{c: getattr(r, c) for c in _COLUMNS}}
              for r in valid]
    inserted = list(db.scalars(_upsert_statement(updates), values))
    created = sum(1 for flag in inserted if flag)
    return created, len(inserted) - created


def _dates_fit(db: Session, valid: list[ValidRow], updates: tuple[str, ...]) -> tuple[list[ValidRow],
                                                                                         list[Problem]]:
    """The rows whose date fits the other date their employee keeps, when a file has one of
    start_date and end_date; the others as problems (an end before the start would break
    the table's check, and with it the whole batch). The employees are locked until the
    batch commits, so the dates kept cannot change before the upsert."""
    given = {"start_date", "end_date"} & set(updates)
    if len(given) != 1 or not valid:
        return valid, []
    emails = bindparam("emails", [r.work_email for r in valid], type_=ARRAY(Employee.work_email.type))
    kept = {email: (start, end) for email, start, end in db.execute(
        select(Employee.work_email, Employee.start_date, Employee.end_date)
        .where(Employee.work_email == any_(emails)).order_by(Employee.id).with_for_update())}
    fit: list[ValidRow] = []
    problems: list[Problem] = []
    for row in valid:
        start, end = kept.get(row.work_email, (None, None))
        if "start_date" in given and row.start_date and end and end < row.start_date:
            problems.append(Problem(row.line, "start_date",
                                    f"must not be after the end date the employee has ({end})"))
        elif "end_date" in given and row.end_date and start and row.end_date < start:
            problems.append(Problem(row.line, "end_date",
                                    f"must not be before the start date the employee has ({start})"))
        else:
            fit.append(row)
    return fit, problems


def _refused_lines(db: Session, import_id: uuid.UUID) -> set[int]:
    """The lines of the import with a problem: their employees were not applied."""
    return set(db.scalars(select(ImportProblem.line).where(ImportProblem.job_id == import_id).distinct()))


def _set_managers(db: Session, graph_db: Session, tenant_id: uuid.UUID,
                  wanted: list[ManagerRow]) -> tuple[int, list[Problem]]:
    """Reporting lines for ``wanted``; (how many are in place, the problems)."""
    if not wanted:
        return 0, []
    ids = queries.ids_by_email(db, {r.work_email for r in wanted} | {r.manager_email for r in wanted},
                               lock=True)
    problems: list[Problem] = []
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    rows_of_pairs: list[ManagerRow] = []
    for row in wanted:
        employee, manager = ids.get(row.work_email), ids.get(row.manager_email)
        if employee is None:
            problems.append(Problem(row.line, "work_email", "this employee no longer exists"))
        elif manager is None:
            problems.append(Problem(row.line, "manager_email", "no employee has this work email"))
        else:
            pairs.append((employee, manager))
            rows_of_pairs.append(row)
    refused = graph.set_targets(graph_db, tenant_id, REPORTS_TO, pairs, owned=owned_by(db))
    for refusal in refused:
        reason = ("they would report to someone who reports to them" if "cycle" in refusal.reason
                  else refusal.reason)
        problems.append(Problem(rows_of_pairs[refusal.index].line, "manager_email", reason))
    return len(pairs) - len(refused), problems


def _record_problems(db: Session, tenant_id: uuid.UUID, import_id: uuid.UUID,
                     problems: list[Problem]) -> None:
    if problems:
        db.execute(pg_insert(ImportProblem).values([
            {"tenant_id": tenant_id, "job_id": import_id, "line": p.line, "field": p.field,
             "reason": p.reason} for p in problems]).on_conflict_do_nothing())
