"""Each tenant's storage policy (management database): its quota in bytes, set by platform
operators (the ``ASSET_QUOTA_BYTES`` default otherwise), and the kinds of file it refuses,
set by its admins (executables by default)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.assets.errors import InvalidUpload
from domain.assets.kinds import DEFAULT_BLOCKED, KINDS
from domain.assets.models import AssetPolicy
from domain.db.base import utcnow
from domain.errors import NotFound
from domain.tenancy import queries as tenancy_queries

MAX_QUOTA_BYTES = 1 << 50  # 1 PiB: past that a quota is a typo


@dataclass(frozen=True)
class Policy:
    """What a tenant may store."""

    quota_bytes: int
    blocked_kinds: tuple[str, ...]
    quota_is_default: bool


def policy_of(session: Session, tenant_id: uuid.UUID, default_quota: int) -> Policy:
    """The tenant's policy, defaults filled in."""
    row = session.get(AssetPolicy, tenant_id)
    quota = row.quota_bytes if row is not None and row.quota_bytes is not None else None
    blocked = DEFAULT_BLOCKED
    if row is not None and row.blocked_kinds is not None:
        blocked = tuple(row.blocked_kinds)
    return Policy(default_quota if quota is None else quota, blocked, quota is None)


def set_quota(session: Session, tenant_id: uuid.UUID, quota_bytes: int | None, *,
              changed_by: uuid.UUID | None) -> None:
    """Set (or, with None, reset to the default) a tenant's quota (operators)."""
    placement = tenancy_queries.placement_of(session, tenant_id)
    if placement is None or placement.status == "deleted":
        raise NotFound("no such tenant", field="tenant_id")
    if quota_bytes is not None and not 0 <= quota_bytes <= MAX_QUOTA_BYTES:
        raise InvalidUpload(f"must be 0 to {MAX_QUOTA_BYTES} bytes", field="quota_bytes")
    _upsert(session, tenant_id, changed_by, quota_bytes=quota_bytes)


def set_blocked_kinds(session: Session, tenant_id: uuid.UUID, blocked: list[str], *,
                      changed_by: uuid.UUID | None) -> tuple[str, ...]:
    """Set the kinds of file a tenant refuses (its admins); the kinds, sorted."""
    unknown = sorted(set(blocked) - set(KINDS))
    if unknown:
        raise InvalidUpload(f"unknown kind {unknown[0]!r}; known: {', '.join(KINDS)}", field="blocked_kinds")
    kinds = tuple(sorted(set(blocked)))
    _upsert(session, tenant_id, changed_by, blocked_kinds=list(kinds))
    return kinds


def _upsert(session: Session, tenant_id: uuid.UUID, changed_by: uuid.UUID | None, **values: object) -> None:
    session.execute(insert(AssetPolicy).values(tenant_id=tenant_id, updated_by=changed_by, **values)
                    .on_conflict_do_update(index_elements=[AssetPolicy.tenant_id],
                                           set_={**values, "updated_by": changed_by, "updated_at": utcnow()}))

