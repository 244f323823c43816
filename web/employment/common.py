"""What the employment views share: the request's two sessions, query-string parsing, and
the JSON shapes of employees, units and people."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TypeVar

from flask import g, request
from pydantic import BaseModel

from domain.db.provider import ProviderSession
from domain.employment.queries import OrgUnitView
from web.api import FromView, ValidationError
from web.db import management_db, tenant_db
from web.errors import ApiError

M = TypeVar("M", bound=BaseModel)
READ = "employment:read"
WRITE = "employment:write"


def db() -> ProviderSession:
    """The request's session on the caller's tenant database."""
    return tenant_db(g.tenant_id)


def graph_db() -> ProviderSession:
    """The request's session on the relation graph (the management database)."""
    return management_db()


def parse_query(model: type[M]) -> M:
    """The query string as ``model``; 422 naming the parameter and the reason."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in err["loc"]) or "query", "reason": err["msg"]}
                   for err in exc.errors()]
        raise ApiError(422, "validation_failed", details[0]["reason"], details[0]["field"], details) from None


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
