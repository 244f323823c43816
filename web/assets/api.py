"""JSON API of the assets context.

Two ways in: the file as the request body (``POST /api/v1/assets?filename=...``, streamed
to the storage, bounded), or an upload link (``POST /api/v1/assets/uploads``) the client
sends the file to directly, then ``POST /api/v1/assets/<id>/confirm``. Either way the
answer is 202 with the asset's status URL, where processing shows its progress. Members
see their own assets; tenant admins see every asset, the usage and the policy.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from flask import g, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from domain.assets import policies, queries, services
from domain.assets.kinds import KINDS
from domain.assets.queries import AssetView
from domain.assets.services import Upload
from web.api import Paging, Query, accepted, parse_json, parse_query
from web.assets import bp, flows, uploads
from web.assets.flows import ADMIN, UPLOAD
from web.auth import operator_required, requires
from web.db import management_db, tenant_db
from web.openapi import doc
from web.storage import storage


class Accepted(BaseModel):
    """The upload is recorded and queued for processing; follow the status URL."""

    id: uuid.UUID
    status_url: str


class UploadQuery(Query):
    """The name of the file sent as the request body (its type is the Content-Type)."""

    filename: str = Field(description="the file's name, not a path (checked by the assets context)")


class UploadBody(BaseModel):
    """A file about to be sent to an upload link: its name, type and exact size."""

    model_config = ConfigDict(extra="forbid")

    filename: StrictStr = Field(max_length=1000)
    content_type: StrictStr = Field(max_length=255)
    size: StrictInt = Field(ge=0)


class UploadLink(BaseModel):
    """Send the file as the body of ``method url`` with ``headers``, then confirm."""

    id: uuid.UUID
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime
    confirm_url: str
    status_url: str


class RenditionOut(BaseModel):
    """A rendition of an asset."""

    name: str
    width: int
    height: int
    bytes: int
    content_type: str


class AssetOut(BaseModel):
    """An asset and where its processing stands."""

    id: uuid.UUID
    owner_id: uuid.UUID
    status: str
    final: bool
    progress: int
    filename: str
    declared_type: str
    sniffed_type: str | None
    kind: str | None
    via: str
    size: int
    sha256: str | None
    reason: str | None
    meta: dict[str, Any]
    renditions: list[RenditionOut]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class AssetList(BaseModel):
    """Assets the caller may see, newest first."""

    items: list[AssetOut]


class LinkOut(BaseModel):
    """A signed download link, working until ``expires_at``."""

    url: str
    expires_at: datetime
    filename: str


class RenditionQuery(Query):
    """Which file of the asset: its original or one of its renditions, by name."""

    rendition: str = Field(default="original", pattern=r"^[a-z0-9]{1,20}$")


class UsageOut(BaseModel):
    """What the tenant stores against its quota."""

    used_bytes: int
    quota_bytes: int
    assets: int
    blocked_kinds: list[str]


class PolicyBody(BaseModel):
    """The kinds of file the tenant refuses."""

    model_config = ConfigDict(extra="forbid")

    blocked_kinds: list[Literal[KINDS]] = Field(max_length=len(KINDS))  # type: ignore[valid-type]


class QuotaBody(BaseModel):
    """A tenant's quota in bytes (null: the platform default)."""

    model_config = ConfigDict(extra="forbid")

    quota_bytes: StrictInt | None = Field(ge=0, le=policies.MAX_QUOTA_BYTES)


def asset_json(asset: AssetView) -> dict[str, Any]:
    """The API shape of an asset."""
    fields = {name: getattr(asset, name) for name in AssetOut.model_fields if name != "renditions"}
    renditions = [RenditionOut(**r.__dict__) for r in asset.renditions]
    return AssetOut(**fields, renditions=renditions).model_dump(mode="json")


@bp.post("/api/v1/assets")
@requires(UPLOAD)
@doc("Upload a file as the request body (?filename=...; Content-Type: its type)", query=UploadQuery,
     responses={202: Accepted, 413: "over the size limit or the quota", 422: "bad file name or type"},
     auth=True)
def upload_asset() -> Any:
    """Stream the body to the storage as a new asset and queue its processing; 202."""
    query = parse_query(UploadQuery)
    uploads.allow_body(flows.settings().asset_max_upload_bytes)
    upload = Upload(query.filename, request.headers.get("Content-Type"), request.content_length)
    asset = services.receive_upload(tenant_db(flows.tenant_id()), storage(), request.stream, upload,
                                    flows.uploader())
    return accepted(url_for("assets.asset_status", asset_id=asset.id), id=str(asset.id))


@bp.post("/api/v1/assets/uploads")
@requires(UPLOAD)
@doc("Get an upload link for a file (then send it there and confirm)", body=UploadBody,
     responses={201: UploadLink, 413: "over the size limit or the quota"}, auth=True)
def start_upload() -> Any:
    """Record an asset awaiting its file and hand out a presigned upload link; 201."""
    body = parse_json(UploadBody)
    started = services.start_upload(tenant_db(flows.tenant_id()), storage(),
                                    Upload(body.filename, body.content_type, body.size), flows.uploader(),
                                    link_seconds=flows.settings().asset_upload_link_seconds)
    link = UploadLink(id=started.asset_id, url=started.upload.url, method=started.upload.method,
                      headers=started.upload.headers, expires_at=started.expires_at,
                      confirm_url=url_for("assets.confirm_upload", asset_id=started.asset_id),
                      status_url=url_for("assets.asset_status", asset_id=started.asset_id))
    return jsonify(link.model_dump(mode="json")), 201


@bp.post("/api/v1/assets/<uuid:asset_id>/confirm")
@requires(UPLOAD)
@doc("Confirm a file sent to its upload link; queue its processing",
     responses={202: Accepted, 404: "no such upload of yours", 409: "nothing uploaded yet",
                413: "over the size limit or the quota"}, auth=True)
def confirm_upload(asset_id: uuid.UUID) -> Any:
    """Check the uploaded file's size against the limit and quota and queue it; 202."""
    asset = services.confirm_upload(tenant_db(flows.tenant_id()), storage(), asset_id, flows.uploader())
    return accepted(url_for("assets.asset_status", asset_id=asset.id), id=str(asset.id))


@bp.get("/api/v1/assets")
@requires(UPLOAD)
@doc("List my assets (a tenant admin: every asset of the tenant)", query=Paging, responses={200: AssetList},
     auth=True)
def list_assets() -> Any:
    """The assets the caller may see, newest first."""
    paging = parse_query(Paging)
    rows = queries.assets_of(tenant_db(flows.tenant_id()), flows.viewer(), limit=paging.limit,
                             offset=paging.offset)
    return jsonify({"items": [asset_json(a) for a in rows]})


@bp.get("/api/v1/assets/<uuid:asset_id>")
@requires(UPLOAD)
@doc("Follow an asset: status, progress, what processing found",
     responses={200: AssetOut, 404: "no such asset"}, auth=True)
def asset_status(asset_id: uuid.UUID) -> Any:
    """Where an asset stands (another tenant's or, for a member, another member's is not found)."""
    return jsonify(asset_json(queries.asset_of(tenant_db(flows.tenant_id()), asset_id, flows.viewer())))


@bp.get("/api/v1/assets/<uuid:asset_id>/download")
@requires(UPLOAD)
@doc("A signed, expiring download link to the original or a rendition", query=RenditionQuery,
     responses={200: LinkOut, 404: "no such asset or rendition", 409: "not ready"}, auth=True)
def download_link(asset_id: uuid.UUID) -> Any:
    """A signed link to the original or a rendition of a ready asset."""
    rendition = parse_query(RenditionQuery).rendition
    link = services.download_link(tenant_db(flows.tenant_id()), storage(), asset_id, flows.viewer(),
                                  rendition=rendition, link_seconds=flows.settings().asset_link_seconds)
    out = LinkOut(url=link.url, expires_at=link.expires_at, filename=link.filename)
    return jsonify(out.model_dump(mode="json"))


@bp.delete("/api/v1/assets/<uuid:asset_id>")
@requires(UPLOAD)
@doc("Delete an asset (its files and download links go once the deletion is committed)",
     responses={204: "deleted", 404: "no such asset"}, auth=True)
def delete_asset(asset_id: uuid.UUID) -> Any:
    """Mark an asset deleted; its bytes stop counting against the quota at once."""
    flows.delete_asset(asset_id)
    return "", 204


@bp.get("/api/v1/assets/usage")
@requires(ADMIN)
@doc("The tenant's storage usage against its quota", responses={200: UsageOut}, auth=True)
def usage() -> Any:
    """Bytes and count of the tenant's live assets, its quota and refused kinds."""
    return jsonify(_usage_json())


def _usage_json() -> dict[str, Any]:
    policy = flows.policy()
    used = services.tenant_usage(tenant_db(flows.tenant_id()))
    return UsageOut(used_bytes=used.used_bytes, quota_bytes=policy.quota_bytes, assets=used.assets,
                    blocked_kinds=list(policy.blocked_kinds)).model_dump(mode="json")


@bp.put("/api/v1/assets/policy")
@requires(ADMIN)
@doc("Set the kinds of file the tenant refuses", body=PolicyBody, responses={200: UsageOut}, auth=True)
def set_policy() -> Any:
    """Replace the tenant's refused kinds (executables are refused by default)."""
    body = parse_json(PolicyBody)
    policies.set_blocked_kinds(management_db(), flows.tenant_id(), list(body.blocked_kinds),
                               changed_by=flows.caller().user_id)
    return jsonify(_usage_json())


@bp.put("/api/v1/operations/tenants/<uuid:tenant_id>/asset-quota")
@operator_required
@doc("Set a tenant's storage quota (operators)", body=QuotaBody,
     responses={204: "set", 404: "no such tenant"}, auth=True)
def set_quota(tenant_id: uuid.UUID) -> Any:
    """Set or reset (null) a tenant's storage quota in bytes."""
    body = parse_json(QuotaBody)
    policies.set_quota(management_db(), tenant_id, body.quota_bytes, changed_by=g.caller.user_id)
    return "", 204
