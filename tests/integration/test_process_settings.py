"""Every process refuses a bad setting at start with a message naming the variable and no
traceback (issue 2: every setting typed and validated at start): the web process, a worker
pool, beat, Flower, the ``flask`` CLI and the run command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py"]
FLOWER = [sys.executable, "-m", "workers.flower"]
RUN_COMMAND = [sys.executable, "-m", "workers.supervisor"]
WORKER = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "default"]
BEAT = [sys.executable, "-m", "celery", "-A", "workers.app", "beat"]
FLASK_CLI = [sys.executable, "-m", "flask", "--app", "web", "tenants", "list"]
NAMES = {tuple(GUNICORN): "web", tuple(FLOWER): "flower", tuple(RUN_COMMAND): "run-command",
         tuple(WORKER): "worker", tuple(BEAT): "beat", tuple(FLASK_CLI): "flask-cli"}


def start(argv: list[str], tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """``argv`` from the repository root with only ``environ`` set (no service URLs: nothing
    it could reach if it did start)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SECRET_KEY": "process-settings",
           "VAR_DIR": str(tmp_path / "var"), "FLOWER_BASIC_AUTH": "operator:secret", **environ}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("argv", "variable", "value"), [
    (GUNICORN, "WEB_PORT", "70000"),
    (GUNICORN, "WEB_HOST", "127.0.0.1:8000"),
    (GUNICORN, "WEB_CONCURRENCY", "0"),
    (GUNICORN, "WEB_THREADS", "0"),
    (FLOWER, "FLOWER_PORT", "port"),
    (FLOWER, "FLOWER_ADDRESS", "http://0.0.0.0"),
    (RUN_COMMAND, "WEB_CONCURRENCY", "-1"),
    (RUN_COMMAND, "FLOWER_ADDRESS", "-x"),
    (RUN_COMMAND, "EMBEDDED_REDIS_PORT", "redis"),
    (RUN_COMMAND, "EMBEDDED_REDIS_PORT", "\u00b2"),  # a digit to str.isdigit, not to int()
    (WORKER, "DB_POOL_SIZE", "many"),
    (WORKER, "TASK_TIME_LIMIT", "-5"),
    (BEAT, "RELAY_INTERVAL_SECONDS", "soon"),
    (FLASK_CLI, "DB_POOL_SIZE", "0.5"),
], ids=lambda value: NAMES.get(tuple(value)) if isinstance(value, list) else None)
def test_a_bad_value_stops_the_process_with_a_message_naming_it(argv: list[str], variable: str, value: str,
                                                                tmp_path: Path) -> None:
    result = start(argv, tmp_path, **{variable: value})
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"invalid configuration: {variable}:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # The run command refused before starting anything: no embedded server was created.
    assert not (tmp_path / "var" / "pg").exists()


def test_the_web_process_binds_where_its_settings_say(tmp_path: Path) -> None:
    """``config/gunicorn.py`` takes host, port, workers and threads from the settings."""
    probe = ("import runpy, json; c = runpy.run_path('config/gunicorn.py'); "
             "print(json.dumps([c['bind'], c['workers'], c['threads'], c['worker_class']]))")
    result = start([sys.executable, "-c", probe], tmp_path, WEB_HOST="::1", WEB_PORT="8123",
                   WEB_CONCURRENCY="3", WEB_THREADS="4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '["[::1]:8123", 3, 4, "gthread"]'
