"""Fixtures shared by every suite: services, an isolated stack, the app, real workers."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from config.celery import QUEUES
from config.settings import Settings, load_settings
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider
from tests.support import processes
from tests.support.apps import web_app
from tests.support.oidc_provider import OidcProvider
from tests.support.services import (
    REDIS_DB_SESSION,
    SecondServer,
    ServiceMissing,
    Services,
    Stack,
    create_stack,
    drop_stack,
    start_second_server,
    start_services,
)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Real PostgreSQL and Redis (configured or embedded); a missing one fails the run."""
    try:
        started = start_services()
    except ServiceMissing as exc:
        pytest.exit(str(exc), returncode=3)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def second_server() -> Iterator[SecondServer]:
    """A second, real PostgreSQL server started from the pgserver wheel (placement tests).

    Its data lives outside pytest's temporary root: every pytest session resets that root
    to mode 0700, which would lock out the unprivileged user pgserver runs PostgreSQL as."""
    data_dir = Path(tempfile.mkdtemp(prefix="allotment-pg2-"))
    data_dir.chmod(0o755)  # mkdtemp makes it 0700: let PostgreSQL's own user reach its data
    server = start_second_server(data_dir / "pg")
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    """An OpenID Connect provider serving on 127.0.0.1 for the module that asks for it."""
    started = OidcProvider().start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def stack(services: Services) -> Iterator[Stack]:
    """This session's management and trial databases and its Redis databases."""
    created = create_stack(services, redis_db=REDIS_DB_SESSION)
    yield created
    drop_stack(created)


@pytest.fixture(scope="session")
def settings(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the session's stack."""
    return load_settings(stack.env(VAR_DIR=str(tmp_path_factory.mktemp("var"))))


@pytest.fixture(scope="session")
def provider(settings: Settings) -> Iterator[DataProvider]:
    """A data provider for the test process."""
    built = build_provider(settings)
    yield built
    built.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    """The web app on the session's stack."""
    with web_app(settings) as flask_app:
        yield flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the web app."""
    return app.test_client()


@pytest.fixture
def broker_redis(settings: Settings) -> Iterator[Redis]:
    """A plain client of the app's broker Redis, which also holds revocations, IAM versions
    and rate-limit counters."""
    client = Redis.from_url(settings.broker_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where worker and beat processes write their logs."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def all_queues_worker(stack: Stack, settings: Settings, log_dir: Path) -> Iterator[processes.Process]:
    """One real worker consuming every queue, shared by tests that only need effects.

    It shares the test settings' VAR_DIR, so what it writes there (mail) is where the
    tests look."""
    worker = processes.celery_worker("all", ",".join(QUEUES), stack.env(VAR_DIR=str(settings.var_dir)),
                                     log_dir, concurrency=2)
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(stack: Stack, settings: Settings,
                 log_dir: Path) -> Iterator[Callable[..., processes.Process]]:
    """Start workers for one test; each is stopped when the test ends."""
    started: list[processes.Process] = []

    def start(name: str, queues: str, concurrency: int = 1, **env: str) -> processes.Process:
        env.setdefault("VAR_DIR", str(settings.var_dir))
        worker = processes.celery_worker(name, queues, stack.env(**env), log_dir, concurrency)
        started.append(worker)
        return worker

    yield start
    processes.stop_all(started)
