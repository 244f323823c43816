"""The architecture holds: import rules, task routes, pools, Procfile <-> docker-compose, Flower auth."""
from __future__ import annotations

import ast
import importlib
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from celery import Celery

from config.celery import BEAT_JOBS, POOLS, QUEUES, route_task
from config.settings import Settings
from domain.messaging import bus
from tests.support.services import ROOT

CORE_ENV = {"ENV", "SECRET_KEY", "DATABASE_URL", "TRIAL_DATABASE_URL", "PLACEMENT_SERVERS",
            "BROKER_URL", "RESULT_BACKEND", "LOG_LEVEL", "VAR_DIR"}
# Variables read by processes rather than by Settings (gunicorn, Flower).
PROCESS_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FLOWER_BASIC_AUTH"}
FRAMEWORKS = {"flask", "flask_wtf", "flask_jwt_extended", "werkzeug", "jinja2", "wtforms", "celery", "kombu"}


@pytest.fixture(scope="module")
def celery_app() -> Celery:
    """The worker's Celery app with every task module imported (as a worker does at start)."""
    # Importing workers.app builds settings from the environment; give it inert ones so
    # the import neither reaches a server nor writes a development key.
    inert = {"SECRET_KEY": "architecture-check", "DATABASE_URL": "postgresql://arch@127.0.0.1:1/none",
             "BROKER_URL": "redis://127.0.0.1:1/0"}
    with mock.patch.dict(os.environ, inert):
        app: Celery = importlib.import_module("workers.app").app
    app.loader.import_default_modules()
    return app


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    """Procfile process name -> command."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = [line.partition(":") for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return {name.strip(): command.strip() for name, _, command in entries}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml's services."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]  # type: ignore[no-any-return]


def queues_of(command: str) -> list[str]:
    """The queues a ``celery worker -Q a,b`` command consumes (none for other commands)."""
    argv = shlex.split(command)
    return argv[argv.index("-Q") + 1].split(",") if "-Q" in argv else []


def env_names(service: dict[str, Any]) -> list[str]:
    """The environment variable names a compose service passes through."""
    environment = service.get("environment") or []
    if isinstance(environment, dict):
        return list(environment)
    return [str(entry).partition("=")[0] for entry in environment]


def test_import_contracts_are_kept() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_domain_imports_neither_flask_nor_celery() -> None:
    offenders = []
    for path in (ROOT / "domain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FRAMEWORKS]
    assert offenders == []


# The modules that may open a session without the tenant filter (DataProvider.unscoped),
# and why: each works across every tenant of a database by design.
UNSCOPED_USERS = {
    "domain/tenancy/export/archive.py": "an export reads the tenant's rows in every table, in one snapshot",
    "domain/messaging/handling.py": "completes a delivery at its origin database, whoever's it is",
    "domain/messaging/relay.py": "re-sends, prunes and lists every database's outbox",
    "domain/publications/scheduling.py": "beat publishes every tenant's publications that are due",
    "domain/assets/cleanup.py": "beat removes every tenant's unconfirmed and deleted assets' files",
}


def test_only_the_declared_modules_open_unfiltered_sessions() -> None:
    # The opt-out is greppable on purpose: a new use is declared here, with its reason.
    users = {str(path.relative_to(ROOT)) for folder in ("domain", "web", "tasks", "workers")
             for path in (ROOT / folder).rglob("*.py") if ".unscoped(" in path.read_text()}
    assert users == set(UNSCOPED_USERS)


def test_every_task_module_is_loaded_by_the_workers(celery_app: Celery) -> None:
    # A module the workers do not import has tasks nobody runs: its messages would die.
    modules = {f"tasks.{p.stem}" for p in (ROOT / "tasks").glob("*.py") if p.stem != "__init__"}
    assert modules == set(celery_app.conf.include)


def test_every_task_routes_to_the_declared_queue_of_its_module(celery_app: Celery) -> None:
    names = [name for name in celery_app.tasks if name.startswith("tasks.")]
    assert len(names) >= 4
    for name in names:
        queue = route_task(name, (), {}, {})["queue"]
        module, _, function = name.rpartition(".")
        assert queue in QUEUES, name
        assert module == f"tasks.{queue}", name
        assert getattr(importlib.import_module(module), function).name == name


def test_every_task_runs_inside_the_visibility_timeout(celery_app: Celery) -> None:
    # Redis gives an unacknowledged task to another worker after the visibility timeout: a task
    # allowed to run longer (its own hard limit or the default) would run twice at once.
    timeout = celery_app.conf.broker_transport_options["visibility_timeout"]
    long_ones = {name: task.time_limit for name, task in celery_app.tasks.items()
                 if name.startswith("tasks.") and task.time_limit}
    assert {"tasks.tenancy.promote_tenant", "tasks.tenancy.resume_promotion",
            "tasks.tenancy.export_tenant"} <= set(long_ones)  # a big tenant's copy or archive
    assert celery_app.conf.task_time_limit < timeout
    assert {name: limit for name, limit in long_ones.items() if limit >= timeout} == {}


def test_every_handler_and_beat_job_has_a_task(celery_app: Celery) -> None:
    # A handler without a task leaves outbox rows nobody completes until they are dead.
    handlers = [*bus.COMMAND_HANDLERS.values(), *(h for hs in bus.SUBSCRIBERS.values() for h in hs)]
    assert handlers
    for handler in handlers:
        assert bus.task_name(handler) in celery_app.tasks, handler
    for task, _ in BEAT_JOBS.values():
        assert task in celery_app.tasks, task


def test_every_queue_is_consumed_by_exactly_one_procfile_process(procfile: dict[str, str]) -> None:
    consumed = [queue for command in procfile.values() for queue in queues_of(command)]
    assert sorted(consumed) == sorted(QUEUES)


def test_every_pool_has_its_worker_process(procfile: dict[str, str]) -> None:
    for pool, queues in POOLS.items():
        command = procfile[f"worker_{pool}"]
        assert shlex.split(command)[:4] == ["celery", "-A", "workers.app", "worker"]
        assert set(queues_of(command)) == set(queues), pool
    workers = {name for name in procfile if name.startswith("worker_")}
    assert workers == {f"worker_{pool}" for pool in POOLS}
    assert {"web", "beat", "flower"} <= set(procfile)


def test_every_procfile_process_is_a_compose_service_with_the_same_command(
        procfile: dict[str, str], compose: dict[str, Any]) -> None:
    for name, command in procfile.items():
        assert name in compose, name
        service_command = compose[name]["command"]
        argv = service_command if isinstance(service_command, list) else shlex.split(service_command)
        assert argv == shlex.split(command), name


def test_compose_passes_environment_by_name_only(compose: dict[str, Any]) -> None:
    for name, service in compose.items():
        environment = service.get("environment") or []
        if isinstance(environment, dict):
            assert all(value is None for value in environment.values()), name
        else:
            assert all("=" not in str(entry) for entry in environment), name
        assert "env_file" not in service, name


def test_every_app_service_gets_the_core_environment(procfile: dict[str, str],
                                                     compose: dict[str, Any]) -> None:
    known = {name.upper() for name in Settings.model_fields} | PROCESS_ENV
    for name in procfile:
        names = env_names(compose[name])
        assert set(names) >= CORE_ENV, (name, CORE_ENV - set(names))
        # Every process builds the whole Settings: a setting left out is silently its default.
        settings = {field.upper() for field in Settings.model_fields}
        assert set(names) >= settings, (name, settings - set(names))
        assert set(names) <= known, (name, set(names) - known)  # a misspelt name is passed as nothing


def test_flower_is_never_unauthenticated(procfile: dict[str, str], compose: dict[str, Any]) -> None:
    for path in ("Procfile", "docker-compose.yml"):
        assert "FLOWER_UNAUTHENTICATED_API" not in (ROOT / path).read_text(), path
    assert "FLOWER_BASIC_AUTH" in env_names(compose["flower"])
    assert "--basic-auth" not in procfile["flower"]  # credentials stay off the command line


@pytest.mark.parametrize("environ", [
    {},
    {"FLOWER_BASIC_AUTH": "admin"},
    {"FLOWER_BASIC_AUTH": "admin:"},
    {"FLOWER_BASIC_AUTH": "admin:secret", "FLOWER_UNAUTHENTICATED_API": "true"},
], ids=["no auth", "no password", "empty password", "unauthenticated api"])
def test_flower_refuses_to_start_without_authentication(procfile: dict[str, str],
                                                        environ: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")} | environ
    argv = shlex.split(procfile["flower"])
    assert argv[:2] == ["python", "-m"]
    result = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert "FLOWER_" in result.stderr
