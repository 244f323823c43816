"""JSON API of the notifications context."""
from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from flask import g, jsonify, request
from pydantic import BaseModel

from domain.notifications import queries
from web.auth import requires
from web.db import tenant_db
from web.errors import ApiError
from web.notifications import bp
from web.openapi import doc


class NoticeOut(BaseModel):
    """An in-app notice."""

    id: uuid.UUID
    category: str
    title: str
    body: str
    created_at: datetime
    read: bool


class NoticeList(BaseModel):
    """A page of notices, newest first."""

    items: list[NoticeOut]


def _page_arg(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name, str(default))
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not 0 <= int(raw) <= maximum:
        raise ApiError(422, "validation_failed", f"must be an integer from 0 to {maximum}", name)
    return int(raw)


@bp.get("/api/v1/notifications/notices")
@requires("notifications:read")
@doc("List my notices", responses={200: NoticeList}, auth=True)
def list_notices() -> Any:
    """The caller's notices in the token's tenant, newest first."""
    limit, offset = _page_arg("limit", 50, 200), _page_arg("offset", 0, 1_000_000)
    notices = queries.notices_for(tenant_db(g.tenant_id), g.user_id, limit, offset)
    items = [NoticeOut(**n.__dict__) for n in notices]
    return jsonify(NoticeList(items=items).model_dump(mode="json"))
