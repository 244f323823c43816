"""Enqueue benchmark: our signup submit endpoint against a bare Flask endpoint and the naive
submit endpoint (issue 2), served the same way, loaded by wrk at 8 and 64 connections.

    .venv/bin/python -m bench.enqueue [--duration 10] [--warmup 3] [--connections 8 64]

Each endpoint runs under gunicorn started with ``config/gunicorn.py`` (same workers and
worker class), on fresh databases and a private Redis that are removed afterwards. No
worker consumes: queued messages are flushed between runs. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, replace

from sqlalchemy import create_engine

from bench.apps import NaiveBase
from bench.common import (
    DEFAULT_POSTGRES,
    BenchError,
    Child,
    Stack,
    Target,
    cpu_seconds,
    final_line,
    port_open,
    table,
    targets_line,
    wait_for,
)
from workers import embedded

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

function response(status, headers, body)
  if status == expected then ok = ok + 1 else bad = bad + 1; last_bad = status end
end

function done(summary, latency, requests)
  local ok_all, bad_all, last = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_all = ok_all + thread:get("ok")
    bad_all = bad_all + thread:get("bad")
    if thread:get("last_bad") ~= 0 then last = thread:get("last_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "ok=%d bad=%d last_bad=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, ok_all, bad_all, last, e.connect, e.read, e.write,
    e.timeout))
end
"""


@dataclass(frozen=True)
class Endpoint:
    """One endpoint under test: its gunicorn app, URL path and the status it must answer."""

    name: str
    app: str
    path: str
    status: int


ENDPOINTS = (
    Endpoint("bare", "bench.apps:create_bare_app()", "/bare", 200),
    Endpoint("naive", "bench.apps:create_naive_app()", "/naive", 202),
    Endpoint("submit", "web:create_app()", "/api/v1/tenancy/signups", 202),
)
# Non-expected answers and socket errors tolerated before the run counts as failed.
MAX_ERROR_FRACTION = 0.001


@dataclass(frozen=True)
class Run:
    """What wrk measured for one endpoint at one connection count."""

    endpoint: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    unexpected: int
    last_unexpected: int
    socket_errors: int
    server_cpu_ms: float = float("nan")  # CPU of the gunicorn master and workers per request

    @property
    def rps(self) -> float:
        """Requests per second over the run."""
        return self.requests / self.seconds

    @property
    def failed(self) -> bool:
        """True when more than a tiny fraction of answers were wrong or lost."""
        return (self.unexpected + self.socket_errors) > MAX_ERROR_FRACTION * max(self.requests, 1)


def ensure_wrk() -> str:
    """The wrk binary; installed from the Debian package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing the Debian package", file=sys.stderr)
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is not installed and could not be installed (apt-get install wrk)")
    return found


def start_server(stack: Stack, endpoint: Endpoint, env: dict[str, str], workers: int) -> tuple[Child, int]:
    """Serve ``endpoint`` with gunicorn exactly as the web process is served (config/gunicorn.py)."""
    port = embedded.free_port()
    server_env = {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port),
                  "WEB_CONCURRENCY": str(workers), "WEB_THREADS": "1"}
    argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", endpoint.app]
    return stack.spawn(f"gunicorn-{endpoint.name}", argv, server_env), port


def probe(endpoint: Endpoint, port: int) -> None:
    """One request, to fail early and clearly if the endpoint does not answer as expected."""
    name = f"probe-{secrets.token_hex(4)}"
    body = json.dumps({"organisation_name": f"Org {name}", "slug": name, "admin_name": "Ada Admin",
                       "email": f"{name}@example.com", "password": "correct horse battery staple"})
    req = urllib.request.Request(f"http://127.0.0.1:{port}{endpoint.path}", data=body.encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - our local server
            status, text = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    if status != endpoint.status:
        raise BenchError(f"{endpoint.name} answered {status}, expected {endpoint.status}: {text[:500]}")


def run_wrk(wrk: str, script: str, endpoint: Endpoint, port: int, *, connections: int,
            seconds: float, threads: int) -> Run:
    """Load ``endpoint`` for ``seconds`` with wrk and parse the script's BENCH line."""
    argv = [wrk, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
            "--latency", "-s", script, f"http://127.0.0.1:{port}{endpoint.path}",
            "--", f"w{secrets.token_hex(3)}", str(endpoint.status)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in line.split()[1:])}
    return Run(endpoint.name, connections, v["requests"], v["duration_us"] / 1e6,
               v["p50_us"] / 1e3, v["p90_us"] / 1e3, v["p99_us"] / 1e3, v["max_us"] / 1e3,
               v["bad"], v["last_bad"], v["connect"] + v["read"] + v["write"] + v["timeout"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.enqueue", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint (3)")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64],
                        help="connection counts; the first is the headline (8 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers per endpoint (2)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="PostgreSQL server URL; fresh databases are created on it and dropped")
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of our app (WARNING)")
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
        wait_for(lambda port=port: port_open(port), timeout=60, what=f"{endpoint.name} to listen",
                 watch=[child])
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
            cpu_before = cpu_seconds(child.popen.pid)
            run = run_wrk(wrk, str(script), endpoint, port, connections=connections,
                          seconds=args.duration, threads=args.threads)
            cpu_ms = (cpu_seconds(child.popen.pid) - cpu_before) * 1000 / max(run.requests, 1)
            runs.append(replace(run, server_cpu_ms=cpu_ms))
            print(f"  {endpoint.name:>6} @ {connections:>3} connections: {runs[-1].rps:8.1f} req/s",
                  file=sys.stderr, flush=True)
            child.check()
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
    try:
        with Stack(args.postgres) as stack:
            try:
                runs = measure(args, stack)
            except BenchError as exc:
                stack.report_logs()
                print(f"ERROR: {exc}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("interrupted: everything the benchmark started is stopped and removed", file=sys.stderr)
        return 130
    return report(runs, args.connections[0])


if __name__ == "__main__":
    sys.exit(main())
