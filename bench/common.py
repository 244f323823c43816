"""What the benchmarks share: a throw-away stack (fresh databases, a private Redis, child
processes) that is torn down on exit, Ctrl-C or error; gunicorn under wrk; waiting;
percentiles; targets; the ``main`` around a measurement."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import psutil
import redis
from sqlalchemy.orm import Session

from config.settings import database_on
from domain.db import migrate
from domain.tenancy.models import Tenant
from workers import embedded
from workers.embedded import port_open

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANT_ROLE = "allotment_tenant"
T = TypeVar("T")


class BenchError(Exception):
    """The benchmark could not measure (a process died, a deadline passed, bad responses)."""


@dataclass
class Child:
    """A child process in its own session, so it and its children are stopped together."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        """True while the main process runs."""
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of what the process wrote."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def check(self) -> None:
        """Raise BenchError if the process has exited."""
        if not self.alive():
            raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout)
                # The leader is gone; children of the group may linger: the SIGKILL round gets them.
            except subprocess.TimeoutExpired:
                continue


@dataclass(frozen=True)
class Databases:
    """The fresh databases of one run."""

    management: str
    trial: str
    extra: dict[str, str]


class Stack:
    """Everything one benchmark run starts, torn down in reverse order by ``close``."""

    def __init__(self, postgres_url: str) -> None:
        self.postgres_url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.tmp = Path(tempfile.mkdtemp(prefix="allotment-bench-"))
        self.children: list[Child] = []
        self._exit = ExitStack()
        self._exit.callback(shutil.rmtree, self.tmp, True)
        self.redis: embedded.EmbeddedRedis | None = None

    def __enter__(self) -> Stack:
        signal.signal(signal.SIGTERM, _interrupt)  # `kill <bench>` cleans up like Ctrl-C
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every child, drop the databases, stop Redis, remove the temporary directory."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        try:
            self._exit.close()
        finally:
            signal.signal(signal.SIGINT, previous)

    def start_redis(self) -> embedded.EmbeddedRedis:
        """A private redis-server on a free port: nobody else's broker is disturbed."""
        server = embedded.start_redis(self.tmp / "redis", embedded.free_port())
        self._exit.callback(server.stop)
        self.redis = server
        return server

    def create_databases(self, *extra: str) -> Databases:
        """Fresh management and trial databases migrated to head, plus empty ``extra`` ones."""
        name = f"allot_bench_{secrets.token_hex(4)}"
        urls = [database_on(self.postgres_url, name), database_on(self.postgres_url, f"{name}_trial")]
        urls += [database_on(self.postgres_url, f"{name}_{suffix}") for suffix in extra]
        for url in urls:
            # Registered before creation: a failure half-way still drops what exists.
            self._exit.callback(migrate.drop_database, url)
        migrate.prepare(urls[0], urls[1], TENANT_ROLE)
        for url in urls[2:]:
            migrate.ensure_database(url)
        return Databases(urls[0], urls[1], dict(zip(extra, urls[2:], strict=True)))

    def env(self, databases: Databases, **extra: str) -> dict[str, str]:
        """Environment variables that point our processes at this stack."""
        assert self.redis is not None, "start_redis first"
        return {
            "ENV": "test", "SECRET_KEY": secrets.token_urlsafe(32), "VAR_DIR": str(self.tmp / "var"),
            "DATABASE_URL": databases.management, "TRIAL_DATABASE_URL": databases.trial,
            "BROKER_URL": self.redis.url(0), "RESULT_BACKEND": self.redis.url(1),
            "COOKIE_SECURE": "false", **extra,
        }

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Child:
        """Start ``argv`` from the repository root in its own session, output to a log file."""
        log_path = self.tmp / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(list(argv), cwd=ROOT, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        child = Child(name, popen, log_path)
        self.children.append(child)
        self._exit.callback(child.stop)
        return child

    def on_close(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` when the stack closes (before what was registered earlier)."""
        self._exit.callback(fn, *args)

    def flush_broker(self) -> None:
        """Empty the broker and result databases (queued messages, results, counters)."""
        assert self.redis is not None
        for db in (0, 1):
            client = redis.Redis.from_url(self.redis.url(db))
            client.flushdb()
            client.close()

    def report_logs(self) -> None:
        """Print the tail of every child's log to stderr (after a failure)."""
        for child in self.children:
            print(f"--- {child.name} ({child.log_path.name}) ---\n{child.log_tail()}", file=sys.stderr)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def wait_for(condition: Callable[[], T | None], *, timeout: float, what: str,
             interval: float = 0.02, watch: Sequence[Child] = ()) -> T:
    """Poll ``condition`` until it returns a truthy value; BenchError after ``timeout`` seconds."""
    until = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for child in watch:
            child.check()
        if time.monotonic() > until:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and every descendant, reaped ones included."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue  # exited meanwhile: its time is now in its parent's children_* fields
        total += times.user + times.system + times.children_user + times.children_system
    return total


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Target:
    """A goal a figure is held to: ``name op threshold``."""

    name: str
    value: float
    op: str  # ">=" or "<="
    threshold: float

    @property
    def met(self) -> bool:
        """True when the figure reaches the goal."""
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def __str__(self) -> str:
        verdict = "met" if self.met else "not met"
        return f"{self.name} {self.op} {self.threshold:g} ({verdict}: {self.value:.3g})"


def targets_line(targets: Sequence[Target]) -> str:
    """One line naming every target and whether it is met."""
    return "targets: " + ", ".join(str(t) for t in targets)


def final_line(name: str, figures: dict[str, float], digits: dict[str, int]) -> str:
    """The machine-readable last line: ``name: key=value ...``."""
    return f"{name}: " + " ".join(f"{k}={v:.{digits.get(k, 1)}f}" for k, v in figures.items())


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with right-aligned columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_trial_tenant(session: Session, name: str) -> tuple[uuid.UUID, str]:
    """Add a trial tenant named ``name`` with a fresh slug (flushed, not committed); id and slug."""
    tenant_id = uuid.uuid4()
    slug = f"bench-{tenant_id.hex[:12]}"
    session.add(Tenant(id=tenant_id, slug=slug, name=name, status="trial", plan="trial"))
    session.flush()
    return tenant_id, slug


def run_bench(postgres: str, measure: Callable[[Stack], T], report: Callable[[T], int]) -> int:
    """``measure`` on a fresh stack, torn down before ``report`` prints; the exit status.

    0 or what ``report`` says when it measured, 1 when it could not (the children's logs go
    to stderr), 130 on Ctrl-C or SIGTERM.
    """
    try:
        with Stack(postgres) as stack:
            try:
                figures = measure(stack)
            except BenchError as exc:
                stack.report_logs()
                print(f"ERROR: {exc}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("interrupted: everything the benchmark started is stopped and removed", file=sys.stderr)
        return 130
    return report(figures)


# --- gunicorn under wrk (bench.enqueue, bench.auth) ------------------------------------------

# The end of every wrk script: the expected status (``args[2]``, set by ``init``) counted per
# thread, and one machine-readable BENCH line from done(). The script declares ``local
# threads = {}`` and fills it in setup().
WRK_REPORT = r"""
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
# Non-expected answers and socket errors tolerated before a run counts as failed.
MAX_ERROR_FRACTION = 0.001


@dataclass(frozen=True)
class Endpoint:
    """One endpoint under test: its gunicorn app, URL path and the status it must answer."""

    name: str
    app: str
    path: str
    status: int


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


def add_load_options(parser: argparse.ArgumentParser, *, duration: float) -> None:
    """The options of a wrk benchmark: run lengths, connections, threads, server, database."""
    parser.add_argument("--duration", type=float, default=duration,
                        help=f"seconds per measured run ({duration:g})")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint (3)")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64],
                        help="connection counts; the first is the headline (8 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--web-workers", type=int, default=None,
                        help="gunicorn workers per server (as the web process: WEB_CONCURRENCY or CPUs + 1)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="PostgreSQL server URL; fresh databases are created on it and dropped")
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of our app (WARNING)")


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


def start_server(stack: Stack, endpoint: Endpoint, env: dict[str, str],
                 workers: int | None) -> tuple[Child, int]:
    """Serve ``endpoint`` with gunicorn exactly as the web process is served (config/gunicorn.py);
    ``workers`` None: the web process's default (WEB_CONCURRENCY unset: one more than the CPUs)."""
    port = embedded.free_port()
    server_env = {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port), "WEB_THREADS": "1"}
    if workers is not None:
        server_env["WEB_CONCURRENCY"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", endpoint.app]
    return stack.spawn(f"gunicorn-{endpoint.name}", argv, server_env), port


def wait_listening(server: Child, port: int, what: str) -> None:
    """Wait until ``server`` accepts connections on ``port`` (BenchError if it dies first)."""
    wait_for(lambda: port_open(port), timeout=60, what=f"{what} to listen", watch=[server])


def http_call(url: str, *, body: dict[str, str] | None = None, token: str | None = None) -> tuple[int, str]:
    """A JSON request to our local server (POST with ``body``, GET without); status and text."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers,  # noqa: S310 - our local server
                                     method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our local server
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


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


def measured_run(wrk: str, script: str, endpoint: Endpoint, server: Child, port: int, *,
                 connections: int, seconds: float, threads: int) -> Run:
    """``run_wrk`` with the server's CPU per request; prints progress, fails if the server died."""
    cpu_before = cpu_seconds(server.popen.pid)
    run = run_wrk(wrk, script, endpoint, port, connections=connections, seconds=seconds, threads=threads)
    cpu_ms = (cpu_seconds(server.popen.pid) - cpu_before) * 1000 / max(run.requests, 1)
    print(f"  {endpoint.name:>6} @ {connections:>3} connections: {run.rps:8.1f} req/s",
          file=sys.stderr, flush=True)
    server.check()
    return replace(run, server_cpu_ms=cpu_ms)
