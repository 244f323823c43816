"""Refusals of the assets context (the web tier maps each to its status, field and reason)."""
from __future__ import annotations

from domain.errors import Conflict, DomainError, NotFound


class InvalidUpload(DomainError):
    """An upload the request itself gets wrong: its name, its declared type or size (422)."""

    status = 422


class FileTooLarge(DomainError):
    """More bytes than one upload may carry (413)."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the {limit:,}-byte limit of one upload", field="file")
        self.limit = limit


class QuotaExceeded(DomainError):
    """The upload would take the tenant past its storage quota (413)."""

    status = 413

    def __init__(self, used: int, quota: int, size: int) -> None:
        super().__init__(f"storing {size:,} more bytes would exceed the tenant's quota "
                         f"({used:,} of {quota:,} bytes used)", field="file")


class AssetNotFound(NotFound):
    """No such asset for this caller (another tenant's or another member's is not found)."""

    def __init__(self) -> None:
        super().__init__("no such asset", field="asset_id")


class NotYetUploaded(Conflict):
    """A confirm before the file arrived at the upload link (409)."""

    def __init__(self) -> None:
        super().__init__("nothing was uploaded to this asset's upload link yet", field="file")


class NotReady(Conflict):
    """A download of an asset that is not (or no longer) ready (409)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the asset is {status}, not ready to download", field="asset_id")


class UnknownRendition(NotFound):
    """A rendition the asset does not have."""

    def __init__(self, known: list[str]) -> None:
        super().__init__(f"the asset has no such rendition; it has {', '.join(known) or 'none'}",
                         field="rendition")


class Rejected(Exception):
    """Content the assets pool refuses (the asset ends ``rejected``), with the reason its
    owner is told. Not a request error: it is found by the worker, after the upload."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
