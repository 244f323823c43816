"""Benchmark: rows per second of a live promotion (copy and verify) against a plain COPY.

One run, one PostgreSQL server (``--postgres``), fresh databases:

1. A trial tenant with ``--rows`` notices (default 100,000) in the trial database.
2. Baseline: the tenant's rows streamed with a plain binary ``COPY ... TO STDOUT`` /
   ``COPY ... FROM STDIN`` from the trial database into the very database the promotion
   will use (created and migrated here), then emptied again.
3. Our path: ``domain.tenancy.promotion.run`` on the same tenant, in this process, while a
   client writes a notice to the tenant every 10 ms through the data provider. Rows per
   second are the tenant's rows over the time from the start of the copy (the ``migrated``
   step done) to the end of the verification (``verified`` done): snapshot, counts, COPY,
   checksums on both sides.

Final line: ``promote: rows_per_s=.. copy_rows_per_s=.. ratio=.. write_stall_max_ms=..``;
target ``ratio >= 0.4``. ``write_stall_max_ms`` is the longest a client write waited.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from psycopg import sql

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
)
from config.settings import database_name, database_on, load_settings
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import TRIAL, DataProvider, TenantMoved
from domain.notifications.models import Notice
from domain.tenancy import copying, promotion
from domain.tenancy.tables import tenant_tables


@dataclass(frozen=True)
class Figures:
    """What one run measured."""

    rows: int
    copy_seconds: float
    promote_seconds: float  # copy and verify
    total_seconds: float    # the whole promotion, purge and grace included
    write_stall_max_ms: float
    writes: int
    held_ms: int


class Writer(threading.Thread):
    """A client writing one notice every 10 ms; keeps the longest wait of a write."""

    def __init__(self, provider: DataProvider, tenant_id: uuid.UUID) -> None:
        super().__init__(daemon=True)
        self.provider, self.tenant_id = provider, tenant_id
        self.halt = threading.Event()
        self.longest = 0.0
        self.writes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        """Write until halted."""
        try:
            while not self.halt.is_set():
                started = time.monotonic()
                while True:
                    try:
                        with self.provider.tenant(self.tenant_id) as session:
                            session.add(Notice(user_id=uuid.uuid4(), event_id=uuid.uuid4(),
                                               category="bench", title="a write during promotion"))
                            session.commit()
                        break
                    except TenantMoved:
                        time.sleep(0.01)
                self.longest = max(self.longest, time.monotonic() - started)
                self.writes += 1
                self.halt.wait(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the benchmark
            self.error = exc


def seed(provider: DataProvider, tenant_id: uuid.UUID, rows: int) -> None:
    """``rows`` notices of the tenant in the trial database, by COPY."""
    with copying.connect(provider.url_of(TRIAL)) as conn:
        with conn.cursor().copy("COPY notices (id, tenant_id, user_id, event_id, category, title, body) "
                                "FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row((uuid.uuid4(), tenant_id, uuid.uuid4(), uuid.uuid4(), "seed",
                                f"seeded notice {i}", "body of a seeded notice " * (1 + i % 4)))
        conn.commit()


def plain_copy(provider: DataProvider, target_url: str, tenant_id: uuid.UUID) -> float:
    """Seconds to COPY the tenant's rows from the trial database into ``target_url``."""
    with provider.engine(target_url).connect() as conn:
        tables = tenant_tables(conn)
    with copying.connect(provider.url_of(TRIAL)) as source, copying.connect(target_url) as target:
        started = time.perf_counter()
        for t in tables:
            copying.copy_table(source, target, t, tenant_id)
        target.commit()
        elapsed = time.perf_counter() - started
        # Emptied by TRUNCATE, not DELETE: the promotion then meets the same fresh tables and
        # indexes the baseline met, not 100,000 dead rows.
        names = sql.SQL(", ").join(sql.Identifier(t.name) for t in tables)
        target.execute(sql.SQL("TRUNCATE {}").format(names))
        target.commit()
    return elapsed


def measure(args: argparse.Namespace, stack: Stack) -> Figures:
    """Seed, copy plainly, promote under writes."""
    stack.start_redis()
    databases = stack.create_databases()
    settings = load_settings(stack.env(databases, ROUTING_CACHE_TTL="1", PROMOTION_PURGE_GRACE_SECONDS="1"))
    provider = build_provider(settings)
    stack.on_close(provider.dispose)
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench promotion")
        session.commit()
    print(f"seeding {args.rows} rows ...", file=sys.stderr, flush=True)
    seed(provider, tenant_id, args.rows)

    # The promotion's database, made here first so the baseline copies between the same two.
    server = settings.placement_servers[0]
    name = f"{database_name(settings.database_url).split('?')[0][:24]}_t_{tenant_id.hex}"
    target_url = database_on(server, name)
    stack.on_close(migrate.drop_database, target_url)
    migrate.ensure_database(target_url)
    migrate.upgrade("tenant", target_url, settings.tenant_db_role)
    copy_seconds = plain_copy(provider, target_url, tenant_id)
    print(f"  plain COPY: {args.rows / copy_seconds:.0f} rows/s", file=sys.stderr, flush=True)

    marks: dict[str, float] = {}

    def note(progress: promotion.Progress) -> None:
        marks.setdefault(progress.step, time.perf_counter())

    with provider.management() as session:
        promotion_id = promotion.request_promotion(session, tenant_id, reason="operator")
        session.commit()
    writer = Writer(provider, tenant_id)
    writer.start()
    time.sleep(0.5)  # the client writes before the promotion starts, as in real life
    started = time.perf_counter()
    result = promotion.run(provider, promotion_id, report=note)
    total = time.perf_counter() - started
    time.sleep(0.2)  # and after it: a few writes on the new route
    writer.halt.set()
    writer.join(30)
    if writer.error is not None:
        raise BenchError(f"a write failed during the promotion: {writer.error!r}")
    if result.progress.status != "completed":
        raise BenchError(f"the promotion did not complete: {result.progress.error}")
    if result.progress.database != name:
        raise BenchError(f"the promotion used {result.progress.database}, not {name}")
    print(f"  promotion:  {args.rows / (marks['verified'] - marks['migrated']):.0f} rows/s",
          file=sys.stderr, flush=True)
    return Figures(args.rows, copy_seconds, marks["verified"] - marks["migrated"], total,
                   writer.longest * 1000, writer.writes, result.progress.write_stall_ms or 0)


def report(figures: Figures) -> int:
    """Print the table, the targets and the final line."""
    rows_per_s = figures.rows / figures.promote_seconds
    copy_rows_per_s = figures.rows / figures.copy_seconds
    ratio = rows_per_s / copy_rows_per_s
    print(table(["path", "rows", "seconds", "rows/s"], [
        ["plain COPY trial -> dedicated", figures.rows, f"{figures.copy_seconds:.2f}",
         f"{copy_rows_per_s:.0f}"],
        ["promotion copy + verify", figures.rows, f"{figures.promote_seconds:.2f}", f"{rows_per_s:.0f}"],
    ]))
    print(f"\nwhole promotion {figures.total_seconds:.2f} s (create, migrate, copy, verify, switch, "
          f"1 s purge grace, purge); writes held {figures.held_ms} ms; {figures.writes} client writes, "
          f"the longest waited {figures.write_stall_max_ms:.0f} ms")
    print(targets_line([Target("ratio", ratio, ">=", 0.4)]))
    print(final_line("promote", {"rows_per_s": rows_per_s, "copy_rows_per_s": copy_rows_per_s,
                                 "ratio": ratio, "write_stall_max_ms": figures.write_stall_max_ms},
                     {"rows_per_s": 0, "copy_rows_per_s": 0, "ratio": 3, "write_stall_max_ms": 0}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (target met or not), 1 on errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a server to create databases on")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the promoted tenant")
    args = parser.parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack), report)


if __name__ == "__main__":
    sys.exit(main())
