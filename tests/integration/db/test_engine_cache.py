"""The bounded engine cache: a few open pools however many databases are touched (DESIGN §3)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from config.settings import Settings, database_name
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider, dedicated_key
from tests.integration.db.conftest import MakeDatabase, connections_to, placement_label
from tests.support.services import Services
from tests.support.waiting import wait_for


@pytest.fixture
def small_cache(settings: Settings) -> Iterator[DataProvider]:
    """A provider that keeps at most two engines."""
    built = build_provider(settings.model_copy(update={"engine_cache_size": 2}))
    yield built
    built.dispose()


def _key(provider: DataProvider, url: str) -> str:
    return dedicated_key(placement_label(provider), database_name(url))


def _touch(provider: DataProvider, url: str) -> None:
    with provider.unscoped(_key(provider, url)) as session:
        assert session.scalar(text("SELECT 1")) == 1


def test_five_databases_never_hold_more_than_two_engines(small_cache: DataProvider, services: Services,
                                                         make_database: MakeDatabase) -> None:
    urls = [make_database() for _ in range(5)]
    pools = []
    for url in urls:
        _touch(small_cache, url)
        pools.append(small_cache.engine(small_cache.url_of(_key(small_cache, url))).pool)
        assert small_cache.engine_count() <= 2
    assert small_cache.engine_count() == 2
    for url, pool in zip(urls[:3], pools[:3], strict=True):  # evicted: pool emptied, server told
        assert pool.checkedin() == 0
        wait_for(lambda url=url: connections_to(url, services) == 0, timeout=60,
                 message=f"{database_name(url)} to have no connections")
    for url in urls[3:]:  # the two cached engines keep their idle connection
        assert connections_to(url, services) == 1


def test_session_outliving_its_engines_eviction(small_cache: DataProvider, services: Services,
                                               make_database: MakeDatabase) -> None:
    first, *others = [make_database() for _ in range(3)]
    with small_cache.unscoped(_key(small_cache, first)) as session:
        session.execute(text("SELECT 1"))  # holds a connection of the first engine
        for url in others:
            _touch(small_cache, url)
        assert small_cache.engine_count() == 2  # the first engine was evicted meanwhile
        assert session.scalar(text("SELECT current_database()")) == database_name(first)
        session.commit()
        assert session.scalar(text("SELECT 2")) == 2  # a new transaction still works
    # Its connection is closed on return instead of idling in a pool nobody tracks.
    wait_for(lambda: connections_to(first, services) == 0, timeout=60,
             message="the evicted engine's connection to close")
