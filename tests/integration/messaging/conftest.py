"""Fixtures of the message-plane tests: a publisher, and a provider with a short lease."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from config.settings import Settings
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider
from workers.publisher import web_publisher

FAST_LEASE_SECONDS = 0.3
FAST_MAX_ATTEMPTS = 3


@pytest.fixture(scope="session")
def publisher(settings: Settings) -> Iterator[Celery]:
    """A sending-only Celery app on the session's broker (what the web tier uses)."""
    app = web_publisher(settings.broker_url, settings.result_backend)
    yield app
    app.close()


@pytest.fixture(scope="session")
def fast_provider(settings: Settings) -> Iterator[DataProvider]:
    """A data provider whose messages are due again after a fraction of a second, and dead
    after a few attempts, so the relay's rounds happen within a test."""
    fast = build_provider(settings.model_copy(update={
        "message_lease_seconds": FAST_LEASE_SECONDS, "message_max_attempts": FAST_MAX_ATTEMPTS}))
    yield fast
    fast.dispose()
