"""Enqueue benchmark: our signup submit endpoint against a bare Flask endpoint and the naive
submit endpoint (issue 2), served the same way, loaded by wrk at 8 and 64 connections.

    .venv/bin/python -m bench.enqueue [--duration 10] [--warmup 3] [--connections 8 64]

Each endpoint runs under gunicorn started with ``config/gunicorn.py`` (same workers and
worker class), on fresh databases and a private Redis that are removed afterwards. No
worker consumes: queued messages are flushed between runs. See bench/README.md.
"""
from __future__ import annotations

import argparse
import secrets
import sys

from sqlalchemy import create_engine

from bench.apps import NaiveBase
from bench.common import (
    WRK_REPORT,
    BenchError,
    Endpoint,
    Run,
    Stack,
    Target,
    add_load_options,
    ensure_wrk,
    final_line,
    http_call,
    measured_run,
    run_bench,
    run_wrk,
    start_server,
    table,
    targets_line,
    wait_listening,
)

# wrk script: unique bodies (thread id + counter + random, under a per-run prefix), the
# expected status counted per thread, and one machine-readable line from done().
WRK_SCRIPT = r"""
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1]
  expected = tonumber(args[2])
  math.randomseed(os.time() * 1000 + tid)
  ok, bad, last_bad = 0, 0, 0
end

function request()
  counter = counter + 1
  local name = string.format("%s-%d-%d-%d", prefix, tid, counter, math.random(0, 999999))
  local body = string.format(
    '{"organisation_name":"Org %s","slug":"%s","admin_name":"Ada Admin",' ..
    '"email":"%s@example.com","password":"correct horse battery staple"}', name, name, name)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
""" + WRK_REPORT

ENDPOINTS = (
    Endpoint("bare", "bench.apps:create_bare_app()", "/bare", 200),
    Endpoint("naive", "bench.apps:create_naive_app()", "/naive", 202),
    Endpoint("submit", "web:create_app()", "/api/v1/tenancy/signups", 202),
)


def probe(endpoint: Endpoint, port: int) -> None:
    """One request, to fail early and clearly if the endpoint does not answer as expected."""
    name = f"probe-{secrets.token_hex(4)}"
    status, text = http_call(f"http://127.0.0.1:{port}{endpoint.path}", body={
        "organisation_name": f"Org {name}", "slug": name, "admin_name": "Ada Admin",
        "email": f"{name}@example.com", "password": "correct horse battery staple"})
    if status != endpoint.status:
        raise BenchError(f"{endpoint.name} answered {status}, expected {endpoint.status}: {text[:500]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.enqueue", description=__doc__.split("\n")[0])
    add_load_options(parser, duration=10.0)
    parser.add_argument("--only", nargs="+", choices=[e.name for e in ENDPOINTS],
                        help="measure only these endpoints (no final line unless all three)")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, stack: Stack) -> list[Run]:
    """Start the three servers and run every (connections, endpoint) pair."""
    wrk = ensure_wrk()
    stack.start_redis()
    databases = stack.create_databases("naive")
    engine = create_engine(databases.extra["naive"])
    NaiveBase.metadata.create_all(engine)
    engine.dispose()
    # The sign-up limiter runs on every request, as in production, with a limit the load
    # never reaches (one client address and account per wrk run would be refused at once).
    env = stack.env(databases, NAIVE_DATABASE_URL=databases.extra["naive"], LOG_LEVEL=args.log_level,
                    RATE_LIMIT_SIGN_UP="1000000000 per minute")
    endpoints = [e for e in ENDPOINTS if not args.only or e.name in args.only]
    servers = {e.name: start_server(stack, e, env, args.web_workers) for e in endpoints}
    for endpoint in endpoints:
        child, port = servers[endpoint.name]
        wait_listening(child, port, endpoint.name)
        probe(endpoint, port)
    script = stack.tmp / "submit.lua"
    script.write_text(WRK_SCRIPT)
    for endpoint in endpoints:
        if args.warmup > 0:
            run_wrk(wrk, str(script), endpoint, servers[endpoint.name][1],
                    connections=args.connections[0], seconds=args.warmup, threads=args.threads)
        stack.flush_broker()
    runs = []
    for connections in args.connections:
        for endpoint in endpoints:
            child, port = servers[endpoint.name]
            runs.append(measured_run(wrk, str(script), endpoint, child, port, connections=connections,
                                     seconds=args.duration, threads=args.threads))
            stack.flush_broker()  # nobody consumes: keep the queues from growing run after run
    return runs


def report(runs: list[Run], headline: int) -> int:
    """Print the table, the targets and the final line; the exit status."""
    print(table(
        ["endpoint", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu ms/req", "requests",
         "wrong status", "socket errors"],
        [[r.endpoint, r.connections, f"{r.rps:.1f}", f"{r.p50_ms:.1f}", f"{r.p90_ms:.1f}",
          f"{r.p99_ms:.1f}", f"{r.max_ms:.1f}", f"{r.server_cpu_ms:.2f}", r.requests,
          f"{r.unexpected}" + (f" (last {r.last_unexpected})" if r.unexpected else ""),
          r.socket_errors] for r in runs]))
    failed = [r for r in runs if r.failed]
    for r in failed:
        print(f"ERROR: {r.endpoint} @ {r.connections}: {r.unexpected} wrong statuses and "
              f"{r.socket_errors} socket errors in {r.requests} requests", file=sys.stderr)
    at = {r.endpoint: r for r in runs if r.connections == headline}
    if set(at) == {e.name for e in ENDPOINTS}:
        submit, naive, bare = at["submit"], at["naive"], at["bare"]
        figures = {"submit_rps": submit.rps, "naive_rps": naive.rps, "bare_rps": bare.rps,
                   "ratio": submit.rps / bare.rps, "vs_naive": submit.rps / naive.rps,
                   "p99_ms": submit.p99_ms}
        print(f"(req/s and p99 at {headline} connections)")
        print(targets_line([Target("vs_naive", figures["vs_naive"], ">=", 1.0),
                            Target("ratio", figures["ratio"], ">=", 0.2),
                            Target("p99_ms", figures["p99_ms"], "<=", 20.0)]))
        print(final_line("enqueue", figures, {"ratio": 3, "vs_naive": 3}), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (targets met or not), 1 on errors."""
    args = parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack),
                     lambda runs: report(runs, args.connections[0]))


if __name__ == "__main__":
    sys.exit(main())
