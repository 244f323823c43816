"""Real worker, beat and web processes for integration and end-to-end tests."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tests.support.services import ROOT
from tests.support.system import http
from tests.support.waiting import wait_for
from workers.embedded import free_port


class Process:
    """A child process in its own session, so it and its children can be signalled together."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_offset = 0

    def start(self) -> Process:
        """Start (or restart) the process."""
        full_env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=full_env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self.popen is not None
        return self.popen.pid

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        """True while the main process lives."""
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and every child it started (a crashed machine, in effect)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL what is left after ``timeout``."""
        stop_all([self], timeout)

    def _terminate(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)


def stop_all(started: Iterable[Process], timeout: float = 20.0) -> None:
    """Stop processes together: SIGTERM to each, then wait for each, then SIGKILL what is left
    of each group after ``timeout``. A Celery worker's warm shutdown takes about two seconds
    (its pool's supervisor and the result handler poll), so a fixture's workers stop in the
    time of one instead of one after the other."""
    started = list(started)
    for process in started:
        process._terminate()
    deadline = time.monotonic() + timeout
    for process in started:
        if process.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(max(0.0, deadline - time.monotonic()))
        process.kill()


def celery_worker(name: str, queues: str, env: dict[str, str], log_dir: Path,
                  concurrency: int = 1) -> Process:
    """A ``celery worker`` process consuming ``queues``; started and ready on return."""
    node = f"{name}@{socket.gethostname()}"
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues,
            "-n", node, "-c", str(concurrency), "--without-gossip", "--without-mingle",
            "-l", "INFO"]
    process = Process(name, argv, env, log_dir).start()
    try:
        wait_until_ready(process, node)
    except BaseException:
        process.stop()
        raise
    return process


def wait_until_ready(process: Process, node: str, timeout: float = 60.0) -> None:
    """Wait for the worker's own "ready" line of this start (printed once it consumes)."""

    def ready() -> bool:
        if not process.running():
            raise AssertionError(f"{process.name} exited:\n{process.log()[-3000:]}")
        return f"{node} ready." in process.log_path.read_bytes()[process.log_offset:].decode(errors="replace")

    wait_for(ready, timeout=timeout, message=f"{node} to be ready")


def celery_beat(env: dict[str, str], log_dir: Path) -> Process:
    """A ``celery beat`` process with its schedule file in ``log_dir``."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO",
            "--schedule", str(log_dir / "celerybeat-schedule")]
    return Process("beat", argv, env, log_dir).start()


def gunicorn(name: str, env: dict[str, str], log_dir: Path, *, workers: int = 1,
             threads: int | None = None, timeout: float = 60.0) -> tuple[Process, str]:
    """``web:create_app()`` under gunicorn as the ``web`` process serves it (config/gunicorn.py),
    on a free port of 127.0.0.1; started and answering ``/healthz`` on return, with its base URL."""
    port = free_port()
    env = {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    if threads is not None:
        env["WEB_THREADS"] = str(threads)
    argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "web:create_app()"]
    process, url = Process(name, argv, env, log_dir).start(), f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not process.running():
            raise AssertionError(f"{name} (gunicorn) exited:\n{process.log()[-3000:]}")
        return http(f"{url}/healthz", timeout=2).status == 200

    try:
        wait_for(up, timeout=timeout, message=f"{name} (gunicorn) to answer /healthz")
    except BaseException:
        process.stop()
        raise
    return process, url
