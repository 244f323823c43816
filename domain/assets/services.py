"""Use cases of the assets context: receive an upload, hand out an upload link and take its
confirm, delete an asset, hand out a download link.

An accepted upload is one transaction on the tenant's database: the asset row
(``uploaded``) and its ``ProcessAssetV1`` command in the outbox. The quota is checked
against the tenant's live assets counted in that database, under a transaction-level
advisory lock of the tenant, so two uploads cannot both take the last bytes. A refused
upload leaves nothing on the storage: what was stored for it is deleted before the
refusal is raised.
"""
from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from domain.assets import keys, kinds, names, processing
from domain.assets.errors import (
    FileTooLarge,
    InvalidUpload,
    NotReady,
    NotYetUploaded,
    QuotaExceeded,
    UnknownRendition,
)
from domain.assets.models import Asset
from domain.assets.policies import Policy
from domain.assets.queries import Usage, Viewer, usage, visible
from domain.assets.storage import ObjectMissing, PresignedUpload, Storage
from domain.assets.streams import Metered, Readable
from domain.db.base import utcnow
from domain.messaging import outbox
from domain.messaging.contracts.assets import ProcessAssetV1

log = logging.getLogger(__name__)

MAX_TYPE_CHARS = 255


@dataclass(frozen=True)
class Upload:
    """What an uploader says about a file: its name and type (and size, when known)."""

    filename: str
    content_type: str | None
    size: int | None = None


@dataclass(frozen=True)
class Uploader:
    """Who uploads, in which tenant, under which policy and limit."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    policy: Policy
    max_bytes: int
    correlation_id: str | None = None


@dataclass(frozen=True)
class StartedUpload:
    """An asset waiting for its file at ``upload`` (until ``expires_at``), then a confirm."""

    asset_id: uuid.UUID
    upload: PresignedUpload
    expires_at: datetime


@dataclass(frozen=True)
class Link:
    """A signed download link and until when it works."""

    url: str
    expires_at: datetime
    filename: str


def quota_lock_key(tenant_id: uuid.UUID) -> int:
    """The advisory lock (bigint) around a tenant's quota check and its write."""
    return int.from_bytes(hashlib.sha256(f"allotment.assets.quota:{tenant_id}".encode()).digest()[:8],
                          "big", signed=True)


# A media type's type and subtype as HTTP writes them (RFC 9110's token, lower-cased): what
# is declared is sent on as a Content-Type header, which S3 signs and must take as written.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+")


def _declared(upload: Upload) -> tuple[str, str]:
    """The checked file name and the declared content type."""
    filename = names.checked_filename(upload.filename)
    raw = (upload.content_type or "").strip()
    if len(raw) > MAX_TYPE_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise InvalidUpload("not a content type", field="content_type")
    declared = kinds.normalise(raw)
    if len(declared) > MAX_TYPE_CHARS:  # lower-casing can lengthen it ("İ" becomes two characters)
        raise InvalidUpload("not a content type", field="content_type")
    if declared == kinds.GENERIC:  # nothing specific said: the name's extension speaks for it
        declared = kinds.type_of_name(filename) or kinds.GENERIC
    if "/" not in declared:
        raise InvalidUpload("not a content type (type/subtype)", field="content_type")
    if not _MEDIA_TYPE.fullmatch(declared):  # it travels as a header: to S3, in a signed upload link
        raise InvalidUpload("not a content type (type/subtype, letters, digits and !#$&^_.+-)",
                            field="content_type")
    return filename, declared


def _check_size(size: int | None, uploader: Uploader) -> None:
    if size is not None and size > uploader.max_bytes:
        raise FileTooLarge(uploader.max_bytes)


def _check_quota(session: Session, uploader: Uploader, size: int, exclude: uuid.UUID | None) -> Usage:
    """Take the tenant's quota lock (until commit) and refuse ``size`` more bytes past the quota."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": quota_lock_key(uploader.tenant_id)})
    used = usage(session, exclude=exclude)
    if used.used_bytes + size > uploader.policy.quota_bytes:
        raise QuotaExceeded(used.used_bytes, uploader.policy.quota_bytes, size)
    return used


def _precheck_quota(session: Session, uploader: Uploader, size: int | None) -> None:
    """Refuse early, before any byte is stored, when the announced size cannot fit."""
    if size is not None:
        used = usage(session)
        if used.used_bytes + size > uploader.policy.quota_bytes:
            raise QuotaExceeded(used.used_bytes, uploader.policy.quota_bytes, size)


def _queue(session: Session, asset: Asset, uploader: Uploader) -> None:
    outbox.record(session, ProcessAssetV1(asset_id=asset.id, tenant_id=uploader.tenant_id,
                                          blocked_kinds=list(uploader.policy.blocked_kinds)),
                  tenant_id=uploader.tenant_id, correlation_id=uploader.correlation_id)


def receive_upload(session: Session, storage: Storage, source: Readable, upload: Upload,
                   uploader: Uploader) -> Asset:
    """Stream a file into the storage and record it (``uploaded``) with its processing command.

    The row is written first, so the tenant's write gate is passed before a byte is read
    (a tenant moving to its own database makes the request wait, not lose its stream).
    """
    filename, declared = _declared(upload)
    _check_size(upload.size, uploader)
    _precheck_quota(session, uploader, upload.size)
    asset = Asset(id=uuid.uuid4(), tenant_id=uploader.tenant_id, owner_id=uploader.user_id,
                  status="uploaded", progress=0, filename=filename, declared_type=declared, via="stream",
                  size=0, meta={}, renditions=[])
    session.add(asset)
    session.flush()
    key = keys.original(uploader.tenant_id, asset.id)
    metered = Metered(source, uploader.max_bytes)
    try:
        storage.put(key, metered, content_type=declared)  # type: ignore[arg-type] - a readable
        _check_quota(session, uploader, metered.size, exclude=asset.id)
    except BaseException:
        storage.delete(key)
        raise
    asset.size, asset.sha256, asset.confirmed_at = metered.size, metered.sha256, utcnow()
    _queue(session, asset, uploader)
    return asset


def start_upload(session: Session, storage: Storage, upload: Upload, uploader: Uploader, *,
                 link_seconds: int) -> StartedUpload:
    """Record an asset awaiting its file (its announced size reserved against the quota)
    and hand out a presigned upload link for exactly that size."""
    filename, declared = _declared(upload)
    if upload.size is None or upload.size < 0:
        raise InvalidUpload("the file's size in bytes is required", field="size")
    _check_size(upload.size, uploader)
    asset = Asset(id=uuid.uuid4(), tenant_id=uploader.tenant_id, owner_id=uploader.user_id,
                  status="awaiting_upload", progress=0, filename=filename, declared_type=declared,
                  via="presigned", size=upload.size, meta={}, renditions=[])
    session.add(asset)
    session.flush()
    _check_quota(session, uploader, upload.size, exclude=asset.id)
    link = storage.upload_url(keys.upload(uploader.tenant_id, asset.id), expires_in=link_seconds,
                              size=upload.size, content_type=declared)
    return StartedUpload(asset.id, link, utcnow() + timedelta(seconds=link_seconds))


def confirm_upload(session: Session, storage: Storage, asset_id: uuid.UUID, uploader: Uploader) -> Asset:
    """The file is at the upload link: check its real size against the limit and the quota,
    then queue it. Confirming twice is harmless; someone else's upload is not found."""
    asset = visible(session, asset_id, Viewer(uploader.user_id, admin=False), lock=True)
    if asset.status != "awaiting_upload":
        return asset  # confirmed before: the same answer again
    key = keys.upload(uploader.tenant_id, asset.id)
    try:
        size = storage.size(key)
    except ObjectMissing:
        raise NotYetUploaded() from None
    try:
        _check_size(size, uploader)
        _check_quota(session, uploader, size, exclude=asset.id)
    except (FileTooLarge, QuotaExceeded):
        storage.delete(key)
        raise
    asset.status, asset.size, asset.confirmed_at = "uploaded", size, utcnow()
    _queue(session, asset, uploader)
    return asset


def delete_asset(session: Session, asset_id: uuid.UUID, viewer: Viewer) -> None:
    """Mark an asset deleted (its bytes stop counting); once that is committed, the caller
    removes its files (``remove_deleted_files``), beat's clean-up being the backstop."""
    asset = visible(session, asset_id, viewer, lock=True)
    asset.status, asset.deleted_at = "deleted", utcnow()


def remove_deleted_files(storage: Storage, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> None:
    """Remove a deleted asset's files, after its deletion committed: download links already
    handed out (a link is valid for minutes, up to a week if so configured) stop working now,
    not at the next clean-up. A storage that fails is left to the clean-up."""
    try:
        processing.remove_files(storage, tenant_id, asset_id)
    except Exception:  # any storage failure: the clean-up job removes them later
        log.warning("the files of deleted asset %s are left to the clean-up", asset_id, exc_info=True)


def download_link(session: Session, storage: Storage, asset_id: uuid.UUID, viewer: Viewer, *,
                  rendition: str, link_seconds: int) -> Link:
    """A signed, expiring link to the original (``rendition="original"``) or a rendition of
    a ready asset the viewer may see."""
    asset = visible(session, asset_id, viewer)
    if asset.status != "ready":
        raise NotReady(asset.status)
    if rendition == "original":
        key, filename = keys.original(asset.tenant_id, asset.id), asset.filename
    else:
        found = next((r for r in asset.renditions or [] if r["name"] == rendition), None)
        if found is None:
            raise UnknownRendition(["original"] + [r["name"] for r in asset.renditions or []])
        key = found["key"]
        filename = names.rendition_filename(asset.filename, found["name"], found["extension"])
    url = storage.download_url(key, expires_in=link_seconds, filename=filename)
    return Link(url, utcnow() + timedelta(seconds=link_seconds), filename)


def tenant_usage(session: Session) -> Usage:
    """What the session's tenant stores against its quota."""
    return usage(session)
