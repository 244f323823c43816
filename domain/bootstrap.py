"""Composition root: wire the data provider to tenancy's routing queries (cosmicpython bootstrap)."""
from __future__ import annotations

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.db.routing import RedisRoutingChannel
from domain.tenancy import queries as tenancy_queries


def build_provider(settings: Settings) -> DataProvider:
    """The data provider for one process; routing changes travel over the broker's Redis."""
    return DataProvider(settings, tenancy_queries.placement_of, tenancy_queries.dedicated_databases,
                        RedisRoutingChannel(settings.redis_url))
