"""Celery configuration: one queue per domain, routes derived from the task module, beat.

A task defined in ``tasks/<ctx>.py`` is named ``tasks.<ctx>.<function>`` and goes to the
queue ``<ctx>``. Pools (Procfile processes) consume one or more queues; ``POOLS`` is the
single table both the Procfile test and the routing test read.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from kombu import Queue

from config.settings import Settings

# Pool name -> queues it consumes. Contexts without their own pool share "default"
# until they need one (DESIGN §1).
POOLS: dict[str, tuple[str, ...]] = {
    "purchases": ("purchases",),
    "notifications": ("notifications",),
    "assets": ("assets",),
    "tenancy": ("tenancy",),
    "default": (
        "default", "identity", "iam", "employment", "publications",
        "translations", "billing", "relay",
    ),
}
QUEUES: tuple[str, ...] = tuple(q for queues in POOLS.values() for q in queues)

# Periodic jobs: name -> (task name, interval setting or seconds). Each is safe to run twice
# at once (two beat processes started by mistake, §6): the relay claims rows with
# FOR UPDATE SKIP LOCKED, the drift check only reads, pruning deletes what is already gone.
BEAT_JOBS: dict[str, tuple[str, str | float]] = {
    "relay-sweep": ("tasks.relay.sweep_outboxes", "relay_interval_seconds"),
    "migration-drift": ("tasks.tenancy.check_migration_drift", 3600.0),
    "prune-messages": ("tasks.relay.prune_messages", 3600.0),
    "resume-promotions": ("tasks.tenancy.resume_promotions", "promotion_resume_seconds"),
    "resume-exports": ("tasks.tenancy.resume_exports", 60.0),
    "dangling-graph-guids": ("tasks.employment.report_dangling_edges", 3600.0),
    "clean-up-assets": ("tasks.assets.clean_up_assets", "asset_cleanup_seconds"),
    # Each claims a row per (user, day) / per tenant before it sends: safe twice.
    "notification-digests": ("tasks.notifications.send_digests", "digest_check_seconds"),
    # Senders claim emails with FOR UPDATE SKIP LOCKED and start each one from "queued" only.
    "email-sender": ("tasks.notifications.sweep_emails", 15.0),
    "trial-reminders": ("tasks.tenancy.remind_trials", 3600.0),
    # Claims each due publication once.
    "scheduled-publications": ("tasks.publications.publish_due", "publication_schedule_seconds"),
}


def queue_for_task(name: str) -> str:
    """The queue of a task, derived from its module: ``tasks.<ctx>.fn`` -> ``<ctx>``."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] == "tasks" and parts[1] in QUEUES:
        return parts[1]
    return "default"


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **kw: Any) -> dict[str, str]:
    """Celery router: send every task to its module's queue."""
    return {"queue": queue_for_task(name)}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat table with intervals resolved from settings."""
    schedule: dict[str, dict[str, Any]] = {}
    for job, (task, every) in BEAT_JOBS.items():
        seconds = float(getattr(settings, every)) if isinstance(every, str) else every
        schedule[job] = {"task": task, "schedule": timedelta(seconds=seconds)}
    return schedule


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings: late acks, reject on worker loss, prefetch 1, JSON only, limits."""
    hard = settings.task_time_limit
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": hard,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        "worker_concurrency": settings.worker_concurrency,
        # Redis re-delivers unacknowledged messages after this; it must exceed the
        # longest task or a running task would be handed to a second worker.
        "broker_transport_options": {"visibility_timeout": max(3600, hard * 4)},
        "result_backend_transport_options": {"visibility_timeout": max(3600, hard * 4)},
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        "task_track_started": True,
        "result_expires": 86400,
        "result_extended": True,
        "task_default_queue": "default",
        "task_create_missing_queues": False,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_routes": (route_task,),
        # Task events stay off (Celery's default) until Flower turns them on at its start:
        # they cost the worker's main process about half its time on short tasks.
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
        "timezone": "UTC",
    }
