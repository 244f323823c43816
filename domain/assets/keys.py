"""Storage keys of an asset: namespaced by tenant and asset id, never by the user's file name."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

ROOT = "tenants/"
_ASSET_KEY = re.compile(r"^tenants/([0-9a-f-]{36})/assets/([0-9a-f-]{36})/(.+)$")


def folder(tenant_id: uuid.UUID, asset_id: uuid.UUID) -> str:
    """The folder of every file of one asset (ends with ``/``)."""
    return f"{ROOT}{tenant_id}/assets/{asset_id}/"


def original(tenant_id: uuid.UUID, asset_id: uuid.UUID) -> str:
    """Where the uploaded file is kept once it is accepted."""
    return folder(tenant_id, asset_id) + "original"


def upload(tenant_id: uuid.UUID, asset_id: uuid.UUID) -> str:
    """Where a presigned upload lands; moved to ``original`` when processing starts, so a
    late upload through the same link can never replace a file that was checked."""
    return folder(tenant_id, asset_id) + "upload"


def renditions(tenant_id: uuid.UUID, asset_id: uuid.UUID) -> str:
    """The folder of an asset's renditions (ends with ``/``)."""
    return folder(tenant_id, asset_id) + "renditions/"


def rendition(tenant_id: uuid.UUID, asset_id: uuid.UUID, name: str, extension: str) -> str:
    """One rendition: ``renditions/640.webp``, ``renditions/poster.jpg``."""
    return f"{renditions(tenant_id, asset_id)}{name}.{extension}"


@dataclass(frozen=True)
class AssetKey:
    """A key of an asset's folder, taken apart."""

    tenant_id: uuid.UUID
    asset_id: uuid.UUID
    name: str  # "original", "upload", "renditions/640.webp"


def parse(key: str) -> AssetKey | None:
    """The tenant, asset and file of an asset key; None for any other key (exports, ...)."""
    found = _ASSET_KEY.match(key)
    if found is None:
        return None
    try:
        return AssetKey(uuid.UUID(found[1]), uuid.UUID(found[2]), found[3])
    except ValueError:
        return None
