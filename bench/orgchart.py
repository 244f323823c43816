"""Benchmark: "everyone under the CEO" on a 10,000-employee tree, through the employment
module's query against the same recursive SQL run directly, in one run.

One PostgreSQL server (``--postgres``), fresh databases:

1. A trial tenant with ``--people`` employees (default 10,000) in the trial database and
   their ``reports_to`` edges in the relation graph (management database): a tree under
   one CEO where each manager has 3 to 10 reports (about six levels).
2. Ours: ``domain.employment.reporting.everyone_under`` as a request runs it: a tenant
   session (the RLS role and tenant set on the trial database) and a graph session from
   the data provider, the check that the CEO is the tenant's employee, then the graph's
   recursive query, its rows turned into ``Under`` tuples.
3. Baseline: ``domain.graph.queries.SUBORDINATES_SQL`` (the very statement the module
   runs) on one open psycopg connection to the management database, ``fetchall()``.

Both run ``--rounds`` times (default 60) after ``--warmup`` rounds, alternating, and must
return the same 9,999 people. Final line: ``orgchart: module_ms=.. raw_ms=.. ratio=..``
(medians); target ``ratio <= 1.5``.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass

import psycopg

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
from config.settings import load_settings
from domain.bootstrap import build_provider
from domain.db.provider import MANAGEMENT, TRIAL, DataProvider
from domain.employment import reporting
from domain.graph.queries import MAX_DEPTH, REPORTS_TO, SUBORDINATES_SQL
from domain.tenancy.copying import connect, libpq_dsn

# The module's statement, in psycopg's parameter style.
RAW_SQL = re.sub(r":(\w+)", r"%(\1)s", SUBORDINATES_SQL)


@dataclass(frozen=True)
class Figures:
    """What one run measured (milliseconds per answer)."""

    people: int
    depth: int
    module_ms: list[float]
    raw_ms: list[float]


def seed(provider: DataProvider, tenant_id: uuid.UUID, people: int) -> tuple[uuid.UUID, int]:
    """Write the employees (trial database) and their edges (management database) with COPY;
    the CEO's id and the tree's depth."""
    rng = random.Random(7)
    ids = [uuid.uuid4() for _ in range(people)]
    manager: dict[int, int] = {}
    waiting, placed = deque([0]), 1
    while placed < people:
        boss = waiting.popleft()
        for _ in range(rng.randint(3, 10)):
            if placed == people:
                break
            manager[placed] = boss
            waiting.append(placed)
            placed += 1
    with connect(provider.url_of(TRIAL)) as conn:
        columns = "id, tenant_id, name, work_email, status"
        with conn.cursor().copy(f"COPY employees ({columns}) FROM STDIN") as copy:
            for i, person in enumerate(ids):
                copy.write_row((person, tenant_id, f"Person {i:05d}", f"person-{i}@example.com", "active"))
        conn.commit()
    with connect(provider.url_of(MANAGEMENT)) as conn:
        columns = "tenant_id, relation, from_id, to_id"
        with conn.cursor().copy(f"COPY relation_edges ({columns}) FROM STDIN") as copy:
            for child, boss in manager.items():
                copy.write_row((tenant_id, REPORTS_TO, ids[child], ids[boss]))
        conn.commit()  # not analysed: the walk is planned the same either way (graph/queries.py)
    depth = {0: 0}
    for child in range(1, people):
        depth[child] = depth[manager[child]] + 1
    return ids[0], max(depth.values())


def module_once(provider: DataProvider, tenant_id: uuid.UUID, ceo: uuid.UUID) -> tuple[float, int]:
    """One answer through the module, sessions opened as a request opens them."""
    started = time.perf_counter()
    with provider.tenant(tenant_id) as db, provider.management() as graph_db:
        under = reporting.everyone_under(db, graph_db, tenant_id, ceo)
    return (time.perf_counter() - started) * 1000, len(under)


def raw_once(conn: psycopg.Connection, tenant_id: uuid.UUID, ceo: uuid.UUID) -> tuple[float, int]:
    """One answer from the same SQL on an open connection."""
    params = {"tenant": tenant_id, "relation": REPORTS_TO, "root": ceo, "max_depth": MAX_DEPTH}
    started = time.perf_counter()
    rows = conn.execute(RAW_SQL, params).fetchall()
    conn.commit()
    return (time.perf_counter() - started) * 1000, len(rows)


def measure(args: argparse.Namespace, stack: Stack) -> Figures:
    """Seed the tree, then time both sides, alternating."""
    stack.start_redis()
    databases = stack.create_databases()
    settings = load_settings(stack.env(databases))
    provider = build_provider(settings)
    stack.on_close(provider.dispose)
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench org chart")
        session.commit()
    print(f"seeding {args.people} employees and their reporting lines ...", file=sys.stderr, flush=True)
    ceo, depth = seed(provider, tenant_id, args.people)
    module_ms: list[float] = []
    raw_ms: list[float] = []
    with psycopg.connect(libpq_dsn(provider.url_of(MANAGEMENT))) as conn:
        for round_ in range(args.warmup + args.rounds):
            ours, found = module_once(provider, tenant_id, ceo)
            theirs, raw_found = raw_once(conn, tenant_id, ceo)
            if found != args.people - 1 or raw_found != args.people - 1:
                raise BenchError(f"expected {args.people - 1} people under the CEO, got {found} "
                                 f"(module) and {raw_found} (raw SQL)")
            if round_ >= args.warmup:
                module_ms.append(ours)
                raw_ms.append(theirs)
    return Figures(args.people, depth, module_ms, raw_ms)


def report(figures: Figures) -> int:
    """Print the table, the targets and the final line."""
    module, raw = statistics.median(figures.module_ms), statistics.median(figures.raw_ms)
    ratio = module / raw
    print(table(["path", "people", "median ms", "min ms", "max ms"], [
        ["raw recursive SQL (psycopg)", figures.people - 1, f"{raw:.2f}", f"{min(figures.raw_ms):.2f}",
         f"{max(figures.raw_ms):.2f}"],
        ["employment.reporting.everyone_under", figures.people - 1, f"{module:.2f}",
         f"{min(figures.module_ms):.2f}", f"{max(figures.module_ms):.2f}"],
    ]))
    print(f"\n{figures.people} employees, {figures.depth} levels below the CEO, "
          f"{len(figures.raw_ms)} rounds each")
    print(targets_line([Target("ratio", ratio, "<=", 1.5)]))
    print(final_line("orgchart", {"module_ms": module, "raw_ms": raw, "ratio": ratio},
                     {"module_ms": 2, "raw_ms": 2, "ratio": 3}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (target met or not), 1 on errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a server to create databases on")
    parser.add_argument("--people", type=int, default=10_000, help="employees in the tree (10,000)")
    parser.add_argument("--rounds", type=int, default=60, help="timed answers of each side (60)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed answers of each side first (5)")
    args = parser.parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack), report)


if __name__ == "__main__":
    sys.exit(main())
