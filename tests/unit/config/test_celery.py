"""Celery configuration: queues derived from task modules, and the reliability settings."""
from __future__ import annotations

from datetime import timedelta

import pytest

from config.celery import BEAT_JOBS, POOLS, QUEUES, beat_schedule, celery_config, queue_for_task, route_task
from config.settings import Settings, load_settings


def _settings(**environ: str) -> Settings:
    return load_settings({"SECRET_KEY": "unit-test-secret", "DATABASE_URL": "postgresql://db/allot",
                          "BROKER_URL": "redis://redis:6379/0", **environ})


@pytest.mark.parametrize(("task", "queue"), [
    ("tasks.tenancy.provision_tenant", "tenancy"),
    ("tasks.notifications.record_welcome_notice", "notifications"),
    ("tasks.assets.process_upload", "assets"),
    ("tasks.purchases.confirm", "purchases"),
    ("tasks.relay.sweep_outboxes", "relay"),
    ("tasks.billing.monthly_statements", "billing"),
    ("tasks.unknown_context.job", "default"),   # no such queue: the default pool
    ("tasks.tenancy", "default"),               # not a task inside a module
    ("celery.chord_unlock", "default"),         # Celery's own tasks
    ("tenancy.provision_tenant", "default"),    # a handler name, not a task name
])
def test_queue_is_derived_from_the_task_module(task: str, queue: str) -> None:
    assert queue_for_task(task) == queue
    assert route_task(task, (), {}, {}) == {"queue": queue}


def test_every_queue_belongs_to_exactly_one_pool() -> None:
    assert len(QUEUES) == len(set(QUEUES))
    assert {"purchases", "notifications", "assets", "tenancy", "default", "relay"} <= set(QUEUES)
    assert set(POOLS) == {"purchases", "notifications", "assets", "tenancy", "default"}


def test_tasks_are_acknowledged_late_and_rejected_on_worker_loss() -> None:
    conf = celery_config(_settings())
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is True


def test_only_json_is_sent_or_accepted() -> None:
    conf = celery_config(_settings())
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["accept_content"] == conf["result_accept_content"] == ["json"]


def test_limits_come_from_settings() -> None:
    conf = celery_config(_settings(TASK_SOFT_TIME_LIMIT="50", TASK_TIME_LIMIT="60",
                                   WORKER_MAX_TASKS_PER_CHILD="7", WORKER_CONCURRENCY="3"))
    assert (conf["task_soft_time_limit"], conf["task_time_limit"]) == (50, 60)
    assert conf["worker_max_tasks_per_child"] == 7
    assert conf["worker_concurrency"] == 3


@pytest.mark.parametrize("hard_limit", ["60", "300", "7200"])
def test_visibility_timeout_exceeds_the_longest_hard_limit(hard_limit: str) -> None:
    # Redis hands an unacknowledged task to another worker after the visibility timeout;
    # below the hard limit a running task would run twice.
    conf = celery_config(_settings(TASK_SOFT_TIME_LIMIT="30", TASK_TIME_LIMIT=hard_limit))
    assert conf["broker_transport_options"]["visibility_timeout"] > int(hard_limit)


def test_queues_are_declared_and_no_other_is_created() -> None:
    conf = celery_config(_settings())
    assert [q.name for q in conf["task_queues"]] == list(QUEUES)
    assert conf["task_create_missing_queues"] is False
    assert conf["task_default_queue"] in QUEUES
    assert conf["task_routes"] == (route_task,)


def test_beat_runs_every_job_with_its_interval() -> None:
    schedule = beat_schedule(_settings(RELAY_INTERVAL_SECONDS="3"))
    assert set(schedule) == set(BEAT_JOBS)
    assert schedule["relay-sweep"] == {"task": "tasks.relay.sweep_outboxes", "schedule": timedelta(seconds=3)}
    for job in schedule.values():
        assert job["task"].startswith("tasks.")
