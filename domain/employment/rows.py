"""Reading and checking an import file: CSV in, checked rows and per-line problems out.

The file is checked by content when it is uploaded (UTF-8 text, a header naming known
columns, the required ones present, not too many rows); each row is checked by the worker
with the same rules as the API and the forms (``services``), so every way in refuses the
same values for the same reasons. A problem names the file's line (the header is line 1)
and the column.

Only the columns the header names are applied to an employee the file finds by work email:
a column left out keeps what the employee has. An empty cell in a column the header names
(or a row shorter than the header) clears that field: no job type, no org unit, no start
or end date; an empty ``status`` is ``active``, and an empty ``manager_email`` leaves the
reporting line as it is. A new employee gets the same from the columns left out.
"""
from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from domain.employment.errors import InvalidInput
from domain.employment.values import check_status, clean_email, clean_name
from domain.errors import DomainError

COLUMNS = ("name", "work_email", "job_type", "org_unit", "start_date", "end_date", "status",
           "manager_email")
REQUIRED = ("name", "work_email")
MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
# Room for a spreadsheet's blank rows and a long row's quoted text, not for a file of commas.
MAX_LINES = 2 * MAX_ROWS
MAX_LINE = 16 * 1024
FILE = "file"


@dataclass(frozen=True)
class Record:
    """One row of the file as typed: its line and its cells by column."""

    line: int
    values: Mapping[str, str]
    extra_cells: int = 0  # cells beyond the header's columns


@dataclass(frozen=True)
class Sheet:
    """A file as read: the columns its header names, and its rows."""

    columns: tuple[str, ...]
    records: list[Record]


@dataclass(frozen=True)
class ValidRow:
    """A row that can be applied: an employee and, maybe, their manager's work email."""

    line: int
    name: str
    work_email: str
    job_type_id: uuid.UUID | None
    org_unit_id: uuid.UUID | None
    start_date: date | None
    end_date: date | None
    status: str
    manager_email: str | None


@dataclass(frozen=True)
class ManagerRow:
    """A line's reporting line: the employee's work email and their manager's."""

    line: int
    work_email: str
    manager_email: str


@dataclass(frozen=True)
class Problem:
    """Why one line (or one cell of it) cannot be applied."""

    line: int
    field: str
    reason: str


Checked = ValidRow | tuple[Problem, ...]


@dataclass(frozen=True)
class Reference:
    """The tenant's job types and org units, by lower-case name."""

    job_types: Mapping[str, uuid.UUID]
    org_units: Mapping[str, list[uuid.UUID]]


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (a byte-order mark is dropped), not binary, not too big."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", field=FILE)
    if b"\x00" in data:
        raise InvalidInput("this is not a CSV file (it holds binary data)", field=FILE)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the file is not UTF-8 text; save it as \"CSV UTF-8\"", field=FILE) from None


def _header(cells: list[str]) -> list[str]:
    columns = [c.strip().lower().replace(" ", "_") for c in cells]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise InvalidInput(f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}",
                           field=FILE)
    repeated = sorted(c for c, times in Counter(columns).items() if times > 1)
    if repeated:
        raise InvalidInput(f"the column {repeated[0]!r} appears twice", field=FILE)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InvalidInput(f"the column {missing[0]!r} is missing", field=FILE)
    return columns


def _lines(text: str) -> Iterator[str]:
    """The file's lines for the CSV reader, each checked before it is split into cells: a
    line of millions of commas, or millions of blank lines, would cost the request seconds
    of CPU and hundreds of MB before a row could be refused."""
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        if number > MAX_LINES:
            raise InvalidInput(f"the file has more than {MAX_LINES:,} lines", field=FILE)
        if len(line) > MAX_LINE:
            raise InvalidInput(f"line {number} is longer than {MAX_LINE:,} characters", field=FILE)
        yield line


def read(text: str) -> Sheet:
    """The file's columns and rows (blank lines skipped); InvalidInput naming ``file`` for a
    bad header."""
    reader = csv.reader(_lines(text), strict=True)
    try:
        first = next(reader, None)
        if first is None or not any(c.strip() for c in first):
            raise InvalidInput("the file is empty: the first line must name the columns", field=FILE)
        columns = _header(first)
        records: list[Record] = []
        line = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                if len(records) >= MAX_ROWS:
                    raise InvalidInput(f"the file has more than {MAX_ROWS} rows", field=FILE)
                values = {c: v.strip() for c, v in zip(columns, cells, strict=False)}
                records.append(Record(line, values, max(0, len(cells) - len(columns))))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: the CSV cannot be read ({exc})", field=FILE) from None
    return Sheet(tuple(columns), records)


def check(records: list[Record], reference: Reference) -> list[Checked]:
    """Each record as a ``ValidRow`` or its problems; a work email seen on an earlier line
    makes a later line a problem (the first one wins)."""
    seen: dict[str, int] = {}
    emails: dict[tuple[str, str], str | DomainError] = {}  # managers repeat: check each once
    checked: list[Checked] = []
    for record in records:
        row = _check(record, reference, emails)
        if isinstance(row, ValidRow):
            first = seen.setdefault(row.work_email, row.line)
            if first != row.line:
                row = (Problem(row.line, "work_email", f"the same work email is on line {first}"),)
        checked.append(row)
    return checked


def reporting_lines(records: list[Record], refused: Collection[int]) -> list[ManagerRow | None]:
    """Each record's reporting line, or None: a line without a manager, or one of ``refused``
    (the lines whose employee was not applied). Only the two emails are read, so a run that
    resumes after the employees decides as the run that applied them did, whatever was
    renamed or deleted since."""
    emails: dict[tuple[str, str], str | DomainError] = {}
    lines: list[ManagerRow | None] = []
    for record in records:
        manager = record.values.get("manager_email", "")
        if record.line in refused or not manager:
            lines.append(None)
            continue
        try:
            employee = _email(record.values.get("work_email", ""), "work_email", emails)
            lines.append(ManagerRow(record.line, employee, _email(manager, "manager_email", emails)))
        except DomainError:  # never: such a line was refused with its problem
            lines.append(None)
    return lines


def _email(value: str, field: str, cache: dict[tuple[str, str], str | DomainError]) -> str:
    found = cache.get((value, field))
    if found is None:
        try:
            found = clean_email(value, field=field)
        except DomainError as exc:
            found = exc
        cache[(value, field)] = found
    if isinstance(found, DomainError):
        raise found
    return found


def _check(record: Record, reference: Reference,
           emails: dict[tuple[str, str], str | DomainError]) -> Checked:
    problems: list[Problem] = []
    cells = record.values

    def cell(field: str, parse):  # type: ignore[no-untyped-def]
        """The cell parsed, or None with its problem noted."""
        try:
            return parse(cells.get(field, ""))
        except DomainError as exc:
            problems.append(Problem(record.line, exc.field or field, exc.reason))
            return None

    if record.extra_cells:
        problems.append(Problem(record.line, "line",
                                f"{record.extra_cells} cell(s) more than the header has"))
    name = cell("name", clean_name)
    email = cell("work_email", lambda v: _email(v, "work_email", emails))
    job_type_id = cell("job_type", lambda v: _lookup_one(v, reference.job_types, "job_type", "job type"))
    org_unit_id = cell("org_unit", lambda v: _lookup_unit(v, reference.org_units))
    start = cell("start_date", lambda v: _date(v, "start_date"))
    end = cell("end_date", lambda v: _date(v, "end_date"))
    if start is not None and end is not None and end < start:
        problems.append(Problem(record.line, "end_date", "must not be before the start date"))
    status = cell("status", lambda v: check_status(v.lower().replace(" ", "_") or "active"))
    manager = cell("manager_email", lambda v: _email(v, "manager_email", emails) if v else None)
    if manager is not None and manager == email:
        problems.append(Problem(record.line, "manager_email", "an employee cannot report to themselves"))
    if problems:
        return tuple(problems)
    return ValidRow(record.line, name, email, job_type_id, org_unit_id, start, end, status, manager)


def _lookup_one(value: str, names: Mapping[str, uuid.UUID], field: str, what: str) -> uuid.UUID | None:
    if not value:
        return None
    found = names.get(value.lower())
    if found is None:
        raise InvalidInput(f"no {what} is named {value!r}", field=field)
    return found


def _lookup_unit(value: str, units: Mapping[str, list[uuid.UUID]]) -> uuid.UUID | None:
    if not value:
        return None
    found = units.get(value.lower(), [])
    if not found:
        raise InvalidInput(f"no org unit is named {value!r}", field="org_unit")
    if len(found) > 1:
        raise InvalidInput(f"{len(found)} org units are named {value!r}; rename one of them",
                           field="org_unit")
    return found[0]


def _date(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("not a date (write it as YYYY-MM-DD)", field=field) from None
