"""Process and task signals: fresh connections after fork, ids bound to the logs."""
from __future__ import annotations

from typing import Any

from celery import current_app
from celery.signals import setup_logging, task_postrun, task_prerun, worker_process_init

from config import logging as log_context


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    log_context.configure_logging(current_app.settings.log_level)  # type: ignore[attr-defined]


@worker_process_init.connect
def _fresh_pools(**_: Any) -> None:
    # A prefork child inherits the parent's sockets; they must not be shared.
    current_app.provider.after_fork()  # type: ignore[attr-defined]


@task_prerun.connect
def _bind_ids(task_id: str, args: tuple[Any, ...] = (), **_: Any) -> None:
    log_context.message_id.set(task_id)
    if args and isinstance(args[0], dict):
        log_context.tenant_id.set(args[0].get("tenant_id"))
        log_context.correlation_id.set(args[0].get("correlation_id"))


@task_postrun.connect
def _unbind_ids(**_: Any) -> None:
    for var in (log_context.message_id, log_context.tenant_id, log_context.correlation_id):
        var.set(None)
