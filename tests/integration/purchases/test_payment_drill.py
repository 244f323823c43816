"""Payment drill: 500 purchases with random test cards while the ``purchases`` worker is
SIGKILLed (the whole process group) at least five times and restarted. The sandbox
gateway's own ledger shows at most one charge per purchase, every purchase reaches its
final state, and that state is the one its card calls for.

The drill runs on a stack of its own (databases, and Redis databases of a server started for
the purchases suites), with
a short message lease and a relay every second (beat and a ``default``-pool worker), so
what a killed worker held is re-sent within the test.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask

from config.celery import POOLS
from tests.integration.purchases.helpers import (
    APPROVE,
    DECLINE,
    DRILL_REDIS_DB,
    INSUFFICIENT,
    PURCHASES,
    TRANSIENT,
    UNAVAILABLE,
    add_product,
    private_stack,
)
from tests.support import chaos, processes, tenants
from tests.support.services import Services, Stack
from tests.support.waiting import wait_for

PURCHASE_COUNT = 500
KILLS = 6
WINDOW = 120  # purchases submitted and not yet final, at most
# Retries 0.5, 1, 2 and 4 s apart (plus jitter): a purchase whose gateway stays down is still
# waiting for its last retries when its 5 s lease ends, so the relay re-sends it meanwhile and
# two copies meet the idempotency key, as with the default 1 s (15 s in all) in this lease.
DRILL_SETTINGS = {"MESSAGE_LEASE_SECONDS": "5", "RELAY_INTERVAL_SECONDS": "1", "TASK_RETRY_SECONDS": "0.5"}
# Card -> (weight, the final state and reason it must end in).
CARDS: dict[str, tuple[int, str, str | None]] = {
    APPROVE: (40, "completed", None),
    DECLINE: (15, "failed", "the card was declined"),
    INSUFFICIENT: (15, "failed", "insufficient funds on the card"),
    TRANSIENT: (15, "completed", None),
    UNAVAILABLE: (15, "failed", "payment gateway unavailable"),
}


class Ledger:
    """What the drill's databases say, read as their owner on a connection of its own."""

    def __init__(self, stack: Stack) -> None:
        self.conn = psycopg.connect(stack.database_url.replace("postgresql+psycopg://", "postgresql://", 1),
                                    autocommit=True)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def final(self) -> int:
        """Purchases that reached a final state."""
        row = self.conn.execute("SELECT count(*) FROM purchases WHERE status IN ('completed', 'failed')"
                                ).fetchone()
        return int(row[0]) if row else 0

    def purchases(self) -> dict[str, tuple[str, str | None, str | None]]:
        """Purchase id -> (status, failure reason, charge id)."""
        rows = self.conn.execute("SELECT id::text, status, failure_reason, charge_id FROM purchases")
        return {r[0]: (r[1], r[2], r[3]) for r in rows.fetchall()}

    def charges(self) -> dict[str, list[tuple[str, str]]]:
        """Idempotency key -> the sandbox's (charge id, status) rows for it."""
        found: dict[str, list[tuple[str, str]]] = {}
        for key, charge_id, status in self.conn.execute(
                "SELECT idempotency_key, id, status FROM sandbox_charges").fetchall():
            found.setdefault(key, []).append((charge_id, status))
        return found

    def attempts(self) -> dict[str, int]:
        """Idempotency key -> charge requests the sandbox received with it (retries and
        re-deliveries included)."""
        return dict(self.conn.execute("SELECT idempotency_key, attempts FROM sandbox_attempts").fetchall())


@dataclass
class Drill:
    """The drill's stack, app, workers, and a tenant admin's token."""

    stack: Stack
    app: Flask
    workers: dict[str, processes.Process]
    token: str
    product: dict[str, Any]


@pytest.fixture
def drill(services: Services, private_redis: str, tmp_path: Path) -> Iterator[Drill]:
    """A stack of its own with a short lease, the web app (each request committed as in
    production), a ``purchases`` worker, a ``default``-pool worker (relay, billing) and beat."""
    with private_stack(services, private_redis, DRILL_REDIS_DB, tmp_path, {"TESTING": False},
                       **DRILL_SETTINGS) as private:
        started: dict[str, processes.Process] = {}
        try:
            started["purchases"] = private.worker("purchases", "purchases")
            started["default"] = private.worker("default", ",".join(POOLS["default"]), concurrency=1)
            started["beat"] = processes.celery_beat(private.env, private.logs)
            tenant = tenants.create_tenant(private.provider, ("admin",), prefix="drill")
            product = add_product(private.provider, price_minor=2900)
            token = tenants.access_token(private.app.test_client(), tenant.member("admin"), tenant.slug)
            yield Drill(private.stack, private.app, started, token,
                        {"product_code": product.code, "amount_minor": 2900, "currency": "EUR"})
        finally:
            processes.stop_all(started.values())
            for process in started.values():  # shown when the drill fails
                problems = [line for line in process.log().splitlines()
                            if "Traceback" in line or "ERROR" in line]
                print(f"--- {process.log_path}: {len(problems)} error lines ---\n"
                      + "\n".join(problems[-20:]))


class PurchaseLoad(threading.Thread):
    """Submit every purchase through the web app in the background, at most ``WINDOW`` ahead of
    the final ones, so purchases keep arriving while the worker is killed."""

    def __init__(self, drill: Drill, cards: list[str]) -> None:
        super().__init__(name="purchase-load", daemon=True)
        self.drill, self.cards = drill, cards
        self.answers: list[tuple[str, int, str | None]] = []  # (card, status, purchase id)
        self.error: BaseException | None = None

    def run(self) -> None:
        """Post every purchase; keep the first error for :meth:`result`."""
        client, ledger = self.drill.app.test_client(), Ledger(self.drill.stack)
        try:
            for number, card in enumerate(self.cards):
                wait_for(lambda: number - ledger.final() < WINDOW, timeout=300,  # noqa: B023 - called now
                         message="the purchases to catch up")
                response = client.post(PURCHASES, json={**self.drill.product, "card_number": card},
                                       headers={**tenants.bearer(self.drill.token),
                                                "Idempotency-Key": f"drill-{number}"})
                answer = response.get_json(silent=True) or {}
                self.answers.append((card, response.status_code, answer.get("id")))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by result()
            self.error = exc
        finally:
            ledger.close()

    def result(self, timeout: float) -> list[tuple[str, int, str | None]]:
        """Every answer once the load is done (its error if it failed)."""
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"the purchase load is still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.answers


def test_killed_purchase_workers_never_charge_twice_and_every_purchase_finishes(
        drill: Drill, capsys: pytest.CaptureFixture[str]) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    cards = rng.choices(list(CARDS), weights=[w for w, _, _ in CARDS.values()], k=PURCHASE_COUNT)
    kill_points = sorted(rng.sample(range(PURCHASE_COUNT // 20, PURCHASE_COUNT * 3 // 4), KILLS))
    ledger = Ledger(drill.stack)
    chaotic = chaos.Chaos({"purchases": drill.workers["purchases"]}, drill.stack.broker_url)
    load = PurchaseLoad(drill, cards)
    try:
        load.start()
        for at in kill_points:
            wait_for(lambda: ledger.final() >= at, timeout=120,  # noqa: B023 - called now
                     message=f"{at} purchases to finish")
            chaotic.kill("purchases", f"final={ledger.final()}")
            chaotic.restart("purchases")
        answers = load.result(timeout=300)
        wait_for(lambda: ledger.final() == PURCHASE_COUNT, timeout=180, interval=0.5,
                 message="every purchase to reach a final state")
        converged = time.monotonic() - chaotic.started
        purchases, charges, attempts = ledger.purchases(), ledger.charges(), ledger.attempts()
    finally:
        ledger.close()

    assert Counter(status for _, status, _ in answers) == {202: PURCHASE_COUNT}
    assert chaotic.kills["purchases"] >= 5
    wrong, doubled = [], []
    for card, _, purchase_id in answers:
        assert purchase_id is not None
        status, reason, charge_id = purchases[purchase_id]
        _, expected, expected_reason = CARDS[card]
        if (status, reason) != (expected, expected_reason):
            wrong.append((purchase_id, card, status, reason))
        made = charges.get(purchase_id, [])
        succeeded = [c for c, s in made if s == "succeeded"]
        if len(made) > 1 or (status == "completed" and succeeded != [charge_id]) or \
                (status == "failed" and succeeded):
            doubled.append((purchase_id, card, status, charge_id, made))
    assert not wrong, f"{len(wrong)} purchases ended otherwise than their card says: {wrong[:5]}"
    assert not doubled, f"{len(doubled)} purchases charged other than once: {doubled[:5]}"
    assert set(charges) <= set(purchases)  # the sandbox charged nothing but these purchases
    # Requests that found their key already charged: a copy of a message whose charge was made
    # (a worker killed before its commit, or the relay re-sending a slow one) got the first charge.
    replays = sum(attempts[p] - (3 if card == TRANSIENT else 1) for card, _, p in answers
                  if purchases[p][0] == "completed")

    with capsys.disabled():
        print(f"\npayment drill (seed {seed}): {PURCHASE_COUNT} purchases "
              f"{dict(Counter(CARDS[c][1] for c in cards))}, kills {dict(chaotic.kills)}, "
              f"{sum(attempts.values())} charge requests at the gateway ({replays} answered with a "
              f"charge already made), {sum(len(v) for v in charges.values())} sandbox charge rows, "
              f"converged in {converged:.1f}s\n  "
              + "\n  ".join(chaotic.log))
