"""Beat resumes an unfinished promotion after a delay that doubles with each run: a promotion
whose runs keep failing (placement servers down, a worker killed again and again) does not
spend its runs in minutes."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.tenancy import promotion
from domain.tenancy.models import Promotion
from tests.support import tenants

BASE = 30.0


def test_the_resume_delay_doubles_with_each_run_up_to_an_hour() -> None:
    delays = [promotion.resume_delay(BASE, attempts).total_seconds() for attempts in range(0, 10)]
    assert delays == [30, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    # Its fifth and last run comes 7.5 minutes after the first, not 2 (every 30 s before).
    assert sum(delays[1:promotion.MAX_ATTEMPTS]) == 450


def test_beat_resumes_a_promotion_once_its_delay_has_passed(provider: DataProvider) -> None:
    now = utcnow()
    cases = {  # (status, runs so far, seconds since its last recorded progress) -> due?
        ("pending", 0, 31): True,
        ("running", 1, 29): False,
        ("running", 1, 31): True,
        ("running", 3, 100): False,  # waits 120 s after its third run
        ("running", 3, 121): True,
        ("running", 9, 3599): False,
        ("running", 9, 3601): True,
        ("completed", 1, 9999): False,
        ("failed", 5, 9999): False,
    }
    ids = {}
    with provider.management() as session:
        for (status, attempts, ago), _ in cases.items():
            tenant = tenants.create_tenant(provider, ("owner",))
            row = Promotion(tenant_id=tenant.id, status=status, attempts=attempts,
                            updated_at=now - timedelta(seconds=ago))
            session.add(row)
            session.flush()
            ids[row.id] = (status, attempts, ago)
        session.commit()
    try:
        with provider.management() as session:
            due = set(promotion.due_for_resume(session, now=now, base_seconds=BASE)) & set(ids)
        assert {ids[i] for i in due} == {case for case, is_due in cases.items() if is_due}
    finally:  # rows with no procedure behind them: no beat of a later test may find them
        with provider.management() as session:
            session.execute(delete(Promotion).where(Promotion.id.in_(list(ids))))
            session.commit()
