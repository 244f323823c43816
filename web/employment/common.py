"""What the employment views share: the request's two sessions and the JSON shapes of
employees, units and people."""
from __future__ import annotations

import uuid
from datetime import date, datetime

from flask import g
from pydantic import BaseModel

from domain.db.provider import ProviderSession
from domain.employment.queries import OrgUnitView
from web.api import FromView
from web.db import management_db, tenant_db

READ = "employment:read"
WRITE = "employment:write"


def db() -> ProviderSession:
    """The request's session on the caller's tenant database."""
    return tenant_db(g.tenant_id)


def graph_db() -> ProviderSession:
    """The request's session on the relation graph (the management database)."""
    return management_db()


class EmployeeOut(FromView):
    """An employee of the tenant."""

    id: uuid.UUID
    name: str
    work_email: str
    job_type_id: uuid.UUID | None
    job_type: str | None
    org_unit_id: uuid.UUID | None
    org_unit: str | None
    start_date: date | None
    end_date: date | None
    status: str
    created_at: datetime
    updated_at: datetime


class PersonOut(FromView):
    """Who someone is, in a list of people."""

    id: uuid.UUID
    name: str
    work_email: str
    job_type: str | None


class OrgUnitOut(BaseModel):
    """An org unit: its parent, its path from the top, and its own employees' count."""

    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    depth: int
    path: list[str]
    employees: int

    @classmethod
    def of(cls, view: OrgUnitView) -> OrgUnitOut:
        """The JSON shape of an org unit."""
        return cls(id=view.id, name=view.name, parent_id=view.parent_id, depth=view.depth,
                   path=list(view.path), employees=view.employees)
