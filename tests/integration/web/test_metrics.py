"""/metrics: queue depth and age per queue, undelivered and dead messages per database."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from config.celery import QUEUES
from config.settings import Settings
from domain.db.provider import DataProvider
from domain.messaging.tables import outbox
from tests.integration.messaging.helpers import bury, harmless, record
from tests.support.apps import web_app
from tests.support.services import REDIS_DB_METRICS_IDLE, Services
from workers.publisher import publish

TOKEN = "metrics-token-for-tests-0123456789"
IDLE_DB = REDIS_DB_METRICS_IDLE


@pytest.fixture
def metrics_app(services: Services, settings: Settings) -> Iterator[Flask]:
    """The web app with a metrics token, sending to a broker nobody consumes."""
    broker = f"{services.redis_url}/{IDLE_DB}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    with web_app(settings.model_copy(update={"metrics_token": TOKEN, "broker_url": broker,
                                             "result_backend": broker})) as app:
        yield app
    client.flushdb()
    client.close()


def gauge(text: str, name: str, label: str, value: str) -> float:
    """The value of one gauge sample in Prometheus' text format."""
    match = re.search(rf'^{name}{{{label}="{re.escape(value)}"}} (\S+)$', text, re.M)
    assert match, f"{name}{{{label}={value!r}}} missing"
    return float(match.group(1))


def test_without_a_token_setting_there_is_no_metrics_endpoint(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}x"])
def test_a_scraper_without_the_token_is_refused(metrics_app: Flask, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert metrics_app.test_client().get("/metrics", headers=headers).status_code == 401


def test_metrics_show_waiting_and_dead_messages(metrics_app: Flask, provider: DataProvider,
                                                services: Services) -> None:
    publisher = metrics_app.extensions["allotment.celery"]
    (waiting,) = record(provider, harmless())
    publish(publisher, [waiting])  # nobody consumes this broker: it waits in "tenancy"
    bury(provider, publisher, record(provider, harmless())[0].id)
    with provider.unscoped("management") as session:
        dead = session.scalar(select(func.count()).select_from(outbox).where(outbox.c.dead_at.is_not(None)))

    response = metrics_app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    broker = redis.Redis.from_url(f"{services.redis_url}/{IDLE_DB}")
    for queue in QUEUES:  # nothing consumes this broker, so the lists hold still
        assert gauge(text, "allotment_queue_depth", "queue", queue) == broker.llen(queue)
    broker.close()
    assert gauge(text, "allotment_queue_depth", "queue", "tenancy") >= 1
    assert gauge(text, "allotment_queue_oldest_age_seconds", "queue", "tenancy") >= 0
    assert gauge(text, "allotment_outbox_dead", "database", "management") == dead >= 1
    assert gauge(text, "allotment_outbox_open", "database", "management") >= 1
