# ruff: noqa: N999 - the issue names this module bench/import.py
"""Benchmark: rows per second of a 50,000-row employee import, end to end, against a plain
COPY of the same rows, in one run.

One PostgreSQL server (``--postgres``), fresh databases, a private Redis:

1. A trial tenant with an HR manager, the job type and the org unit the file names.
2. Ours: the file (``--rows`` employees, default 50,000, in a random order; each manager
   has 3 to 10 reports, six levels deep) is uploaded to ``POST /api/v1/employment/imports``
   of the real app (in this process); a real ``celery -A workers.app worker -Q employment -c 1`` validates and
   applies it in batches: employees upserted by work email, then the ``reports_to`` edges
   in the relation graph. The clock runs from the upload to the import row saying
   ``completed``, polled every 20 ms. The same file is then imported a second time (every
   row unchanged), timed the same way.
3. Baseline: the same rows, unvalidated, streamed into ``employees`` of another trial
   tenant with one binary ``COPY`` (no reporting lines).

Final line: ``import: rows_per_s=..`` (the first import); target ``rows_per_s >= 2000``.
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import socket
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from bench.common import (
    DEFAULT_POSTGRES,
    BenchError,
    Stack,
    Target,
    add_trial_tenant,
    final_line,
    run_bench,
    table,
    targets_line,
    wait_for,
)
from config.settings import Settings, load_settings
from domain.bootstrap import build_provider
from domain.db.provider import TRIAL, DataProvider
from domain.employment import structure
from domain.employment.models import ImportJob
from domain.employment.rows import COLUMNS
from domain.iam import services as iam
from domain.identity import services as identity
from domain.tenancy.copying import connect
from web import create_app
from workers.publisher import web_publisher

PASSWORD = "bench hr manager password"  # noqa: S105 - a throw-away account in throw-away databases
JOB_TYPE, UNIT = "Engineer", "Platform"


@dataclass(frozen=True)
class Run:
    """One import as timed: the whole, and its two passes."""

    seconds: float
    employees_seconds: float  # upload to the employees pass done (managers begin)
    created: int
    unchanged: int
    edges: int


@dataclass(frozen=True)
class Figures:
    """What one benchmark run measured."""

    rows: int
    first: Run
    again: Run
    copy_seconds: float


def people_csv(rows: int, seed: int = 5) -> tuple[bytes, list[tuple[str, str]]]:
    """The file (an organisation where each manager has 3 to 10 reports, its lines in a
    random order), and its (name, work email) pairs for the baseline."""
    rng = random.Random(seed)
    people = [(f"Person {i:06d}", f"person-{i}@example.com") for i in range(rows)]
    manager: dict[int, int] = {}
    waiting, placed = deque([0]), 1
    while placed < rows:
        boss = waiting.popleft()
        for _ in range(rng.randint(3, 10)):
            if placed == rows:
                break
            manager[placed] = boss
            waiting.append(placed)
            placed += 1
    order = list(range(rows))
    rng.shuffle(order)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in order:
        boss = people[manager[i]][1] if i in manager else ""
        writer.writerow([*people[i], JOB_TYPE, UNIT, "2020-01-01", "", "active", boss])
    return out.getvalue().encode(), people


def hr_tenant(provider: DataProvider) -> tuple[uuid.UUID, str, str]:
    """A trial tenant with an HR manager, a job type and a unit; (id, slug, manager email)."""
    email = f"hr-{uuid.uuid4().hex[:8]}@example.com"
    with provider.management() as session:
        tenant_id, slug = add_trial_tenant(session, "Bench imports")
        iam.create_default_roles(session, tenant_id)
        user = identity.create_user(session, email=email, name="Bench HR",
                                    password_hash=identity.hash_password(PASSWORD))
        iam.grant_role(session, user.id, tenant_id, "hr_manager")
        session.commit()
    with provider.tenant(tenant_id) as db:
        structure.create_job_type(db, tenant_id, JOB_TYPE)
        structure.create_org_unit(db, tenant_id, UNIT, None)
        db.commit()
    return tenant_id, slug, email


def wait_for_worker(settings: Settings, node: str, stack: Stack) -> None:
    """Until the worker answers a ping (it consumes from then on)."""
    control = web_publisher(settings.broker_url, settings.result_backend)
    try:
        wait_for(lambda: control.control.ping(destination=[node], timeout=0.5), timeout=60,
                 what="the employment worker", interval=0.2, watch=stack.children)
    finally:
        control.close()


@dataclass(frozen=True)
class Importer:
    """Who uploads (a test client of the app and a token) and where the import lands."""

    client: Any
    token: str
    provider: DataProvider
    tenant_id: uuid.UUID
    stack: Stack
    timeout: float


def import_once(importer: Importer, data: bytes) -> Run:
    """Upload the file and wait for its import to complete."""
    boundary = f"bench-{uuid.uuid4().hex}"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="people.csv"\r\n'
            f"Content-Type: text/csv\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    started = time.perf_counter()
    response = importer.client.post("/api/v1/employment/imports", data=body,
                                    content_type=f"multipart/form-data; boundary={boundary}",
                                    headers={"Authorization": f"Bearer {importer.token}"})
    if response.status_code != 202:
        said = response.get_data(as_text=True)[:300]
        raise BenchError(f"the upload answered {response.status_code}: {said}")
    import_id = uuid.UUID(response.json["id"])
    marks: dict[str, float] = {}

    def done() -> ImportJob | None:
        with importer.provider.tenant(importer.tenant_id) as db:
            job = db.get(ImportJob, import_id)
        if job is not None and job.phase != "employees":
            marks.setdefault("managers", time.perf_counter())
        return job if job is not None and job.status in ("completed", "failed") else None

    job = wait_for(done, timeout=importer.timeout, what="the import to complete", interval=0.02,
                   watch=importer.stack.children)
    elapsed = time.perf_counter() - started
    if job.status != "completed" or job.failed:
        raise BenchError(f"the import ended {job.status} with {job.failed} bad rows: {job.error}")
    return Run(elapsed, marks["managers"] - started, job.created, job.unchanged, job.edges)


def plain_copy(provider: DataProvider, people: list[tuple[str, str]]) -> float:
    """Seconds to COPY the same rows (no checks, no reporting lines) for another tenant."""
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench import baseline")
        session.commit()
    with connect(provider.url_of(TRIAL)) as conn:
        started = time.perf_counter()
        with conn.cursor().copy("COPY employees (id, tenant_id, name, work_email, status) "
                                "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "uuid", "varchar", "varchar", "varchar"])
            for name, email in people:
                copy.write_row((uuid.uuid4(), tenant_id, name, email, "active"))
        conn.commit()
        return time.perf_counter() - started


def measure(args: argparse.Namespace, stack: Stack) -> Figures:
    """Seed, start the worker, import twice, copy once."""
    stack.start_redis()
    databases = stack.create_databases()
    env = stack.env(databases, LOG_LEVEL="WARNING")
    settings = load_settings(env)
    provider = build_provider(settings)
    stack.on_close(provider.dispose)
    tenant_id, slug, email = hr_tenant(provider)
    data, people = people_csv(args.rows)
    print(f"{args.rows} rows, {len(data) / 1e6:.1f} MB; starting the employment worker ...",
          file=sys.stderr, flush=True)
    node = f"bench-employment@{socket.gethostname()}"
    stack.spawn("worker-employment", [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                                      "-Q", "employment", "-n", node, "-c", "1", "-l", "WARNING"], env)
    wait_for_worker(settings, node, stack)
    app = create_app(settings)
    stack.on_close(app.extensions["allotment.provider"].dispose)
    client = app.test_client()
    signed = client.post("/api/v1/identity/tokens",
                         json={"email": email, "password": PASSWORD, "tenant": slug})
    if signed.status_code != 200:
        raise BenchError(f"sign-in answered {signed.status_code}: {signed.get_data(as_text=True)[:300]}")
    importer = Importer(client, signed.json["access_token"], provider, tenant_id, stack, args.timeout)
    first = import_once(importer, data)
    print(f"  import: {args.rows / first.seconds:.0f} rows/s", file=sys.stderr, flush=True)
    again = import_once(importer, data)
    if (first.created, again.unchanged) != (args.rows, args.rows) or first.edges != args.rows - 1:
        raise BenchError(f"expected {args.rows} created then unchanged and {args.rows - 1} reporting lines; "
                         f"got {first} and {again}")
    copy_seconds = plain_copy(provider, people)
    return Figures(args.rows, first, again, copy_seconds)


def report(figures: Figures) -> int:
    """Print the table, the targets and the final line."""
    rows = figures.rows
    ours = rows / figures.first.seconds
    copy_rate = rows / figures.copy_seconds
    def line(name: str, run: Run) -> list[object]:
        return [name, rows, f"{run.seconds:.2f}", f"{rows / run.seconds:.0f}", f"{run.employees_seconds:.2f}",
                f"{run.seconds - run.employees_seconds:.2f}"]

    print(table(["path", "rows", "seconds", "rows/s", "employees pass s", "managers pass s"], [
        ["plain binary COPY into employees", rows, f"{figures.copy_seconds:.2f}", f"{copy_rate:.0f}", "", ""],
        line("import (upload -> completed)", figures.first),
        line("the same file again (no-op)", figures.again),
    ]))
    print(f"\nours / plain COPY = {ours / copy_rate:.3f} (the import also checks every row, keeps "
          f"problems and progress, and writes {rows - 1} reporting lines to the graph)")
    print(targets_line([Target("rows_per_s", ours, ">=", 2000)]))
    print(final_line("import", {"rows_per_s": ours}, {"rows_per_s": 0}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (target met or not), 1 on errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a server to create databases on")
    parser.add_argument("--rows", type=int, default=50_000, help="employees in the file (50,000)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds an import may take (600)")
    args = parser.parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack), report)


if __name__ == "__main__":
    sys.exit(main())
