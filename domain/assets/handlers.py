"""Message handlers of the assets context (the ``assets`` pool).

``process_asset`` runs in the transaction of its inbox row. Progress (``processing``, a
percentage) is written on a session of its own and committed at once, so the asset's page
and the API show it while the work goes on; the outcome (``ready`` or ``rejected``), the
owner's notice event and the inbox row commit together. A redelivery after that commit is
skipped by the inbox; one before it (a worker killed half-way) runs again and overwrites
the same keys (domain.assets.processing), so one set of renditions and one notice remain.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import func, update

from domain.assets import processing
from domain.assets.models import WORKING, Asset
from domain.assets.processing import Job, Limits
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.messaging.contracts.assets import AssetProcessedV1, ProcessAssetV1
from domain.messaging.handling import HandlerContext


class _Progress:
    """Writes an asset's progress in transactions of its own (visible at once), at most
    every ``EVERY_SECONDS``: a quick image costs one write, a long video a few."""

    EVERY_SECONDS = 1.0

    def __init__(self, provider: DataProvider, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> None:
        self.provider, self.tenant_id, self.asset_id = provider, tenant_id, asset_id
        self.written_at = 0.0

    def write(self, percent: int, **values: Any) -> bool:
        """Set progress (and ``values``) while the asset is being worked on; False if it
        is not any more (deleted meanwhile)."""
        with self.provider.tenant(self.tenant_id) as session:
            done = session.execute(
                update(Asset).where(Asset.id == self.asset_id, Asset.status.in_(WORKING))
                .values(progress=percent, **values).execution_options(synchronize_session=False))
            session.commit()
        self.written_at = time.monotonic()
        return bool(done.rowcount)

    def __call__(self, percent: int) -> None:
        if time.monotonic() - self.written_at >= self.EVERY_SECONDS:
            self.write(percent)


def process_asset(ctx: HandlerContext, msg: ProcessAssetV1) -> None:
    """Sniff, check and render one uploaded asset; record ready or rejected and tell its owner."""
    asset = ctx.session.get(Asset, msg.asset_id)
    if asset is None or asset.status not in WORKING:
        return  # deleted before it was processed, or already done
    progress = _Progress(ctx.provider, msg.tenant_id, asset.id)
    if not progress.write(5, status="processing", started_at=func.coalesce(Asset.started_at, func.now())):
        return
    settings = ctx.provider.settings
    job = Job(msg.tenant_id, asset.id, asset.filename, asset.declared_type, asset.via,
              asset.size if asset.via == "presigned" else None, tuple(msg.blocked_kinds))
    limits = Limits(settings.asset_rendition_sizes, settings.asset_max_image_pixels,
                    settings.asset_max_upload_bytes)
    outcome = processing.process(ctx.ports["storage"], job, limits, progress)
    if outcome.reason is not None:
        _reject(ctx, asset, outcome, progress)
    else:
        _finish(ctx, asset, outcome)


def _reject(ctx: HandlerContext, asset: Asset, outcome: processing.Outcome, progress: _Progress) -> None:
    # The reason is committed before the files go: a run that dies after deleting them
    # and before its commit leaves the reason for the next run to report.
    reason = outcome.reason
    if reason == processing.MISSING and asset.reason:  # an earlier run deleted it, then died
        reason = asset.reason
    progress.write(100, reason=reason)
    processing.remove_files(ctx.ports["storage"], asset.tenant_id, asset.id)
    _settle(ctx, asset, status="rejected", reason=reason, sha256=outcome.sha256, size=outcome.size,
            sniffed_type=outcome.sniffed_type, kind=outcome.kind, renditions=[], purged_at=utcnow())


def _finish(ctx: HandlerContext, asset: Asset, outcome: processing.Outcome) -> None:
    _settle(ctx, asset, status="ready", reason=None, sha256=outcome.sha256, size=outcome.size,
            sniffed_type=outcome.sniffed_type, kind=outcome.kind, meta=outcome.meta,
            renditions=outcome.renditions)


def _settle(ctx: HandlerContext, asset: Asset, *, status: str, reason: str | None, **values: Any) -> None:
    """Record the outcome unless the asset was deleted meanwhile; emit the owner's notice."""
    done = ctx.session.execute(
        update(Asset).where(Asset.id == asset.id, Asset.status.in_(WORKING))
        .values(status=status, reason=reason, progress=100, finished_at=utcnow(), **values)
        .execution_options(synchronize_session=False))
    if not done.rowcount:
        return  # deleted while processed: clean-up removes what was made
    ctx.emit(AssetProcessedV1(asset_id=asset.id, tenant_id=asset.tenant_id, owner_id=asset.owner_id,
                              filename=asset.filename, status=status, reason=reason))  # type: ignore[arg-type]
