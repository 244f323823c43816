"""Fixtures of the purchases suites: a client and a shop per module, and a private stack with
real workers for the payment flow."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.celery import POOLS
from domain.db.provider import DataProvider
from tests.integration.purchases.helpers import PAYMENTS_REDIS_DB, Payments, Shop, open_shop, private_stack
from tests.support import processes
from tests.support.services import Services
from workers import embedded


@pytest.fixture(scope="module")
def api(app: Flask) -> FlaskClient:
    """A test client shared by a module (JSON calls carry their token)."""
    return app.test_client()


@pytest.fixture(scope="module")
def shop(api: FlaskClient, provider: DataProvider) -> Shop:
    """The module's shop."""
    return open_shop(api, provider)


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of this test process's own (``redis://127.0.0.1:<port>``) for the
    purchases suites' private stacks: their workers never meet another stack's messages."""
    server = embedded.start_redis(tmp_path_factory.mktemp("purchases-redis"), embedded.free_port())
    yield f"redis://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture(scope="package")
def payments(services: Services, private_redis: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Payments]:
    """The payment flow's own stack and workers (shared by the package's flow tests)."""
    root = tmp_path_factory.mktemp("payments")
    # A gateway that stays down fails a purchase after four retries: 0.25 + 0.5 + 1 + 2 s here.
    with private_stack(services, private_redis, PAYMENTS_REDIS_DB, root,
                       TASK_RETRY_SECONDS="0.25") as private:
        workers: dict[str, processes.Process] = {}
        try:
            for name, queues in (("pay-purchases", "purchases"), ("pay-default", ",".join(POOLS["default"])),
                                 ("pay-notifications", "notifications")):
                workers[name] = private.worker(name, queues)
            yield Payments(private, workers)
        finally:
            processes.stop_all(workers.values())
