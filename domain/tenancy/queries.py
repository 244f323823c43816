"""Read side of the tenancy context, including the routing lookups the data provider uses."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.db.provider import TRIAL, DataProvider, Placement, dedicated_key
from domain.errors import NotFound
from domain.notifications import queries as notifications
from domain.tenancy.models import (
    STATUS_LABELS,  # noqa: F401 - public for pages: the models are private
    Promotion,
    Signup,
    Tenant,
    TenantExport,
)


def placement_of(session: Session, tenant_id: uuid.UUID) -> Placement | None:
    """Where a tenant's data lives (the data provider's routing source)."""
    row = session.execute(select(Tenant.status, Tenant.placement_server, Tenant.database_name)
                          .where(Tenant.id == tenant_id)).first()
    return Placement(row.status, row.placement_server, row.database_name) if row else None


def dedicated_databases(session: Session) -> list[tuple[uuid.UUID, str, str]]:
    """(tenant, server, database) of every tenant with a database of its own."""
    rows = session.execute(select(Tenant.id, Tenant.placement_server, Tenant.database_name)
                           .where(Tenant.database_name.is_not(None),
                                  Tenant.placement_server.is_not(None),
                                  Tenant.status != "deleted"))
    return [(r.id, r.placement_server, r.database_name) for r in rows]


@dataclass(frozen=True)
class Step:
    """One step of a signup as the status page shows it."""

    name: str
    done: bool
    at: datetime | None = None


@dataclass(frozen=True)
class SignupStatus:
    """Where a signup stands."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    slug: str
    status: str
    failure_reason: str | None
    steps: list[Step]

    @property
    def complete(self) -> bool:
        """True when every step is done."""
        return all(step.done for step in self.steps)


def signup_status(provider: DataProvider, signup_id: uuid.UUID) -> SignupStatus:
    """Recorded -> provisioned -> welcomed, read from the rows each step writes."""
    with provider.management() as session:
        row = session.execute(select(Signup, Tenant.slug).join(Tenant, Tenant.id == Signup.tenant_id)
                              .where(Signup.id == signup_id)).first()
        if row is None:
            raise NotFound("no such signup", field="signup_id")
        signup, slug = row
    welcomed_at = None
    if signup.status == "provisioned":
        with provider.tenant(signup.tenant_id) as tenant_session:
            welcomed_at = notifications.first_notice_at(tenant_session, "welcome")
    steps = [Step("recorded", True, signup.created_at),
             Step("provisioned", signup.status == "provisioned", signup.provisioned_at),
             Step("welcomed", welcomed_at is not None, welcomed_at)]
    return SignupStatus(signup.id, signup.tenant_id, slug, signup.status,
                        signup.failure_reason, steps)


@dataclass(frozen=True)
class TenantRow:
    """A tenant as operators list it."""

    id: uuid.UUID
    slug: str
    name: str
    status: str
    database: str  # as people read it: "trial" or "<database>@<server>"
    db_key: str    # as the data provider names it


def list_tenants(session: Session) -> list[TenantRow]:
    """Every tenant with where its data lives."""
    rows = session.scalars(select(Tenant).order_by(Tenant.created_at))
    return [TenantRow(t.id, t.slug, t.name, t.status,
                      f"{t.database_name}@{t.placement_server}" if t.database_name else "trial",
                      dedicated_key(t.placement_server, t.database_name)
                      if t.database_name and t.placement_server else TRIAL)
            for t in rows]


def tenant_id_by_slug(session: Session, slug: str) -> uuid.UUID | None:
    """The id of the live tenant with this slug, if any."""
    return session.scalar(select(Tenant.id).where(Tenant.slug == slug, Tenant.status != "deleted"))


def reseller_of(session: Session, tenant_id: uuid.UUID) -> uuid.UUID | None:
    """The reseller that sold ``tenant_id``, if any."""
    return session.scalar(select(Tenant.reseller_id).where(Tenant.id == tenant_id))


def tenants_of_reseller(session: Session, reseller_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str, str]]:
    """(id, slug, name, plan) of every tenant a reseller sold."""
    rows = session.execute(select(Tenant.id, Tenant.slug, Tenant.name, Tenant.plan)
                           .where(Tenant.reseller_id == reseller_id).order_by(Tenant.slug))
    return [tuple(r) for r in rows]  # type: ignore[misc]


def slugs_of(session: Session, tenant_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The slug of each tenant in ``tenant_ids``."""
    if not tenant_ids:
        return {}
    return dict(session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(tenant_ids))).all())


def name_of(session: Session, tenant_id: uuid.UUID) -> str:
    """A tenant's display name."""
    name = session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
    if name is None:
        raise NotFound("no such tenant", field="tenant_id")
    return name


@dataclass(frozen=True)
class Overview:
    """A tenant as its admin page shows it."""

    id: uuid.UUID
    slug: str
    name: str
    status: str
    plan: str
    database: str  # "trial" or "<database>@<server>"


def overview(session: Session, tenant_id: uuid.UUID) -> Overview:
    """The tenant's name, plan, status and where its data lives."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant.status == "deleted":
        raise NotFound("no such tenant", field="tenant")
    database = f"{tenant.database_name}@{tenant.placement_server}" if tenant.database_name else "trial"
    return Overview(tenant.id, tenant.slug, tenant.name, tenant.status, tenant.plan, database)


# A promotion's or an export's states while it is not finished.
UNDER_WAY = ("pending", "running")


def promotion_under_way(session: Session, tenant_id: uuid.UUID) -> uuid.UUID | None:
    """The tenant's promotion that is pending or running, if any."""
    return session.scalar(select(Promotion.id).where(Promotion.tenant_id == tenant_id,
                                                     Promotion.status.in_(UNDER_WAY)))


def offboarding_under_way(session: Session, tenant_id: uuid.UUID) -> uuid.UUID | None:
    """The tenant's offboarding that is pending or running, if any."""
    return session.scalar(select(TenantExport.id).where(
        TenantExport.tenant_id == tenant_id, TenantExport.kind == "offboard",
        TenantExport.status.in_(UNDER_WAY)))
