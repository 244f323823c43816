"""The one Celery app: ``celery -A workers.app worker -Q <queues>`` / ``beat`` / ``flower``."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from redis import Redis

from config.celery import celery_config
from config.settings import Settings, settings_or_exit
from domain.bootstrap import build_ports, build_provider
from domain.db.provider import DataProvider
from workers import signals  # noqa: F401 - connects process and task signals
from workers.mail_rendering import JinjaEmailRenderer
from workers.redelivery import RedeliveryCounter
from workers.senders import SenderWaker

TASK_MODULES = ["tasks.tenancy", "tasks.notifications", "tasks.relay", "tasks.purchases", "tasks.billing",
                "tasks.employment", "tasks.assets", "tasks.publications"]


class AllotmentCelery(Celery):
    """Celery with the process's settings and data provider attached."""

    settings: Settings
    provider: DataProvider
    ports: dict[str, Any]


def create_celery(settings: Settings) -> AllotmentCelery:
    """Build the Celery app for ``settings``; task modules are registered by name."""
    app = AllotmentCelery("allotment", include=TASK_MODULES, set_as_current=True)
    app.config_from_object(celery_config(settings))
    app.settings = settings
    app.provider = build_provider(settings)
    # The email renderer is Jinja2 and the sender is woken with a task: the domain imports
    # neither, so both are added here.
    # One client, short timeouts: neither the sender's flag nor the redelivery count is
    # needed for correctness, and neither may hold a task up when Redis is slow.
    flags = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    app.ports = {**build_ports(settings), "renderer": JinjaEmailRenderer(),
                 "wake_sender": SenderWaker(app, flags), "redeliveries": RedeliveryCounter(flags)}
    return app


app = create_celery(settings_or_exit(os.environ))
