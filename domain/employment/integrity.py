"""The dangling-GUID report: edges of the relation graph whose employees are gone.

Deleting an employee removes their edges through ``EmployeeDeleted``; this report (a beat
job) finds any that remain anyway: a GUID in a tenant's edges that is no longer one of
the tenant's employees, or a tenant that no longer has a database. It only reads.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from domain.db.provider import DataProvider
from domain.employment import queries
from domain.errors import NotFound
from domain.graph import queries as graph_queries

log = logging.getLogger(__name__)
CHUNK = 10_000
SAMPLE = 20


@dataclass(frozen=True)
class Dangling:
    """One tenant's dangling GUIDs: how many, and a few of them."""

    tenant_id: uuid.UUID
    count: int
    sample: list[uuid.UUID]
    tenant_gone: bool = False


@dataclass(frozen=True)
class DanglingReport:
    """What the report found across every tenant with edges."""

    tenants_checked: int
    dangling: list[Dangling] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-safe form (the beat task's result)."""
        return {"tenants_checked": self.tenants_checked,
                "dangling": {str(d.tenant_id): {"count": d.count, "tenant_gone": d.tenant_gone,
                                                "sample": [str(g) for g in d.sample]}
                             for d in self.dangling}}


def dangling_edges(provider: DataProvider) -> DanglingReport:
    """Check every tenant's edge GUIDs against its employees; log and return what is left."""
    with provider.management() as graph_db:
        tenants = graph_queries.tenants_with_edges(graph_db)
    found: list[Dangling] = []
    for tenant_id in tenants:
        with provider.management() as graph_db:
            guids = sorted(graph_queries.guids_of(graph_db, tenant_id))
        try:
            missing = _missing(provider, tenant_id, guids)
            gone = False
        except NotFound:  # deleted or offboarded: none of its GUIDs exist any more
            missing, gone = guids, True
        if missing:
            found.append(Dangling(tenant_id, len(missing), missing[:SAMPLE], gone))
            log.warning("relation graph: %s dangling GUID(s) in tenant %s%s, e.g. %s", len(missing),
                        tenant_id, " (the tenant is gone)" if gone else "",
                        ", ".join(str(g) for g in missing[:3]))
    report = DanglingReport(len(tenants), found)
    log.info("relation graph: %s tenant(s) checked, %s with dangling GUIDs", len(tenants), len(found))
    return report


def _missing(provider: DataProvider, tenant_id: uuid.UUID, guids: list[uuid.UUID]) -> list[uuid.UUID]:
    missing: list[uuid.UUID] = []
    with provider.tenant(tenant_id) as db:
        for start in range(0, len(guids), CHUNK):
            chunk = guids[start:start + CHUNK]
            known = queries.existing_ids(db, chunk)
            missing += [g for g in chunk if g not in known]
    return missing
