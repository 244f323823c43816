"""The relay's backoff: the lease, doubled per attempt, capped."""
from __future__ import annotations

from datetime import timedelta

import pytest

from domain.messaging.relay import MAX_BACKOFF, backoff


@pytest.mark.parametrize(("attempts", "seconds"), [(0, 10), (1, 10), (2, 20), (3, 40), (4, 80), (6, 320)])
def test_backoff_doubles_per_attempt(attempts: int, seconds: float) -> None:
    assert backoff(10, attempts) == timedelta(seconds=seconds)


def test_backoff_never_shrinks_and_is_capped() -> None:
    delays = [backoff(60, attempt) for attempt in range(1, 30)]
    assert delays == sorted(delays)
    assert delays[-1] == MAX_BACKOFF
    assert backoff(1e9, 1) == MAX_BACKOFF


def test_backoff_keeps_fractional_leases() -> None:
    assert backoff(0.25, 3) == timedelta(seconds=1)
