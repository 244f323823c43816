"""JSON API of the notifications context: my notices, their unread count and marking them
read; my preferences; the tenant's email branding."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from domain.notifications import branding, preferences, queries, services
from domain.notifications.preferences import Preferences
from web.api import Paging, parse_json, parse_query
from web.auth import requires
from web.db import management_db, tenant_db
from web.notifications import bp
from web.openapi import doc

READ = "notifications:read"
ADMIN = "tenant:admin"


class NoticeOut(BaseModel):
    """An in-app notice (``email_status``: what became of its email, null if none was sent)."""

    id: uuid.UUID
    category: str
    title: str
    body: str
    created_at: datetime
    read: bool
    email_status: str | None = None


class NoticeList(BaseModel):
    """A page of notices, newest first, with the totals."""

    items: list[NoticeOut]
    total: int
    unread: int
    limit: int
    offset: int


class UnreadOut(BaseModel):
    """How many of my notices are unread."""

    unread: int


class ReadAllOut(BaseModel):
    """How many notices were marked read."""

    marked: int


class Channels(BaseModel):
    """Whether a category reaches me by email and in the app (omitted: unchanged)."""

    model_config = ConfigDict(extra="forbid")

    email: bool | None = None
    in_app: bool | None = None


class PreferencesBody(BaseModel):
    """Changes to my preferences: some categories' channels, and the daily digest."""

    model_config = ConfigDict(extra="forbid")

    categories: dict[str, Channels] = Field(default_factory=dict, max_length=20)
    digest: bool | None = None


class CategoryOut(BaseModel):
    """One category: its channels, and whether it can be switched off at all."""

    category: str
    email: bool
    in_app: bool
    mandatory: bool


class PreferencesOut(BaseModel):
    """My preferences."""

    categories: list[CategoryOut]
    digest: bool


class BrandingBody(BaseModel):
    """How the tenant's emails present themselves (empty or null: the default)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    sender_address: str | None = Field(default=None, max_length=320)
    logo_url: str | None = Field(default=None, max_length=500)


class BrandingOut(BaseModel):
    """The tenant's email branding: the sender name, where replies go, the logo."""

    display_name: str
    sender_address: str | None
    logo_url: str | None


def _preferences(found: Preferences) -> Any:
    out = PreferencesOut(categories=[CategoryOut(**c.__dict__) for c in found.categories],
                         digest=found.digest)
    return jsonify(out.model_dump(mode="json"))


@bp.get("/api/v1/notifications/notices")
@requires(READ)
@doc("List my notices", query=Paging, responses={200: NoticeList}, auth=True)
def list_notices() -> Any:
    """The caller's notices in the token's tenant, newest first (``limit``, ``offset``)."""
    paging = parse_query(Paging)
    page = queries.notice_page(tenant_db(g.tenant_id), g.user_id, paging.limit, paging.offset,
                               management=management_db())
    items = [NoticeOut(**n.__dict__) for n in page.items]
    return jsonify(NoticeList(items=items, total=page.total, unread=page.unread, limit=paging.limit,
                              offset=paging.offset).model_dump(mode="json"))


@bp.get("/api/v1/notifications/notices/unread-count")
@requires(READ)
@doc("How many of my notices are unread", responses={200: UnreadOut}, auth=True)
def unread_count() -> Any:
    """The caller's unread notices in the token's tenant."""
    return jsonify(UnreadOut(unread=queries.unread_count(tenant_db(g.tenant_id), g.user_id)).model_dump())


@bp.post("/api/v1/notifications/notices/<uuid:notice_id>/read")
@requires(READ)
@doc("Mark one of my notices read", responses={204: "read"}, auth=True)
def mark_read(notice_id: uuid.UUID) -> Any:
    """Mark the notice read (404 for a notice that is not the caller's)."""
    services.mark_read(tenant_db(g.tenant_id), g.user_id, notice_id)
    return "", 204


@bp.post("/api/v1/notifications/notices/read-all")
@requires(READ)
@doc("Mark all my notices read", responses={200: ReadAllOut}, auth=True)
def mark_all_read() -> Any:
    """Mark every unread notice of the caller read."""
    return jsonify(ReadAllOut(marked=services.mark_all_read(tenant_db(g.tenant_id), g.user_id)).model_dump())


@bp.get("/api/v1/notifications/preferences")
@requires(READ)
@doc("My notification preferences", responses={200: PreferencesOut}, auth=True)
def get_preferences() -> Any:
    """Every category's channels and the digest."""
    return _preferences(preferences.preferences_of(management_db(), g.user_id))


@bp.put("/api/v1/notifications/preferences")
@requires(READ)
@doc("Change my notification preferences", body=PreferencesBody, responses={200: PreferencesOut}, auth=True)
def set_preferences() -> Any:
    """Switch channels of some categories (mandatory ones stay on: 422) and the digest."""
    body = parse_json(PreferencesBody)
    changes = {name: c.model_dump(exclude_none=True) for name, c in body.categories.items()}
    return _preferences(preferences.set_preferences(management_db(), g.user_id, changes, body.digest))


@bp.get("/api/v1/notifications/branding")
@requires(ADMIN)
@doc("The tenant's email branding", responses={200: BrandingOut}, auth=True)
def get_branding() -> Any:
    """The sender name, reply-to address and logo of the tenant's emails."""
    found = branding.branding_of(management_db(), g.tenant_id)
    return jsonify(BrandingOut(**found.__dict__).model_dump(mode="json"))


@bp.put("/api/v1/notifications/branding")
@requires(ADMIN)
@doc("Set the tenant's email branding", body=BrandingBody, responses={200: BrandingOut}, auth=True)
def set_branding() -> Any:
    """Replace the tenant's email branding."""
    body = parse_json(BrandingBody)
    found = branding.set_branding(management_db(), g.tenant_id, display_name=body.display_name,
                                  sender_address=body.sender_address, logo_url=body.logo_url)
    return jsonify(BrandingOut(**found.__dict__).model_dump(mode="json"))
