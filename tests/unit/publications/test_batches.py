"""An audience is announced in parts of at most 500 recipients, every recipient in exactly one."""
from __future__ import annotations

import uuid

import pytest

from domain.publications.handlers import BATCH, batches


@pytest.mark.parametrize(("people", "sizes"), [(0, [0]), (1, [1]), (500, [500]), (501, [500, 1]),
                                               (5000, [500] * 10), (5001, [500] * 10 + [1])],
                         ids=["none", "one", "exactly-one-batch", "one-over", "five-thousand", "5001"])
def test_parts(people: int, sizes: list[int]) -> None:
    ids = [uuid.uuid4() for _ in range(people)]
    parts = batches(ids)
    assert [len(p) for p in parts] == sizes
    assert [i for part in parts for i in part] == ids  # each once, in order
    assert BATCH == 500
