"""Fixtures of the end-to-end tests: the run command on a copied checkout, and a chaos stack."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from config.celery import POOLS
from config.settings import load_settings
from tests.support import chaos, processes, system
from tests.support.apps import web_app
from tests.support.services import REDIS_DB_E2E, Services, Stack, create_stack, drop_stack
from workers.embedded import free_port


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture
def run_command(tmp_path: Path) -> Iterator[system.RunCommand]:
    """Start ``bin/start`` on a fresh copy of the checkout with no service configured."""
    # Not under tmp_path: as root, pgserver runs PostgreSQL as the user ``pgserver``, which must
    # traverse the path, and every pytest session resets /tmp/pytest-of-<user> to mode 0700.
    root = Path(tempfile.mkdtemp(prefix="allotment-e2e-"))
    system.copy_worktree(root)
    web_port, flower_port, redis_port = _free_ports(3)
    env = system.clean_environment(
        WEB_PORT=str(web_port), FLOWER_PORT=str(flower_port), EMBEDDED_REDIS_PORT=str(redis_port),
        FLOWER_BASIC_AUTH="operator:e2e-flower-password")
    output = tmp_path / "bin-start.log"
    with output.open("wb") as sink:
        process = subprocess.Popen([str(root / "bin" / "start")], cwd=root, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    started = system.RunCommand(root, process, output, f"http://127.0.0.1:{web_port}",
                                f"http://127.0.0.1:{flower_port}", "operator:e2e-flower-password")
    yield started
    # The test stops the system itself; this only cleans up after a failure.
    if process.poll() is None:
        started.interrupt()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    system.kill_processes_under(root)
    print(f"--- bin/start output (last 200 lines of {output}) ---\n{started.output_tail()}")
    shutil.rmtree(root, ignore_errors=True)  # a whole virtual environment: do not keep it


@pytest.fixture
def chaos_stack(services: Services) -> Iterator[Stack]:
    """Management and trial databases and Redis dbs 4/5 of the reliability test's own."""
    stack = create_stack(services, redis_db=REDIS_DB_E2E)
    yield stack
    drop_stack(stack)


@pytest.fixture
def chaos_app(chaos_stack: Stack, tmp_path: Path) -> Iterator[Flask]:
    """The web app on the chaos stack, in the test process (it commits and publishes per request)."""
    settings = load_settings(chaos_stack.env(VAR_DIR=str(tmp_path / "var"), **chaos.SETTINGS))
    with web_app(settings, TESTING=False) as app:  # a failed request counts as its status code
        yield app


@pytest.fixture
def chaos_workers(chaos_stack: Stack, tmp_path: Path) -> Iterator[dict[str, processes.Process]]:
    """Real tenancy, notifications and default (relay) workers, and beat, on the chaos stack."""
    env = chaos_stack.env(VAR_DIR=str(tmp_path / "var"), **chaos.SETTINGS)
    logs = tmp_path / "logs"
    logs.mkdir()
    started: dict[str, processes.Process] = {}
    try:
        for name, queues, concurrency in (("tenancy", "tenancy", 2), ("notifications", "notifications", 2),
                                          ("default", ",".join(POOLS["default"]), 1)):
            started[name] = processes.celery_worker(name, queues, env, logs, concurrency)
        started["beat"] = processes.celery_beat(env, logs)
        yield started
    finally:
        processes.stop_all(started.values())
        # Shown when the test fails; pytest's temporary folders do not outlive many sessions.
        for process in started.values():
            print(f"--- {process.log_path}: warnings, errors and last lines ---\n{_log_digest(process)}")


def _log_digest(process: processes.Process, tail: int = 15, problems: int = 40) -> str:
    lines = process.log().splitlines()
    flagged = [line for line in lines if '"level": "WARNING"' in line or '"level": "ERROR"' in line
               or line.startswith("Traceback")]
    return "\n".join([*flagged[-problems:], "...", *lines[-tail:]])


@pytest.fixture
def ledger(chaos_stack: Stack) -> Iterator[chaos.Ledger]:
    """Counts straight from the chaos stack's databases."""
    opened = chaos.Ledger(chaos_stack)
    yield opened
    opened.close()
