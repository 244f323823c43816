"""The local storage's upload links (``PUT /storage/uploads/<token>``): what a presigned S3
URL is for a bucket, the web tier is for the embedded folder. The token names the key, the
most bytes and the type; the body is streamed to the storage and refused past that size."""
from __future__ import annotations

from typing import Any

from flask import request

from domain.assets.storage import LocalStorage
from domain.assets.streams import Metered
from web.assets import bp, uploads
from web.errors import ApiError
from web.storage import storage


@bp.put("/storage/uploads/<token>")
def receive_stored_file(token: str) -> Any:
    """Store the body under the key a valid, unexpired upload link names (no session: the
    link is the permission)."""
    store = storage()
    if not isinstance(store, LocalStorage):  # S3 upload links go to the bucket, not here
        raise ApiError(404, "not_found", "this upload link is not valid", "token")
    grant = store.resolve_upload(token)
    uploads.allow_body(grant.size)
    store.put(grant.key, Metered(request.stream, grant.size),  # type: ignore[arg-type] - a readable
              content_type=grant.content_type)
    return "", 200


# Authorised by its signed token, not by cookies: no CSRF token to check (web/__init__.py).
receive_stored_file.checks_own_csrf = True  # type: ignore[attr-defined]
