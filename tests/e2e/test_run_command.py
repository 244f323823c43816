"""The README's first command on a clean machine: install, start everything, serve a signup, stop cleanly."""
from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import pytest

from config.celery import POOLS
from tests.support import refs, system
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

# bin/install builds a fresh virtual environment first (about a minute with pip's cache).
START_DEADLINE = 300.0


@dataclass
class Readiness:
    """What answers so far; truthy once the web app and every pool in Flower do."""

    healthz: int = 0
    readyz: int = 0
    pools_missing: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.healthz == 200 and self.readyz == 200 and not self.pools_missing


def _pools_missing(started: system.RunCommand) -> list[str]:
    """Pools Flower does not list as a worker consuming exactly the pool's queues."""
    reply = system.http(f"{started.flower}/api/workers?refresh=1", auth=started.flower_auth)
    workers = reply.json() if reply.status == 200 else {}
    host = socket.gethostname()
    return [pool for pool, queues in POOLS.items()
            if {q["name"] for q in (workers.get(f"{pool}@{host}") or {}).get("active_queues") or ()}
            != set(queues)]


def _readiness(started: system.RunCommand) -> Readiness:
    if started.process.poll() is not None:
        raise AssertionError(f"bin/start exited with {started.process.returncode}:\n{started.output_tail()}")
    state = Readiness(system.http(f"{started.web}/healthz").status,
                      system.http(f"{started.web}/readyz").status)
    state.pools_missing = _pools_missing(started) if state.readyz == 200 else list(POOLS)
    return state


def _sign_up(started: system.RunCommand) -> dict[str, Any]:
    """Submit one signup over HTTP and follow its status URL until it completes."""
    reply = system.http(f"{started.web}/api/v1/tenancy/signups", method="POST", body=refs.signup_body())
    assert reply.status == 202, reply.body
    status_url = urljoin(started.web, reply.json()["status_url"])
    return wait_for(lambda: (s := system.http(status_url).json())["complete"] and s,
                    timeout=120, interval=0.5, message="the signup to complete")


def test_bin_start_runs_everything_and_ctrl_c_stops_everything(run_command: system.RunCommand) -> None:
    wait_for(lambda: _readiness(run_command), timeout=START_DEADLINE, interval=1.0,
             message="the web app and every pool in Flower")
    assert system.http(f"{run_command.flower}/api/workers").status == 401  # no credentials

    status = _sign_up(run_command)
    assert status["status"] == "provisioned"
    assert all(step["done"] for step in status["steps"]), status

    run_command.interrupt()
    try:
        run_command.process.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail("bin/start did not exit within 90 s of Ctrl-C")
    try:
        wait_for(lambda: not system.processes_under(run_command.root), timeout=30,
                 message="every process of the run command to exit")
    except AssertionError:
        pytest.fail("left behind:\n" + system.describe(system.processes_under(run_command.root)))
