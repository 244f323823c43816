"""Fixtures of the employment suites: a stack of their own (fresh databases and a Redis
server started for it, so no other suite's workers ever take its messages), its web app,
organisations with a member per role, generated reporting trees, and real workers."""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.employment import relations, structure
from domain.employment.models import Employee
from domain.graph import queries as graph_queries
from domain.graph import services as graph
from tests.support import processes, tenants
from tests.support.planes import own_plane, own_redis
from tests.support.services import Services
from tests.support.tenants import TenantWithMembers, bearer
from workers import embedded

# Short leases, a fast relay and short route caches (config/settings.py names).
SETTINGS = {"MESSAGE_LEASE_SECONDS": "3", "RELAY_INTERVAL_SECONDS": "1", "ROUTING_CACHE_TTL": "1",
            "PROMOTION_PURGE_GRACE_SECONDS": "1"}
API = "/api/v1/employment"


@dataclass
class Plane:
    """The employment suites' stack, its provider and web app, and how to start processes."""

    settings: Settings
    provider: DataProvider
    app: Flask
    env: dict[str, str]
    log_dir: Path

    def client(self) -> FlaskClient:
        """A fresh test client of the app."""
        return self.app.test_client()


@dataclass(frozen=True)
class Org:
    """A trial tenant with a member per built-in role and an access token for each."""

    tenant: TenantWithMembers
    tokens: dict[str, str]

    @property
    def id(self) -> uuid.UUID:
        """The tenant's id."""
        return self.tenant.id

    def auth(self, role: str = "hr_manager") -> dict[str, str]:
        """The Authorization header of the member holding ``role``."""
        return bearer(self.tokens[role])


@dataclass
class Tree:
    """A generated reporting tree: its people (the first is the top) and who manages whom."""

    people: list[uuid.UUID]
    manager: dict[uuid.UUID, uuid.UUID | None]
    emails: dict[uuid.UUID, str]
    unit_id: uuid.UUID
    reports: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for person, boss in self.manager.items():
            self.reports.setdefault(person, [])
            if boss is not None:
                self.reports.setdefault(boss, []).append(person)

    @property
    def top(self) -> uuid.UUID:
        """The person nobody manages."""
        return self.people[0]

    def chain(self, person: uuid.UUID) -> list[uuid.UUID]:
        """Their manager, that manager's manager, ... up to the top."""
        found: list[uuid.UUID] = []
        boss = self.manager[person]
        while boss is not None:
            found.append(boss)
            boss = self.manager[boss]
        return found

    def under(self, person: uuid.UUID) -> dict[uuid.UUID, int]:
        """Everyone under ``person`` with their depth below them."""
        found: dict[uuid.UUID, int] = {}
        level, depth = [person], 0
        while level:
            depth += 1
            level = [r for p in level for r in self.reports[p]]
            found.update(dict.fromkeys(level, depth))
        return found


@pytest.fixture(scope="session")
def employment_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedRedis]:
    """A Redis server of the employment suites' own."""
    with own_redis(tmp_path_factory.mktemp("employment-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def plane(services: Services, employment_redis: embedded.EmbeddedRedis,
          tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[Plane]:
    """Fresh management and trial databases on the suite's server, the private Redis, the app."""
    var_dir = tmp_path_factory.mktemp("employment-var")
    with own_plane(services, employment_redis, var_dir, **SETTINGS) as own:
        yield Plane(own.settings, own.provider, own.app, own.env, log_dir)


@pytest.fixture(scope="session")
def make_org(plane: Plane) -> Callable[[], Org]:
    """Make organisations: a trial tenant, a member per built-in role, their tokens."""
    client = plane.client()

    def make() -> Org:
        tenant = tenants.create_tenant(plane.provider, prefix="emp")
        tokens = {role: tenants.access_token(client, tenant.member(role))
                  for role in tenants.BUILTIN_ROLES}
        return Org(tenant, tokens)

    return make


@pytest.fixture(scope="session")
def start_worker(plane: Plane) -> Iterator[Callable[..., processes.Process]]:
    """Start real processes on the plane (workers; beat with ``beat=True``); each stops at
    the end of the session, or earlier when a test stops or kills it."""
    started: list[processes.Process] = []

    def start(name: str = "employment", queues: str = "employment", concurrency: int = 1,
              beat: bool = False) -> processes.Process:
        process = (processes.celery_beat(plane.env, plane.log_dir) if beat
                   else processes.celery_worker(name, queues, plane.env, plane.log_dir, concurrency))
        started.append(process)
        return process

    yield start
    processes.stop_all(started)


@pytest.fixture(scope="session")
def relay(start_worker: Callable[..., processes.Process]) -> processes.Process:
    """``celery beat`` on the plane and a worker of the ``relay`` queue: every second the relay
    sweeps every database and sends again what was not completed within its lease."""
    start_worker("employment-relay", "relay")
    return start_worker(beat=True)


def add_people(provider: DataProvider, tenant_id: uuid.UUID, count: int, *, unit_id: uuid.UUID | None,
               prefix: str = "person") -> list[tuple[uuid.UUID, str]]:
    """``count`` employees (id, work email), written straight through a tenant session."""
    tag = uuid.uuid4().hex[:6]
    people = [Employee(id=uuid.uuid4(), tenant_id=tenant_id, name=f"{prefix.title()} {i:05d}",
                       work_email=f"{prefix}-{i}-{tag}@example.com", org_unit_id=unit_id, status="active")
              for i in range(count)]
    with provider.tenant(tenant_id) as db:
        db.add_all(people)
        db.commit()
    return [(p.id, p.work_email) for p in people]


def make_tree(provider: DataProvider, tenant_id: uuid.UUID, size: int, seed: int = 7) -> Tree:
    """``size`` employees in one new org unit, each but the first reporting to an earlier one
    (picked at random: a tree of irregular shape), the edges written through the graph."""
    rng = random.Random(seed)
    with provider.tenant(tenant_id) as db:
        unit = structure.create_org_unit(db, tenant_id, f"Tree {uuid.uuid4().hex[:6]}", None)
        db.commit()
    people = add_people(provider, tenant_id, size, unit_id=unit.id)
    ids = [p for p, _ in people]
    manager: dict[uuid.UUID, uuid.UUID | None] = {ids[0]: None}
    for i in range(1, size):
        manager[ids[i]] = ids[rng.randrange(max(0, i - 200), i)]
    pairs = [(p, m) for p, m in manager.items() if m is not None]
    with provider.tenant(tenant_id) as db, provider.management() as graph_db:
        refused = graph.set_targets(graph_db, tenant_id, relations.REPORTS_TO, pairs,
                                    owned=relations.owned_by(db))
        assert refused == []
        graph_db.commit()
        db.commit()
    return Tree(ids, manager, dict(people), unit.id)


def edge_count(provider: DataProvider, tenant_id: uuid.UUID) -> int:
    """How many edges the tenant has in the relation graph."""
    with provider.management() as graph_db:
        return graph_queries.count(graph_db, tenant_id)
