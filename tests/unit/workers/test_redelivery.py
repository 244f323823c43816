"""The task base's give-up rule for deliveries redelivered too often (workers.redelivery)."""
from __future__ import annotations

from dataclasses import dataclass, field

from workers.redelivery import MAX_REDELIVERIES, RedeliveryCounter, given_up


@dataclass
class FakeCounter:
    """Counts in memory; ``None`` answers as Redis down."""

    down: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, delivery_id: str) -> int | None:
        if self.down:
            return None
        self.counts[delivery_id] = self.counts.get(delivery_id, 0) + 1
        return self.counts[delivery_id]


def _counter(fake: FakeCounter) -> RedeliveryCounter:
    return fake  # type: ignore[return-value]  # the port's one method


def test_a_first_delivery_is_never_counted() -> None:
    fake = FakeCounter()
    assert given_up(_counter(fake), "d1", redelivered=False) is None
    assert fake.counts == {}


def test_redeliveries_run_until_there_are_more_than_the_limit() -> None:
    fake = FakeCounter()
    answers = [given_up(_counter(fake), "d1", redelivered=True) for _ in range(MAX_REDELIVERIES + 2)]
    assert answers == [None] * MAX_REDELIVERIES + [MAX_REDELIVERIES + 1, MAX_REDELIVERIES + 2]
    assert given_up(_counter(fake), "d2", redelivered=True) is None  # counted per delivery


def test_without_a_count_a_redelivery_runs() -> None:
    assert given_up(_counter(FakeCounter(down=True)), "d1", redelivered=True) is None
    assert given_up(None, "d1", redelivered=True) is None
