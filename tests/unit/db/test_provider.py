"""The data provider's routing cache, id checks and labels, with a fake placement source (no I/O)."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from config.settings import Settings, database_on
from domain.db.provider import TRIAL, DataProvider, Placement, dedicated_key, server_label
from domain.errors import NotFound
from migrations.tenant import rls

SERVER = "postgresql+psycopg://app@db.internal:6543/postgres"


class FakePlacements:
    """Placements held in a dict; ``during_lookup`` runs inside a lookup (a concurrent change)."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Placement] = {}
        self.lookups = 0
        self.during_lookup: Callable[[], None] | None = None

    def __call__(self, session: Session, tenant_id: uuid.UUID) -> Placement | None:
        self.lookups += 1
        found = self.rows.get(tenant_id)
        if self.during_lookup is not None:
            hook, self.during_lookup = self.during_lookup, None
            hook()
        return found


def _provider(placements: FakePlacements, ttl: float = 3600.0, engines: int = 32) -> DataProvider:
    settings = Settings(database_url="postgresql://app@db.internal:6543/allot",
                        trial_database_url="postgresql://app@db.internal:6543/allot_trial",
                        placement_servers=(SERVER,), routing_cache_ttl=ttl, engine_cache_size=engines)
    return DataProvider(settings, placements, lambda session: [])


def test_route_is_cached_until_invalidated() -> None:
    placements, tenant = FakePlacements(), uuid.uuid4()
    placements.rows[tenant] = Placement("trial")
    provider = _provider(placements)
    assert provider.route(tenant).db_key == TRIAL
    placements.rows[tenant] = Placement("dedicated", "db.internal:6543", "acme")
    assert provider.route(tenant).db_key == TRIAL
    assert placements.lookups == 1
    provider.invalidate(tenant)
    assert provider.route(tenant).db_key == "dedicated:acme@db.internal:6543"


def test_lookup_racing_an_invalidation_is_not_cached() -> None:
    placements, tenant = FakePlacements(), uuid.uuid4()
    placements.rows[tenant] = Placement("trial")
    provider = _provider(placements)

    def promote() -> None:  # routing changes and is invalidated while the old row is being read
        placements.rows[tenant] = Placement("dedicated", "db.internal:6543", "acme")
        provider.invalidate(tenant)

    placements.during_lookup = promote
    assert provider.route(tenant).db_key == TRIAL  # what that lookup read
    assert provider.route(tenant).db_key == "dedicated:acme@db.internal:6543"


def test_expired_route_is_read_again() -> None:
    placements, tenant = FakePlacements(), uuid.uuid4()
    placements.rows[tenant] = Placement("trial")
    provider = _provider(placements, ttl=0.0)
    provider.route(tenant)
    provider.route(tenant)
    assert placements.lookups == 2


def test_unknown_and_deleted_tenants_are_not_found() -> None:
    placements, deleted = FakePlacements(), uuid.uuid4()
    placements.rows[deleted] = Placement("deleted")
    provider = _provider(placements)
    for tenant in (uuid.uuid4(), deleted):
        with pytest.raises(NotFound):
            provider.route(tenant)


def test_string_tenant_ids_share_the_uuid_cache_entry_and_garbage_is_refused() -> None:
    placements, tenant = FakePlacements(), uuid.uuid4()
    placements.rows[tenant] = Placement("trial")
    provider = _provider(placements)
    assert provider.route(str(tenant)).tenant_id == tenant  # type: ignore[arg-type]
    provider.route(tenant)
    assert placements.lookups == 1
    with pytest.raises(ValueError):
        provider.route("00000000-0000-0000-0000-00000000000'")  # type: ignore[arg-type]


def test_engine_cache_keeps_at_most_its_size() -> None:
    provider = _provider(FakePlacements(), engines=2)
    engines = [provider.engine(database_on(SERVER, f"db{i}")) for i in range(5)]
    assert provider.engine_count() == 2
    assert provider.engine(database_on(SERVER, "db4")) is engines[4]
    assert provider.engine(database_on(SERVER, "db0")) is not engines[0]


@pytest.mark.parametrize(("url", "label"), [
    ("postgresql+psycopg://app:secret@db.internal:6543/postgres", "db.internal:6543"),
    ("postgresql://app@db.internal/postgres", "db.internal:5432"),
    ("postgresql+psycopg://postgres@/allotment?host=/srv/var/pg", "/srv/var/pg"),
])
def test_server_label_names_the_server_without_credentials(url: str, label: str) -> None:
    assert server_label(url) == label


def test_dedicated_key_resolves_to_the_database_on_its_server() -> None:
    provider = _provider(FakePlacements())
    key = dedicated_key(server_label(SERVER), "acme corp")
    assert provider.url_of(key) == database_on(SERVER, "acme corp")
    with pytest.raises(LookupError):
        provider.url_of(dedicated_key("elsewhere:5432", "acme"))


@pytest.mark.parametrize("role", ["app; DROP TABLE notices", "App", "x'y", ""])
def test_tenant_role_must_be_a_plain_identifier(role: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        rls.grant_role(None, role)  # type: ignore[arg-type] - refused before any SQL
