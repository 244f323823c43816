"""What the assets pool does with one uploaded file, storage in and storage out.

1. A presigned upload is copied from its ``upload`` key to ``original``; the upload stays
   until the clean-up after the asset is ready or rejected, so a run that died after
   replacing the original with its cleaned copy leaves the next run the file as confirmed.
   (A second upload through the same link while the asset is being processed is what a
   later run copies, checked like the first; once the asset is settled, it never reaches
   the original.)
2. The original is copied to a local temporary file in chunks, counting and hashing it:
   what is checked is what is kept.
3. Its real type is sniffed from its first bytes; the tenant's policy (executables refused
   by default) and the declared type and name are checked against it.
4. Images get renditions (and lose their metadata), videos a poster frame; other files
   only their size and SHA-256.

Everything written has a deterministic key and is overwritten by a second run, and
renditions a previous run left that this one did not make are removed: processing the
same asset twice leaves one set. A rejected file leaves nothing on the storage.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from domain.assets import images, keys, kinds, video
from domain.assets.errors import Rejected
from domain.assets.storage import CHUNK_BYTES, ObjectMissing, Storage
from domain.errors import Transient

log = logging.getLogger(__name__)
T = TypeVar("T")
# Raised while a file is decoded but not by it: the progress written to the database on the
# way (a lost connection, a lock timeout) or a hiccup the caller retries. Never the file's
# fault, so never a reason to reject it (and delete it): the delivery is retried.
NOT_THE_FILES = (SQLAlchemyError, Transient)

Progress = Callable[[int], None]
MISSING = "the uploaded file is missing"


@dataclass(frozen=True)
class Job:
    """One asset to process, as its row and the tenant's policy describe it."""

    tenant_id: uuid.UUID
    asset_id: uuid.UUID
    filename: str
    declared_type: str
    via: str
    confirmed_size: int | None  # the size a presigned upload was confirmed with
    blocked_kinds: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    """The pool's settings for processing."""

    rendition_sizes: tuple[int, ...]
    max_pixels: int
    max_upload_bytes: int


@dataclass
class Outcome:
    """What processing found and made (``reason`` set when rejected)."""

    size: int = 0
    sha256: str | None = None
    sniffed_type: str | None = None
    kind: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    renditions: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None


def process(storage: Storage, job: Job, limits: Limits, progress: Progress) -> Outcome:
    """Process ``job``; the outcome is ready (``reason`` None) or rejected with the reason."""
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="asset-") as workdir:
        path = Path(workdir) / "original"
        try:
            original = _take_upload(storage, job)
            outcome.size, outcome.sha256 = _fetch(storage, original, path)
            _check(job, limits, outcome, path)
            progress(30)
            _render(storage, job, limits, outcome, path, progress=progress)
        except Rejected as rejected:
            outcome.reason = rejected.reason
    return outcome


def remove_files(storage: Storage, tenant_id: uuid.UUID, asset_id: uuid.UUID) -> int:
    """Delete every file of an asset (original, pending upload, renditions); how many."""
    found = list(storage.listing(keys.folder(tenant_id, asset_id)))
    for stored in found:
        storage.delete(stored.key)
    return len(found)


def _take_upload(storage: Storage, job: Job) -> str:
    """The key of the file to check: the original. A presigned upload is copied there from
    where it arrived, which stays as it is until the clean-up after the asset is ready or
    rejected: a run that dies after replacing the original with its cleaned copy
    (``_replace_original``) leaves the next run the bytes the upload was confirmed with.
    What is checked is read from the original, so it is what is kept, whatever is sent to
    the upload link meanwhile."""
    original = keys.original(job.tenant_id, job.asset_id)
    if job.via == "presigned":
        # Missing: moved to the original by a run before uploads were kept (if that is
        # missing too, _fetch says so).
        with contextlib.suppress(ObjectMissing):
            storage.copy(keys.upload(job.tenant_id, job.asset_id), original)
    return original


def _fetch(storage: Storage, key: str, path: Path) -> tuple[int, str]:
    """Copy a stored file to ``path`` in chunks; its size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    try:
        source = storage.get(key)
    except ObjectMissing:
        raise Rejected(MISSING) from None
    with source, path.open("wb") as target:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
    return size, digest.hexdigest()


def _check(job: Job, limits: Limits, outcome: Outcome, path: Path) -> None:
    """Size, policy and type checks, from the content."""
    if outcome.size > limits.max_upload_bytes:
        raise Rejected(f"the file is larger than the {limits.max_upload_bytes:,}-byte limit of one upload")
    if job.confirmed_size is not None and outcome.size != job.confirmed_size:
        raise Rejected("the file changed after its upload was confirmed")
    with path.open("rb") as stream:
        sniffed = kinds.sniff(stream.read(kinds.HEAD_BYTES))
    outcome.sniffed_type, outcome.kind = sniffed.mime, kinds.kind_for(sniffed, job.filename)
    if outcome.kind in job.blocked_kinds:
        raise Rejected(f"{outcome.kind} files are not allowed by this tenant's policy "
                       f"(the content is {sniffed.mime})")
    problem = kinds.mismatch(job.declared_type, job.filename, sniffed)
    if problem is not None:
        raise Rejected(problem)


def _render(storage: Storage, job: Job, limits: Limits, outcome: Outcome, path: Path, *,
            progress: Progress) -> None:
    made: list[dict[str, Any]] = []
    if outcome.sniffed_type in kinds.IMAGES:
        result = _decoding(job, lambda: images.process_image(
            path, outcome.sniffed_type or "", sizes=limits.rendition_sizes, max_pixels=limits.max_pixels,
            progress=lambda pct: progress(30 + pct * 6 // 10)))
        outcome.meta = result.meta
        if result.cleaned_original is not None:
            _replace_original(storage, job, outcome, result.cleaned_original)
        for picture in result.renditions:
            made.append(_store(storage, job, picture, extension=images.RENDITION_EXTENSION,
                               content_type=images.RENDITION_TYPE))
    elif outcome.sniffed_type in kinds.VIDEOS:
        clip = _decoding(job, lambda: video.process_video(path, poster_edge=max(limits.rendition_sizes),
                                                          max_pixels=limits.max_pixels))
        outcome.meta = clip.meta
        made.append(_store(storage, job, clip.poster, extension=video.POSTER_EXTENSION,
                           content_type=video.POSTER_TYPE))
    _remove_stale_renditions(storage, job, {entry["key"] for entry in made})
    outcome.renditions = made
    progress(95)


def _decoding(job: Job, decode: Callable[[], T]) -> T:
    """``decode()``, which reads only the local copy of the file (Pillow, PyAV): whatever it
    raises is about the file, so the asset is rejected with the reason instead of its
    delivery being re-sent for hours (holding one of the tenant's slots on the queue) while
    it stays "processing". A decoder's own refusal keeps its reason; anything else (a C
    library's error nobody names, the task's soft time limit) is logged for operators."""
    try:
        return decode()
    except (Rejected, *NOT_THE_FILES):
        raise
    except Exception as exc:
        log.exception("the file of asset %s could not be decoded", job.asset_id)
        raise Rejected(f"the file could not be processed ({type(exc).__name__})") from None


def _replace_original(storage: Storage, job: Job, outcome: Outcome, data: bytes) -> None:
    key = keys.original(job.tenant_id, job.asset_id)
    storage.put(key, BytesIO(data), content_type=outcome.sniffed_type or kinds.GENERIC)
    outcome.size, outcome.sha256 = len(data), hashlib.sha256(data).hexdigest()


def _store(storage: Storage, job: Job, picture: images.Picture, *, extension: str,
           content_type: str) -> dict[str, Any]:
    key = keys.rendition(job.tenant_id, job.asset_id, picture.name, extension)
    storage.put(key, BytesIO(picture.data), content_type=content_type)
    return {"name": picture.name, "key": key, "width": picture.width, "height": picture.height,
            "bytes": len(picture.data), "content_type": content_type, "extension": extension}


def _remove_stale_renditions(storage: Storage, job: Job, keep: set[str]) -> None:
    for stored in list(storage.listing(keys.renditions(job.tenant_id, job.asset_id))):
        if stored.key not in keep:
            storage.delete(stored.key)
