"""Migrate-all benchmark: wall time of ``flask tenants migrate-all`` over 100 dedicated tenant
databases, once when each needs one revision and once when all are already at head.

    .venv/bin/python -m bench.migrate_all [--databases 100] [--concurrency 4] [--pool 4]

Fresh management and trial databases, and ``--databases`` tenant databases at the revision
before head (cloned from one template migrated there), each with a dedicated tenant placed
on it, all on the ``--postgres`` server. A real ``celery worker -Q tenancy`` runs
``tasks.tenancy.migrate_tenant_database``; the command is the real CLI in its own process,
timed from start to exit (``cli start s``: the same process answering ``--help``, i.e.
importing and building the app). First run: every database upgrades one revision; second
run: every database is at head and is skipped. Every database is dropped at the end. See
bench/README.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import select

from bench.common import (
    DEFAULT_POSTGRES,
    ROOT,
    TENANT_ROLE,
    BenchError,
    Stack,
    Target,
    final_line,
    run_bench,
    table,
    targets_line,
)
from config.settings import database_name, database_on, load_settings
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import DataProvider, server_label
from domain.tenancy.migrations import drifted_databases
from domain.tenancy.models import Tenant, TenantMigration

CLI = [sys.executable, "-m", "flask", "--app", "web", "tenants", "migrate-all"]


@dataclass(frozen=True)
class Run:
    """One migrate-all run: its wall time and what the worker recorded per database."""

    name: str
    seconds: float
    summary: str
    durations_ms: list[int]
    most_at_once: int


@dataclass(frozen=True)
class Figures:
    """Everything the report prints."""

    databases: int
    concurrency: int
    pool: int
    cli_start_s: float
    upgrade: Run
    noop: Run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.migrate_all", description=__doc__.split("\n")[0])
    parser.add_argument("--databases", type=int, default=100, help="dedicated tenant databases (100)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="MIGRATION_CONCURRENCY: databases migrating at once (4, the default setting)")
    parser.add_argument("--pool", type=int, default=None,
                        help="prefork children of the tenancy worker (default: --concurrency)")
    parser.add_argument("--timeout", type=float, default=900.0, help="deadline of each run, seconds (900)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="PostgreSQL server URL; fresh databases are created on it and dropped")
    return parser.parse_args(argv)


def clone_databases(stack: Stack, server: str, count: int, revision: str | None) -> list[str]:
    """``count`` databases at ``revision``, cloned from one template migrated there (faster
    than migrating each); every one is dropped when the stack closes."""
    prefix = f"allot_bench_mig_{uuid.uuid4().hex[:8]}"
    template = database_on(server, f"{prefix}_template")
    urls = [database_on(server, f"{prefix}_{i:04d}") for i in range(count)]
    for url in (template, *urls):
        stack.on_close(migrate.drop_database, url)  # registered first: a failure drops what exists
    migrate.ensure_database(template)
    if revision is not None:
        migrate.upgrade("tenant", template, TENANT_ROLE, revision)
    maintenance = server.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        for url in urls:
            conn.execute(f'CREATE DATABASE "{database_name(url)}" TEMPLATE "{database_name(template)}"')
    return urls


def place_tenants(provider: DataProvider, server: str, urls: list[str]) -> None:
    """A dedicated tenant on each database (what migrate-all lists)."""
    with provider.management() as session:
        for url in urls:
            tenant_id = uuid.uuid4()
            session.add(Tenant(id=tenant_id, slug=f"bench-{tenant_id.hex[:12]}", name="Bench Org",
                               status="dedicated", plan="dedicated", placement_server=server_label(server),
                               database_name=database_name(url)))
        session.commit()


def run_cli(name: str, argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, str]:
    """Run the CLI in its own process; its wall time and output (BenchError unless it exits 0)."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{name} exited with {done.returncode}:\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def migrate_all(name: str, provider: DataProvider, env: dict[str, str], timeout: float,
                expect: str) -> Run:
    """One timed ``flask tenants migrate-all``; its summary must start with ``expect``."""
    since = datetime.now().astimezone()
    seconds, output = run_cli(name, [*CLI, "--timeout", str(timeout)], env, timeout + 60)
    summary = output.strip().splitlines()[-1]
    if not summary.startswith(expect):
        raise BenchError(f"{name}: expected '{expect}...', the CLI said:\n{output[-3000:]}")
    with provider.management() as session:
        rows = session.execute(select(TenantMigration.created_at, TenantMigration.duration_ms)
                               .where(TenantMigration.created_at >= since)).all()
    print(f"  {name}: {seconds:.2f} s ({summary})", file=sys.stderr, flush=True)
    # Each row is one database: it finished at created_at, after duration_ms.
    intervals = [(row.created_at - timedelta(milliseconds=row.duration_ms), row.created_at) for row in rows]
    return Run(name, seconds, summary, [row.duration_ms for row in rows], most_at_once(intervals))


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one moment (a finish sorts before a start at the same instant)."""
    events = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    most = current = 0
    for _, change in sorted(events):
        current += change
        most = max(most, current)
    return most


def measure(args: argparse.Namespace, stack: Stack) -> Figures:
    """Create the databases, start the tenancy worker, time the two runs."""
    pool = args.pool or args.concurrency
    stack.start_redis()
    databases = stack.create_databases()
    env = stack.env(databases, LOG_LEVEL="WARNING", MIGRATION_CONCURRENCY=str(args.concurrency),
                    WORKER_CONCURRENCY=str(pool))
    settings = load_settings(env)
    provider = build_provider(settings)
    stack.on_close(provider.dispose)
    server = settings.placement_servers[0]
    worker = stack.spawn("worker-tenancy", [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                                            "-Q", "tenancy", "-n", "tenancy@%h", "-c", str(pool),
                                            "-l", "WARNING"], env)
    # Warm-up (only the trial database is listed yet): also waits for the worker to consume.
    migrate_all("warm-up", provider, env, 120, "0 upgraded, 1 skipped, 0 failed")
    cli_start_s, _ = run_cli("cli --help", [*CLI, "--help"], env, 120)

    previous = migrate.revision_before_head("tenant")
    print(f"  creating {args.databases} tenant databases at {previous} ...", file=sys.stderr, flush=True)
    place_tenants(provider, server, clone_databases(stack, server, args.databases, previous))
    upgrade = migrate_all("upgrade", provider, env, args.timeout,
                          f"{args.databases} upgraded, 1 skipped, 0 failed")
    if drifted_databases(provider):
        raise BenchError("databases not at head after the upgrade run")
    noop = migrate_all("noop", provider, env, args.timeout,
                       f"0 upgraded, {args.databases + 1} skipped, 0 failed")
    worker.check()
    return Figures(args.databases, args.concurrency, pool, cli_start_s, upgrade, noop)


def report(figures: Figures) -> int:
    """Print the figures, the targets and the final line; the exit status (0: it measured)."""
    print(f"{figures.databases} dedicated databases + the trial one; MIGRATION_CONCURRENCY="
          f"{figures.concurrency}, tenancy worker -c {figures.pool}; cli start {figures.cli_start_s:.2f} s")
    rows = [[run.name, f"{run.seconds:.2f}", len(run.durations_ms),
             f"{statistics.median(run.durations_ms):.0f}", f"{max(run.durations_ms)}", run.most_at_once]
            for run in (figures.upgrade, figures.noop)]
    print(table(["run", "wall s", "databases", "p50 ms/db", "max ms/db", "most at once"], rows))
    values = {"noop_s": figures.noop.seconds, "upgrade_s": figures.upgrade.seconds,
              "databases": float(figures.databases)}
    print(targets_line([Target("noop_s", values["noop_s"], "<=", 10.0),
                        Target("upgrade_s", values["upgrade_s"], "<=", 90.0)]))
    print(final_line("migrate_all", values, {"noop_s": 2, "upgrade_s": 2, "databases": 0}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (targets met or not), 1 on errors."""
    args = parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack), report)


if __name__ == "__main__":
    sys.exit(main())
