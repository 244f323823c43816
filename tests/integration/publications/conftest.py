"""Fixtures of the publications suites: a stack of their own (fresh databases and a Redis
server started for it, so no other suite's workers take its messages), its web app,
organisations whose members are also employees, crowds of people, and real workers."""
from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from config.settings import Settings
from domain.assets import keys
from domain.assets.models import Asset
from domain.assets.storage import build_storage
from domain.db.provider import DataProvider
from domain.employment import structure
from domain.employment.models import Employee
from domain.iam.models import Membership, Role, TenantUser
from domain.identity.models import User
from domain.messaging.tables import outbox
from domain.notifications.deliveries import IN_PROGRESS
from domain.notifications.models import EmailDelivery, Notice, NotificationPreference
from domain.publications.models import Delivery, Publication
from tests.support import processes, refs, tenants
from tests.support.planes import own_plane, own_redis
from tests.support.services import Services
from tests.support.tenants import Account, TenantWithMembers, bearer
from tests.support.waiting import wait_for
from workers import embedded

# Short leases, a fast relay and short route caches (config/settings.py names).
SETTINGS = {"MESSAGE_LEASE_SECONDS": "5", "RELAY_INTERVAL_SECONDS": "1", "ROUTING_CACHE_TTL": "1",
            "PROMOTION_PURGE_GRACE_SECONDS": "1"}
API = "/api/v1/publications"
PUBLISHED = "publications.PublicationPublished"
PUBLISH = "publications.PublishPublication"


@dataclass
class Plane:
    """The publications suites' stack, its provider and web app, and how to start processes."""

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
    """A trial tenant with a member per built-in role (each also an employee, by account
    email), an access token for each, and their employee ids."""

    tenant: TenantWithMembers
    tokens: dict[str, str]
    employees: dict[str, uuid.UUID]

    @property
    def id(self) -> uuid.UUID:
        """The tenant's id."""
        return self.tenant.id

    def auth(self, role: str = "hr_manager") -> dict[str, str]:
        """The Authorization header of the member holding ``role``."""
        return bearer(self.tokens[role])

    def user(self, role: str) -> uuid.UUID:
        """The user id of the member holding ``role``."""
        return self.tenant.member(role).user_id


@pytest.fixture(scope="session")
def publications_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedRedis]:
    """A Redis server of the publications suites' own."""
    with own_redis(tmp_path_factory.mktemp("publications-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def plane(services: Services, publications_redis: embedded.EmbeddedRedis,
          tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[Plane]:
    """Fresh management and trial databases on the suite's server, the private Redis, the app."""
    var_dir = tmp_path_factory.mktemp("publications-var")
    with own_plane(services, publications_redis, var_dir, **SETTINGS) as own:
        yield Plane(own.settings, own.provider, own.app, own.env, log_dir)


def employ(provider: DataProvider, tenant_id: uuid.UUID, emails: list[str], *,
           unit_id: uuid.UUID | None = None, prefix: str = "Person") -> list[uuid.UUID]:
    """An employee per work email (in ``unit_id``), written straight through a tenant session."""
    people = [Employee(id=uuid.uuid4(), tenant_id=tenant_id, name=f"{prefix} {i:05d}",
                       work_email=email.lower(), org_unit_id=unit_id, status="active")
              for i, email in enumerate(emails)]
    with provider.tenant(tenant_id) as db:
        db.add_all(people)
        db.commit()
    return [p.id for p in people]


def unit(provider: DataProvider, tenant_id: uuid.UUID, name: str,
         parent: uuid.UUID | None = None) -> uuid.UUID:
    """A new org unit (under ``parent``), through employment's service."""
    with provider.tenant(tenant_id) as db:
        view = structure.create_org_unit(db, tenant_id, f"{name} {uuid.uuid4().hex[:4]}", parent)
        db.commit()
    return view.id


@pytest.fixture(scope="session")
def make_org(plane: Plane) -> Callable[..., Org]:
    """Make organisations: a trial tenant, a member per built-in role (each an employee in
    ``unit_id``), their tokens."""
    client = plane.client()

    def make(unit_id: uuid.UUID | None = None) -> Org:
        tenant = tenants.create_tenant(plane.provider, prefix="pub")
        tokens = {role: tenants.access_token(client, tenant.member(role)) for role in tenants.BUILTIN_ROLES}
        roles = list(tenants.BUILTIN_ROLES)
        ids = employ(plane.provider, tenant.id, [tenant.member(r).email for r in roles], unit_id=unit_id)
        return Org(tenant, tokens, dict(zip(roles, ids, strict=True)))

    return make


def add_reader(plane: Plane, org: Org, *, unit_id: uuid.UUID | None = None) -> tuple[Account, uuid.UUID, str]:
    """A new employee member of the org (an account whose email is their work email): the
    account, their employee id and an access token."""
    account = tenants.add_member(plane.provider, org.id, "employee")
    (employee_id,) = employ(plane.provider, org.id, [account.email], unit_id=unit_id, prefix="Reader")
    return account, employee_id, tenants.access_token(plane.client(), account)


def crowd(plane: Plane, tenant_id: uuid.UUID, count: int, *, unit_id: uuid.UUID | None = None,
          emails_off: bool = False) -> dict[uuid.UUID, uuid.UUID]:
    """``count`` employees who are also members (employee role), bulk-written: employee id ->
    user id. With ``emails_off`` they chose no emails about publications (notices only)."""
    tag = uuid.uuid4().hex[:8]
    emails = [f"crowd-{i}-{tag}@example.com" for i in range(count)]
    users = [{"id": uuid.uuid4(), "email": e, "name": f"Crowd {i}", "password_hash": None,
              "is_operator": False, "active": True} for i, e in enumerate(emails)]
    with plane.provider.management() as session:
        role = session.scalar(select(Role.id).where(Role.tenant_id == tenant_id, Role.name == "employee"))
        session.execute(insert(User), users)
        session.execute(insert(TenantUser), [{"tenant_id": tenant_id, "user_id": u["id"], "active": True}
                                             for u in users])
        session.execute(insert(Membership), [{"tenant_id": tenant_id, "user_id": u["id"], "role_id": role}
                                             for u in users])
        if emails_off:
            session.execute(insert(NotificationPreference), [
                {"user_id": u["id"], "category": "publications", "email": False, "in_app": True}
                for u in users])
        session.commit()
    ids = employ(plane.provider, tenant_id, emails, unit_id=unit_id, prefix="Crowd")
    return dict(zip(ids, [u["id"] for u in users], strict=True))


def asset(plane: Plane, tenant_id: uuid.UUID, owner_id: uuid.UUID, *, status: str = "ready",
          filename: str = "handbook.txt", content: bytes = b"the staff handbook\n") -> uuid.UUID:
    """An asset of the tenant as the assets worker leaves it (``ready``: its file stored)."""
    asset_id = uuid.uuid4()
    if status == "ready":
        build_storage(plane.settings).put(keys.original(tenant_id, asset_id), io.BytesIO(content))
    with plane.provider.tenant(tenant_id) as db:
        db.add(Asset(id=asset_id, tenant_id=tenant_id, owner_id=owner_id, status=status, filename=filename,
                     declared_type="text/plain", sniffed_type="text/plain", kind="document", via="stream",
                     size=len(content)))
        db.commit()
    return asset_id


@pytest.fixture(scope="session")
def start_worker(plane: Plane) -> Iterator[Callable[..., processes.Process]]:
    """Start real processes on the plane (workers; beat with ``beat=...`` naming its folder),
    with ``env`` added to the plane's; each stops at the end of the session, or earlier when
    a test stops it."""
    started: list[processes.Process] = []

    def start(name: str = "publications", queues: str = "publications", concurrency: int = 1,
              beat: Path | None = None, **env: str) -> processes.Process:
        process = (processes.celery_beat({**plane.env, **env}, beat) if beat is not None
                   else processes.celery_worker(name, queues, {**plane.env, **env}, plane.log_dir,
                                                concurrency))
        started.append(process)
        return process

    yield start
    processes.stop_all(started)


@pytest.fixture(scope="session")
def workers(start_worker: Callable[..., processes.Process]) -> list[processes.Process]:
    """A publications worker and a notifications worker, shared by the suites."""
    return [start_worker("publications", "publications", concurrency=2),
            start_worker("pub-notifications", "notifications", concurrency=2)]


# --- what the database says ------------------------------------------------------------------

def status_of(plane: Plane, tenant_id: uuid.UUID, publication_id: uuid.UUID | str) -> str | None:
    """Where a publication stands."""
    with plane.provider.tenant(tenant_id) as db:
        return db.scalar(select(Publication.status).where(Publication.id == uuid.UUID(str(publication_id))))


def wait_published(plane: Plane, tenant_id: uuid.UUID, publication_id: uuid.UUID | str,
                   timeout: float = 60) -> None:
    """Wait until the worker sent the publication out."""
    wait_for(lambda: status_of(plane, tenant_id, publication_id) == "published", timeout=timeout,
             message=f"publication {publication_id} published")


def messages(plane: Plane, tenant_id: uuid.UUID, message_type: str, publication_id: uuid.UUID | str
             ) -> list[dict[str, Any]]:
    """The outbox rows of one message type about one publication, in the tenant's database."""
    with plane.provider.tenant(tenant_id) as db:
        rows = db.execute(select(outbox.c.handler, outbox.c.payload, outbox.c.event_id)
                          .where(outbox.c.type == message_type, outbox.c.tenant_id == tenant_id)).all()
    return [{"handler": h, "event_id": e, **p} for h, p, e in rows
            if p["publication_id"] == str(publication_id)]


def deliveries(plane: Plane, tenant_id: uuid.UUID, publication_id: uuid.UUID | str) -> dict[uuid.UUID, Any]:
    """employee id -> (user id, read_at) of a publication's delivery rows."""
    with plane.provider.tenant(tenant_id) as db:
        rows = db.execute(select(Delivery.employee_id, Delivery.user_id, Delivery.read_at).where(
            Delivery.publication_id == uuid.UUID(str(publication_id)))).all()
    return {e: (u, r) for e, u, r in rows}


def notices_of(plane: Plane, tenant_id: uuid.UUID, title: str) -> dict[uuid.UUID, int]:
    """user id -> how many notices of the category publications mention ``title``."""
    with plane.provider.tenant(tenant_id) as db:
        rows = db.execute(select(Notice.user_id, func.count()).where(
            Notice.category == "publications", Notice.title.contains(title)).group_by(Notice.user_id)).all()
    return dict(rows)  # type: ignore[arg-type]


def emails_in_progress(plane: Plane, tenant_id: uuid.UUID) -> int:
    """How many of the tenant's emails the notifications pool has yet to settle (it updates
    their rows until they are sent, failed or throttled)."""
    with plane.provider.management() as session:
        return int(session.scalar(select(func.count()).select_from(EmailDelivery).where(
            EmailDelivery.tenant_id == tenant_id, EmailDelivery.state.in_(IN_PROGRESS))) or 0)


def draft(client: FlaskClient, org: Org, role: str = "hr_manager", **body: Any) -> dict[str, Any]:
    """A new draft through the API (title unique unless given)."""
    body.setdefault("title", f"News {refs.slug('n')}")
    response = client.post(API, json=body, headers=org.auth(role))
    assert response.status_code == 201, response.get_data(as_text=True)[:500]
    return response.json  # type: ignore[no-any-return]


def publish(client: FlaskClient, org: Org, publication_id: str, role: str = "hr_manager",
            **body: Any) -> dict[str, Any]:
    """Publish (or schedule) a draft through the API; the 202 answer's body."""
    response = client.post(f"{API}/{publication_id}/publish", json=body, headers=org.auth(role))
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    return response.json  # type: ignore[no-any-return]
