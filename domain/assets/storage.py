"""The storage port and its two adapters: a folder under ``VAR_DIR`` and an S3 bucket.

Keys are plain strings namespaced by the caller (``tenants/<tenant>/exports/<id>.tar.gz``);
a key with ``..``, a leading ``/``, a backslash or a control character is refused before
any I/O. Files travel as streams: ``put`` reads its source in chunks and ``get`` returns a
readable stream, so neither holds a whole file in memory. ``download_url`` is a signed link
that expires: S3's presigned URL, or, for the local folder, an itsdangerous-signed token
that the web tier's ``/storage/downloads/<token>`` route checks (``LocalStorage.resolve``)
before it streams the file. ``upload_url`` is the other way round: a presigned S3 ``PUT``,
or a signed link to the web tier's ``/storage/uploads/<token>`` (``LocalStorage.resolve_upload``)
that accepts one file of at most the size it was signed for. ``move`` renames a file within
the storage and ``listing`` walks the files under a prefix (for clean-up jobs).
"""
from __future__ import annotations

import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from config.settings import Settings
from domain.errors import DomainError, NotFound
from domain.text import CONTROL

CHUNK_BYTES = 1024 * 1024
MAX_KEY_BYTES = 1024
# S3 refuses presigned URLs that live longer than a week; the local links follow suit.
MAX_LINK_SECONDS = 7 * 24 * 3600
DOWNLOAD_PATH = "/storage/downloads/"
UPLOAD_PATH = "/storage/uploads/"
DEFAULT_TYPE = "application/octet-stream"
_LINK_SALT = "allotment.storage.download"
_UPLOAD_SALT = "allotment.storage.upload"


class InvalidKey(DomainError):
    """A storage key that could escape its namespace or cannot be stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, field="key")


class ObjectMissing(NotFound):
    """Nothing is stored under this key."""

    def __init__(self) -> None:
        super().__init__("nothing is stored under this key", field="key")


class LinkInvalid(NotFound):
    """A download link that was not signed by us, or was altered (404: it names nothing)."""

    def __init__(self) -> None:
        super().__init__("this download link is not valid", field="token")


class LinkExpired(DomainError):
    """A genuine download link past its expiry."""

    status = 410

    def __init__(self) -> None:
        super().__init__("this download link has expired", field="token")


def check_key(key: str) -> str:
    """``key`` if it is a safe storage key; InvalidKey naming the reason otherwise."""
    if not key:
        raise InvalidKey("must not be empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"must be at most {MAX_KEY_BYTES} bytes")
    if CONTROL.search(key):
        raise InvalidKey("must not contain control characters")
    if key.startswith("/") or "\\" in key:
        raise InvalidKey("must be a relative path with / separators")
    if ".." in key:
        raise InvalidKey("must not contain '..'")
    if any(part in ("", ".") for part in key.split("/")):
        raise InvalidKey("must not contain empty or '.' segments")
    return key


def _check_lifetime(expires_in: int) -> int:
    if not 1 <= expires_in <= MAX_LINK_SECONDS:
        raise ValueError(f"a link lives 1 to {MAX_LINK_SECONDS} seconds, not {expires_in}")
    return expires_in


class Storage(Protocol):
    """Files under string keys, moved as streams, downloadable through expiring links."""

    def put(self, key: str, source: IO[bytes], *, content_type: str = DEFAULT_TYPE) -> int:
        """Store what ``source`` yields under ``key`` (replacing it); return its size."""

    def get(self, key: str) -> IO[bytes]:
        """A readable stream of the file (close it); ObjectMissing if there is none."""

    def delete(self, key: str) -> None:
        """Remove the file; nothing happens if there is none."""

    def exists(self, key: str) -> bool:
        """True if a file is stored under ``key``."""

    def size(self, key: str) -> int:
        """The file's size in bytes; ObjectMissing if there is none."""

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A URL that downloads the file for ``expires_in`` seconds, then stops working."""

    def upload_url(self, key: str, *, expires_in: int, size: int,
                   content_type: str = DEFAULT_TYPE) -> PresignedUpload:
        """A request that stores one file of ``size`` bytes under ``key`` until it expires."""

    def copy(self, source: str, target: str) -> None:
        """Store a copy of ``source`` under ``target`` (replacing it); ObjectMissing if there is
        no source."""

    def listing(self, prefix: str) -> Iterator[StoredObject]:
        """Every file whose key starts with ``prefix`` (a folder: ends with ``/``)."""


@dataclass(frozen=True)
class PresignedUpload:
    """How a client stores a file without passing through us: send ``method`` to ``url``
    with ``headers`` and the file as the body."""

    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredObject:
    """A file found by ``listing``."""

    key: str
    size: int
    modified_at: datetime


@dataclass(frozen=True)
class UploadGrant:
    """What a valid local upload link grants: one key, at most ``size`` bytes of one type."""

    key: str
    size: int
    content_type: str


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe folder of keys (``a/b/``); InvalidKey otherwise."""
    if not prefix.endswith("/"):
        raise InvalidKey("a listing prefix must end with '/'")
    check_key(prefix[:-1])
    return prefix


@dataclass(frozen=True)
class Download:
    """What a valid local download link grants: one key, saved under a file name."""

    key: str
    filename: str


class LocalStorage:
    """Files in a folder (the embedded default: ``VAR_DIR/storage``)."""

    def __init__(self, root: Path, secret_key: str, public_url: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.public_url = public_url.rstrip("/")
        self._links = URLSafeSerializer(secret_key, salt=_LINK_SALT)
        self._uploads = URLSafeSerializer(secret_key, salt=_UPLOAD_SALT)
        self._clock = clock

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # check_key already refuses every way out; a symlink planted under root is refused here.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise InvalidKey("must stay inside the storage")
        return path

    def put(self, key: str, source: IO[bytes], *, content_type: str = DEFAULT_TYPE) -> int:
        """Copy ``source`` in chunks to a temporary file beside the target, then rename it."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with partial.open("wb") as target:
                shutil.copyfileobj(source, target, CHUNK_BYTES)
                target.flush()
                os.fsync(target.fileno())
            os.replace(partial, path)  # readers see the old file or the whole new one
        finally:
            partial.unlink(missing_ok=True)
        return path.stat().st_size

    def get(self, key: str) -> IO[bytes]:
        """The file opened for reading."""
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectMissing() from None

    def delete(self, key: str) -> None:
        """Unlink the file if it is there."""
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """True if the file is there."""
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        """The file's size."""
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing()
        return path.stat().st_size

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A link to the web tier's download route carrying a signed, expiring token."""
        check_key(key)
        expires_at = int(self._clock()) + _check_lifetime(expires_in)
        token = self._links.dumps({"k": key, "e": expires_at, "f": filename or key.rsplit("/", 1)[-1]})
        return f"{self.public_url}{DOWNLOAD_PATH}{token}"

    def resolve(self, token: str) -> Download:
        """The file a download token grants; LinkInvalid if forged or altered, LinkExpired if late."""
        try:
            claims = self._links.loads(token)
            key, expires_at, filename = claims["k"], int(claims["e"]), str(claims["f"])
        except (BadSignature, KeyError, TypeError, ValueError):
            raise LinkInvalid() from None
        if expires_at <= self._clock():
            raise LinkExpired()
        if not self.exists(key):
            raise LinkInvalid()
        return Download(key, filename)

    def upload_url(self, key: str, *, expires_in: int, size: int,
                   content_type: str = DEFAULT_TYPE) -> PresignedUpload:
        """A link to the web tier's upload route carrying a signed, expiring token."""
        check_key(key)
        expires_at = int(self._clock()) + _check_lifetime(expires_in)
        token = self._uploads.dumps({"k": key, "e": expires_at, "n": int(size), "t": content_type})
        return PresignedUpload(f"{self.public_url}{UPLOAD_PATH}{token}", "PUT",
                               {"Content-Type": content_type})

    def resolve_upload(self, token: str) -> UploadGrant:
        """The upload a token grants; LinkInvalid if forged or altered, LinkExpired if late."""
        try:
            claims = self._uploads.loads(token)
            key, expires_at = claims["k"], int(claims["e"])
            size, content_type = int(claims["n"]), str(claims["t"])
        except (BadSignature, KeyError, TypeError, ValueError):
            raise LinkInvalid() from None
        if expires_at <= self._clock():
            raise LinkExpired()
        return UploadGrant(check_key(key), size, content_type)

    def copy(self, source: str, target: str) -> None:
        """Copy through a temporary file beside the target, then rename it (as ``put``)."""
        try:
            stream = self._path(source).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectMissing() from None
        with stream:
            self.put(target, stream)

    def listing(self, prefix: str) -> Iterator[StoredObject]:
        """Walk the folder of ``prefix``; files being written (``.*.partial``) are left out."""
        folder = self._path(check_prefix(prefix)[:-1])
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                stat = path.stat()
                yield StoredObject(str(path.relative_to(self.root)), stat.st_size,
                                   datetime.fromtimestamp(stat.st_mtime, UTC))


class S3Storage:
    """Objects in an S3 bucket, on AWS or any S3-compatible endpoint."""

    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "us-east-1",
                 client: Any = None) -> None:
        # Imported here: only the S3 backend needs boto3, and it is slow to import.
        import boto3  # noqa: PLC0415
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        self.bucket = bucket
        # Path-style addressing for S3-compatible endpoints (they rarely serve bucket subdomains).
        config = Config(signature_version="s3v4", retries={"mode": "standard"},
                        s3={"addressing_style": "path" if endpoint_url else "auto"})
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url or None,
                                             region_name=region, config=config)
        # Multipart in 8 MiB parts, 4 at a time: memory stays bounded whatever the file size.
        self._transfer = TransferConfig(multipart_threshold=8 * CHUNK_BYTES,
                                        multipart_chunksize=8 * CHUNK_BYTES, max_concurrency=4)

    def put(self, key: str, source: IO[bytes], *, content_type: str = DEFAULT_TYPE) -> int:
        """Upload in parts (multipart above 8 MiB); return how many bytes were read."""
        counted = _Counting(source)
        self.client.upload_fileobj(counted, self.bucket, check_key(key),
                                   ExtraArgs={"ContentType": content_type}, Config=self._transfer)
        return counted.count

    def get(self, key: str) -> IO[bytes]:
        """The object's body as a stream."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except self.client.exceptions.NoSuchKey:
            raise ObjectMissing() from None
        return response["Body"]  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        """Delete the object (S3 answers the same whether or not it existed)."""
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def exists(self, key: str) -> bool:
        """A HEAD request: True if the object is there."""
        return self._head(key) is not None

    def size(self, key: str) -> int:
        """The object's Content-Length."""
        head = self._head(key)
        if head is None:
            raise ObjectMissing()
        return int(head["ContentLength"])

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A presigned GET URL (S3 checks the signature and the expiry)."""
        params = {"Bucket": self.bucket, "Key": check_key(key)}
        if filename:
            params["ResponseContentDisposition"] = attachment(filename)
        return self.client.generate_presigned_url(  # type: ignore[no-any-return]
            "get_object", Params=params, ExpiresIn=_check_lifetime(expires_in))

    def upload_url(self, key: str, *, expires_in: int, size: int,
                   content_type: str = DEFAULT_TYPE) -> PresignedUpload:
        """A presigned PUT; its signature covers the type and the length, so S3 refuses
        another size (the confirm call checks the size again wherever the file went)."""
        params = {"Bucket": self.bucket, "Key": check_key(key), "ContentType": content_type,
                  "ContentLength": int(size)}
        url = self.client.generate_presigned_url("put_object", Params=params,
                                                 ExpiresIn=_check_lifetime(expires_in))
        return PresignedUpload(url, "PUT", {"Content-Type": content_type})

    def copy(self, source: str, target: str) -> None:
        """A server-side copy (multipart above 8 MiB)."""
        if not self.exists(source):
            raise ObjectMissing()
        self.client.copy({"Bucket": self.bucket, "Key": check_key(source)}, self.bucket,
                         check_key(target), Config=self._transfer)

    def listing(self, prefix: str) -> Iterator[StoredObject]:
        """ListObjectsV2, a page (1,000 keys) at a time."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=check_prefix(prefix))
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], int(item["Size"]), item["LastModified"])

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            return self.client.head_object(Bucket=self.bucket, Key=check_key(key))  # type: ignore[no-any-return]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise


class _Counting:
    """A read-only stream wrapper counting the bytes read through it."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the source, counting."""
        data = self._source.read(size)
        self.count += len(data)
        return data


def _quoted(filename: str) -> str:
    """A file name safe inside a quoted Content-Disposition parameter."""
    return re.sub(r'[\x00-\x1f\x7f"\\]', "_", filename)


def attachment(filename: str) -> str:
    """A Content-Disposition header value downloading ``filename``, in ASCII: a header is
    ISO-8859-1 at most, and S3 refuses a presigned link whose ``response-content-disposition``
    is not (any name in Cyrillic, CJK, or with a curly apostrophe). A name beyond ASCII goes
    as RFC 6266's ``filename*`` (UTF-8, percent-encoded), with an ASCII ``filename`` for
    clients that do not read it, as Werkzeug's ``send_file`` writes it."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    value = f'attachment; filename="{_quoted(fallback) or "download"}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def build_storage(settings: Settings) -> Storage:
    """The storage the settings choose: ``local`` (``VAR_DIR/storage``) or ``s3``."""
    if settings.storage_backend == "s3":
        return S3Storage(settings.s3_bucket, endpoint_url=settings.s3_endpoint_url,
                         region=settings.s3_region)
    return LocalStorage(settings.var_dir / "storage", settings.secret_key, settings.public_url)
