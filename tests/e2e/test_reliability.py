"""Nothing lost, nothing done twice: 300 signups while workers are SIGKILLed and the broker is flushed."""
from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from flask import Flask

from domain.iam.services import BUILTIN_ROLES
from tests.support import chaos, processes
from tests.support.services import Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SIGNUPS = 300


def test_every_signup_is_provisioned_and_welcomed_exactly_once_despite_kills_and_a_flush(
        chaos_app: Flask, chaos_stack: Stack, chaos_workers: dict[str, processes.Process],
        ledger: chaos.Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    seed = random.randrange(2**32)
    kills = chaos.plan(random.Random(seed), SIGNUPS)
    chaotic = chaos.Chaos({n: chaos_workers[n] for n in ("tenancy", "notifications")}, chaos_stack.broker_url)
    load = chaos.SignupLoad(chaos_app, chaos_stack, SIGNUPS, window=30)
    load.start()
    chaos.run(chaotic, ledger, kills)
    submissions = load.result(timeout=300)
    assert all(worker.running() for worker in chaos_workers.values())

    wait_for(lambda: ledger.snapshot(SIGNUPS), timeout=300, interval=0.5,
             message="every signup provisioned and welcomed, every delivery completed")
    converged = time.monotonic() - chaotic.started
    _assert_exactly_once(ledger, submissions)
    assert ledger.outbox("dead_at IS NOT NULL") == 0

    with capsys.disabled():
        print(f"\nreliability (seed {seed}): {SIGNUPS} signups submitted in "
              f"{(load.finished_at or 0) - chaotic.started:.1f}s, kills {dict(chaotic.kills)}, "
              f"relay re-sends {ledger.resends()}, converged in {converged:.1f}s\n  "
              + "\n  ".join(chaotic.log))
    assert sum(chaotic.kills.values()) >= 5 and min(chaotic.kills.values()) >= 2


def _assert_exactly_once(ledger: chaos.Ledger, submissions: list[chaos.Submission]) -> None:
    """One user, one owner membership, the built-in roles and one welcome notice per signup."""
    assert Counter(s.status for s in submissions) == {202: SIGNUPS}
    signup_ids = [s.signup_id for s in submissions if s.signup_id]
    assert ledger.signup_statuses(signup_ids) == {"provisioned": SIGNUPS}

    tenant_of = ledger.tenant_ids(signup_ids)
    admins = ledger.users_by_email([s.body["email"] for s in submissions])
    assert sorted(len(ids) for ids in admins.values()) == [1] * SIGNUPS
    admin_of = {tenant_of[s.signup_id]: admins[s.body["email"]][0] for s in submissions if s.signup_id}
    tenants = list(admin_of)

    assert ledger.memberships(tenants) == {t: [(user, "owner")] for t, user in admin_of.items()}
    assert ledger.role_counts(tenants) == {len(BUILTIN_ROLES): SIGNUPS}
    assert ledger.welcome_notices(tenants) == {t: [user] for t, user in admin_of.items()}
