"""Messages of the assets context."""
from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from domain.messaging.contracts import Contract


class ProcessAssetV1(Contract):
    """Command: process an uploaded asset on the ``assets`` pool (sniff, check, renditions).

    ``blocked_kinds`` is the tenant's policy when the upload was accepted.
    """

    message_type: ClassVar[str] = "assets.ProcessAsset"
    kind: ClassVar[Literal["command", "event"]] = "command"

    asset_id: uuid.UUID
    tenant_id: uuid.UUID
    blocked_kinds: list[str]


class AssetProcessedV1(Contract):
    """Event: an asset is ready, or was rejected (with the reason); its owner is told."""

    message_type: ClassVar[str] = "assets.AssetProcessed"

    asset_id: uuid.UUID
    tenant_id: uuid.UUID
    owner_id: uuid.UUID
    filename: str
    status: Literal["ready", "rejected"]
    reason: str | None = None
