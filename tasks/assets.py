"""Tasks of the assets context (queue ``assets``, the CPU-heavy pool)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from domain.assets import cleanup, handlers
from domain.messaging.contracts.assets import ProcessAssetV1
from domain.messaging.handling import HandlerContext
from workers.base import domain_task


@domain_task(contract=ProcessAssetV1)
def process_asset(ctx: HandlerContext, msg: ProcessAssetV1) -> None:
    """Sniff, check and render one uploaded asset."""
    handlers.process_asset(ctx, msg)


@shared_task(name="tasks.assets.clean_up_assets", bind=True)
def clean_up_assets(self: Any) -> dict[str, object]:
    """Remove never-confirmed uploads, files of deleted assets and orphan files (beat)."""
    settings = self.app.settings
    grace = timedelta(seconds=settings.asset_unconfirmed_seconds)
    return cleanup.clean_up(self.app.provider, self.app.ports["storage"],
                            unconfirmed_after=timedelta(seconds=settings.asset_upload_link_seconds) + grace,
                            orphan_after=grace).as_dict()
