"""A suite's own plane: fresh databases on the suite's PostgreSQL server, a Redis server of its
own (so no other suite's worker takes its messages), and the web app on them."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from config.settings import Settings, database_on, load_settings
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import DataProvider
from domain.tenancy.models import Promotion, Tenant
from tests.support.apps import web_app
from tests.support.services import Services, create_stack, drop_stack
from workers import embedded


@dataclass(frozen=True)
class OwnPlane:
    """What a suite builds its fixtures on."""

    settings: Settings
    provider: DataProvider
    app: Flask
    env: dict[str, str]


@contextmanager
def own_redis(folder: Path) -> Iterator[embedded.EmbeddedRedis]:
    """A Redis server in ``folder`` on a free port, stopped on exit."""
    server = embedded.start_redis(folder, embedded.free_port())
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def own_plane(services: Services, redis: embedded.EmbeddedRedis, var_dir: Path,
              **settings: str) -> Iterator[OwnPlane]:
    """Fresh management and trial databases, ``redis`` as broker, the app; on exit the
    databases are dropped, dedicated ones made by promotions included."""
    stack = create_stack(Services(services.server_url, f"redis://127.0.0.1:{redis.port}"), redis_db=0)
    env = stack.env(VAR_DIR=str(var_dir), **settings)
    loaded = load_settings(env)
    provider = build_provider(loaded)
    try:
        with web_app(loaded) as app:
            yield OwnPlane(loaded, provider, app, env)
    finally:
        drop_dedicated(provider)
        provider.dispose()
        drop_stack(stack)


def drop_dedicated(provider: DataProvider) -> None:
    """Drop the databases promotions made for the plane's tenants."""
    with provider.management() as session:
        placed = session.execute(select(Tenant.placement_server, Tenant.database_name)
                                 .where(Tenant.database_name.is_not(None))).all()
        placed += session.execute(select(Promotion.server, Promotion.database)
                                  .where(Promotion.database.is_not(None))).all()
    for server, name in set(placed):
        migrate.drop_database(database_on(provider.server_url(server), name))
