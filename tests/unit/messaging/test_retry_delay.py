"""The worker's retry schedule for a handler's transient failure (workers.base.retry_delay)."""
from __future__ import annotations

import pytest

from config.settings import load_settings
from workers.base import retry_delay


def test_the_default_schedule_is_one_two_four_eight_seconds_plus_under_a_second_of_jitter() -> None:
    first = load_settings({"SECRET_KEY": "unit-test-secret"}).task_retry_seconds
    assert first == 1.0
    assert [retry_delay(n, first, jitter=0.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    latest = [retry_delay(n, first, jitter=0.999) for n in range(4)]
    assert latest == pytest.approx([1.999, 2.999, 4.999, 8.999])


def test_the_schedule_scales_with_task_retry_seconds_and_stops_growing_at_a_minute() -> None:
    assert [retry_delay(n, 0.25, jitter=0.5) for n in range(4)] == [0.375, 0.625, 1.125, 2.125]
    assert retry_delay(10, 1.0, jitter=0.0) == 60.0
    drawn = [retry_delay(0, 2.0) for _ in range(200)]
    assert all(2.0 <= d < 4.0 for d in drawn) and len(set(drawn)) > 1
