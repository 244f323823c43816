"""Read side of the assets context: an asset and where it stands, lists, a tenant's usage.

Who sees what: a member sees the assets they uploaded; a tenant admin sees every asset of
the tenant. Anything else is "not found", as another tenant's asset is.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.assets.errors import AssetNotFound
from domain.assets.models import (
    FINAL,
    LIVE,
    STATUS_LABELS,  # noqa: F401 - public for pages: the models are private
    Asset,
)


@dataclass(frozen=True)
class Viewer:
    """Who asks: a member, and whether they administer the tenant."""

    user_id: uuid.UUID
    admin: bool


@dataclass(frozen=True)
class RenditionView:
    """One rendition of an asset (its key stays on the server)."""

    name: str
    width: int
    height: int
    bytes: int
    content_type: str


@dataclass(frozen=True)
class AssetView:
    """An asset as its owner (or an admin) sees it."""

    id: uuid.UUID
    owner_id: uuid.UUID
    status: str
    final: bool
    progress: int
    filename: str
    declared_type: str
    sniffed_type: str | None
    kind: str | None
    via: str
    size: int
    sha256: str | None
    reason: str | None
    meta: dict[str, Any]
    renditions: list[RenditionView]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Usage:
    """What a tenant stores against its quota."""

    used_bytes: int
    assets: int


def visible(session: Session, asset_id: uuid.UUID, viewer: Viewer, *, lock: bool = False) -> Asset:
    """The asset if the viewer may see it (the tenant filter already hides other tenants')."""
    query = select(Asset).where(Asset.id == asset_id, Asset.status != "deleted")
    if not viewer.admin:
        query = query.where(Asset.owner_id == viewer.user_id)
    asset = session.scalar(query.with_for_update() if lock else query)
    if asset is None:
        raise AssetNotFound()
    return asset


def view(asset: Asset) -> AssetView:
    """The read model of an asset row."""
    return AssetView(
        id=asset.id, owner_id=asset.owner_id, status=asset.status, final=asset.status in FINAL,
        progress=asset.progress, filename=asset.filename, declared_type=asset.declared_type,
        sniffed_type=asset.sniffed_type, kind=asset.kind, via=asset.via, size=asset.size,
        sha256=asset.sha256, reason=asset.reason, meta=dict(asset.meta or {}),
        renditions=[RenditionView(r["name"], r["width"], r["height"], r["bytes"], r["content_type"])
                    for r in asset.renditions or []],
        created_at=asset.created_at, started_at=asset.started_at, finished_at=asset.finished_at)


def asset_of(session: Session, asset_id: uuid.UUID, viewer: Viewer) -> AssetView:
    """One asset the viewer may see (AssetNotFound otherwise)."""
    return view(visible(session, asset_id, viewer))


def assets_of(session: Session, viewer: Viewer, *, limit: int = 50, offset: int = 0) -> list[AssetView]:
    """The assets the viewer may see, newest first (deleted ones left out)."""
    query = select(Asset).where(Asset.status != "deleted")
    if not viewer.admin:
        query = query.where(Asset.owner_id == viewer.user_id)
    rows = session.scalars(query.order_by(Asset.created_at.desc(), Asset.id).limit(limit).offset(offset))
    return [view(row) for row in rows]


def usage(session: Session, exclude: uuid.UUID | None = None) -> Usage:
    """Bytes and count of the tenant's live assets (what counts against the quota)."""
    query = select(func.coalesce(func.sum(Asset.size), 0), func.count()).where(Asset.status.in_(LIVE))
    if exclude is not None:
        query = query.where(Asset.id != exclude)
    used, count = session.execute(query).one()
    return Usage(int(used), int(count))
