"""The tenant filter: a tenant session reads and writes only its tenant's rows (DESIGN §3).

Each test runs twice on the trial database: once with the ORM filter alone (no RLS role,
so a superuser connection that Row Level Security does not restrict) and once with RLS
beneath it, as in production.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased

from config.settings import Settings
from domain.bootstrap import build_provider
from domain.db.provider import TRIAL, DataProvider
from domain.notifications.models import Notice
from tests.integration.db.conftest import Tenants, add_notices


@dataclass
class Seeded:
    """Two trial tenants whose notices share one recipient (so joins could cross tenants)."""

    provider: DataProvider
    a: uuid.UUID
    b: uuid.UUID
    a_ids: set[uuid.UUID]
    b_ids: set[uuid.UUID]


@pytest.fixture(params=["filter-only", "filter-and-rls"])
def seeded(request: pytest.FixtureRequest, settings: Settings, tenants: Tenants) -> Iterator[Seeded]:
    """Tenants A (3 notices) and B (2 notices) on the trial database."""
    role = "" if request.param == "filter-only" else settings.tenant_db_role
    provider = build_provider(settings.model_copy(update={"tenant_db_role": role}))
    a, b, user = tenants.trial(), tenants.trial(), uuid.uuid4()
    a_ids = set(add_notices(provider, TRIAL, a, 3, user))
    b_ids = set(add_notices(provider, TRIAL, b, 2, user))
    yield Seeded(provider, a, b, a_ids, b_ids)
    provider.dispose()


def test_select_sees_only_its_tenant(seeded: Seeded) -> None:
    for tenant, own in ((seeded.a, seeded.a_ids), (seeded.b, seeded.b_ids)):
        with seeded.provider.tenant(tenant) as session:
            assert set(session.scalars(select(Notice.id))) == own
            assert session.scalar(select(func.count()).select_from(Notice)) == len(own)
            assert session.scalar(select(func.count(Notice.id))) == len(own)
            assert {n.tenant_id for n in session.scalars(select(Notice))} == {tenant}


def test_joins_aliases_and_subqueries_are_filtered(seeded: Seeded) -> None:
    other = aliased(Notice)
    with seeded.provider.tenant(seeded.a) as session:
        pairs = session.execute(select(Notice.id, other.id)
                                .join(other, other.user_id == Notice.user_id)).all()
        assert {x for pair in pairs for x in pair} == seeded.a_ids
        assert len(pairs) == len(seeded.a_ids) ** 2
        from_subquery = select(func.count()).select_from(select(Notice.id).subquery())
        assert session.scalar(from_subquery) == len(seeded.a_ids)
        everyones = select(func.array_agg(other.id)).scalar_subquery()
        assert set(session.scalar(select(everyones))) == seeded.a_ids


def test_get_by_primary_key_of_another_tenant_finds_nothing(seeded: Seeded) -> None:
    with seeded.provider.tenant(seeded.a) as session:
        assert session.get(Notice, next(iter(seeded.b_ids))) is None
        assert session.get(Notice, next(iter(seeded.a_ids))) is not None


def test_update_and_delete_touch_only_its_tenant(seeded: Seeded) -> None:
    with seeded.provider.tenant(seeded.a) as session:
        assert session.execute(update(Notice).values(title="changed")).rowcount == 3
        assert session.execute(delete(Notice).where(Notice.title == "changed")).rowcount == 3
        session.commit()
    with seeded.provider.unscoped(TRIAL) as session:
        left = session.execute(select(Notice.id, Notice.title)
                               .where(Notice.tenant_id.in_([seeded.a, seeded.b]))).all()
    assert {row.id for row in left} == seeded.b_ids
    assert "changed" not in {row.title for row in left}


def test_new_rows_are_stamped_with_the_tenant(seeded: Seeded) -> None:
    notice = Notice(user_id=uuid.uuid4(), event_id=uuid.uuid4(), category="test", title="stamped")
    with seeded.provider.tenant(seeded.b) as session:
        session.add(notice)
        session.commit()
    with seeded.provider.unscoped(TRIAL) as session:
        assert session.get(Notice, notice.id).tenant_id == seeded.b  # type: ignore[union-attr]


def test_writing_another_tenants_row_is_refused(seeded: Seeded) -> None:
    foreign = Notice(tenant_id=seeded.b, user_id=uuid.uuid4(), event_id=uuid.uuid4(),
                     category="test", title="foreign")
    with seeded.provider.tenant(seeded.a) as session, pytest.raises(PermissionError):
        session.add(foreign)
        session.flush()
    row = {"id": uuid.uuid4(), "tenant_id": seeded.b, "user_id": uuid.uuid4(),
           "event_id": uuid.uuid4(), "category": "test", "title": "bulk", "body": ""}
    for statement, params in ((insert(Notice), [row]), (insert(Notice).values(**row), None),
                              (update(Notice).values(tenant_id=seeded.b), None)):
        with seeded.provider.tenant(seeded.a) as session, pytest.raises(PermissionError):
            session.execute(statement, params)
    with seeded.provider.unscoped(TRIAL) as session:
        count = select(func.count()).select_from(Notice).where(Notice.tenant_id == seeded.b)
        assert session.scalar(count) == len(seeded.b_ids)


def test_moving_or_smuggling_rows_between_tenants_is_refused(seeded: Seeded) -> None:
    with seeded.provider.tenant(seeded.a) as session, pytest.raises(PermissionError):
        session.scalars(select(Notice)).first().tenant_id = seeded.b  # type: ignore[union-attr]
        session.flush()
    with seeded.provider.unscoped(TRIAL) as session:
        smuggled = session.get(Notice, next(iter(seeded.b_ids)))
    with seeded.provider.tenant(seeded.a) as session, pytest.raises(PermissionError):
        session.add(smuggled)  # a detached row of B, now "persistent" in A's session
        smuggled.title = "hijacked"  # type: ignore[union-attr]
        session.flush()


def test_only_the_unscoped_opt_out_sees_every_tenant(seeded: Seeded) -> None:
    mine = Notice.tenant_id.in_([seeded.a, seeded.b])
    with seeded.provider.unscoped(TRIAL) as session:
        assert set(session.scalars(select(Notice.id).where(mine))) == seeded.a_ids | seeded.b_ids
    for tenant in (seeded.a, seeded.b):
        with seeded.provider.tenant(tenant) as session:
            assert set(session.scalars(select(Notice.id).where(mine))) < seeded.a_ids | seeded.b_ids
