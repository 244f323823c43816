"""What both benchmarks share: a throw-away stack (fresh databases, a private Redis, child
processes) that is torn down on exit, Ctrl-C or error; waiting; percentiles; targets."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import psutil
import redis

from config.settings import database_on
from domain.db import migrate
from workers import embedded

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


def port_open(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
