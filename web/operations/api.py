"""Operator endpoints and health checks."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Literal

from flask import current_app, g, jsonify, send_file, url_for
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from domain.assets.storage import LocalStorage
from domain.iam import services as iam
from domain.identity import services as identity
from domain.messaging import relay
from domain.tenancy import export, migrations
from domain.tenancy import services as tenancy
from web.api import PlainText, Query, accepted, parse_json, parse_query
from web.auth import operator_required
from web.db import management_db, provider
from web.errors import ApiError, error_response
from web.identity.flows import sign_out_everywhere
from web.openapi import doc
from web.operations import bp
from web.storage import send_export, storage
from workers.publisher import publish

log = logging.getLogger(__name__)


class MessageOut(BaseModel):
    """An outbox delivery as operators see it."""

    id: uuid.UUID
    database: str
    type: str
    handler: str
    tenant_id: uuid.UUID | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    dead_at: datetime | None
    last_error: str | None


class MessagesQuery(Query):
    """Which messages: dead (out of attempts) or overdue (past their lease)."""

    state: Literal["dead", "overdue"] = "dead"


class MessageList(BaseModel):
    """Dead or overdue deliveries."""

    state: Literal["dead", "overdue"]
    items: list[MessageOut]
    unreachable: list[str]  # databases that did not answer


@bp.get("/healthz")
def healthz() -> Any:
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """The management database and the broker answer."""
    # Anyone may ask: the answer names the part that failed, the log says how (an error's
    # text names hosts, ports, users and databases).
    part = "the management database"
    try:
        provider().ping()
        part = "the broker"
        with current_app.extensions["allotment.celery"].connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:  # any failure means not ready (logged)
        log.warning("not ready: %s does not answer", part, exc_info=True)
        return error_response(503, "not_ready", f"{part} does not answer", None)
    return jsonify({"status": "ready"})


@bp.get("/api/v1/operations/messages")
@operator_required
@doc("List dead or overdue messages", query=MessagesQuery, responses={200: MessageList}, auth=True)
def list_messages() -> Any:
    """Dead (out of attempts) or overdue (past their lease) deliveries, across every database."""
    state = parse_query(MessagesQuery).state
    listing = relay.list_all(provider(), state)
    body = MessageList(state=state, items=[MessageOut(**r.__dict__) for r in listing.rows],  # type: ignore[arg-type]
                       unreachable=listing.unreachable)
    return jsonify(body.model_dump(mode="json"))


@bp.post("/api/v1/operations/messages/<path:database>/<uuid:message_id>/retry")
@operator_required
@doc("Retry a dead message", responses={202: "re-sent", 404: "no such message", 409: "not dead"}, auth=True)
def retry_message(database: str, message_id: uuid.UUID) -> Any:
    """Bring a dead delivery back and send it again."""
    settings = current_app.extensions["allotment.settings"]
    envelope = relay.revive_in(provider(), database, message_id, settings.message_lease_seconds)
    publish(current_app.extensions["allotment.celery"], [envelope])
    return jsonify({"id": envelope.id, "status": "resent"}), 202


class UserCutOff(BaseModel):
    """An account after an operator acted on it."""

    user_id: uuid.UUID
    active: bool
    revoked: int


class ResellerBody(BaseModel):
    """A new reseller and the email of its first admin (an existing account)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: PlainText = Field(min_length=2, max_length=200)
    admin_email: EmailStr


class ResellerOut(BaseModel):
    """A reseller."""

    id: uuid.UUID
    name: str


class TenantResellerBody(BaseModel):
    """The reseller that sold a tenant (null: none)."""

    model_config = ConfigDict(extra="forbid")

    reseller_id: uuid.UUID | None


@bp.post("/api/v1/operations/users/<uuid:user_id>/cut-off")
@operator_required
@doc("Cut a user off in every tenant (operators)", responses={200: UserCutOff}, auth=True)
def cut_off_user(user_id: uuid.UUID) -> Any:
    """End every session of the user; they may sign in again."""
    if identity.users_by_id(management_db(), [user_id]).get(user_id) is None:
        raise ApiError(404, "not_found", "no such user", "user_id")
    count = sign_out_everywhere(user_id, "cut off by a platform operator")
    return jsonify(UserCutOff(user_id=user_id, active=True, revoked=count).model_dump(mode="json"))


@bp.post("/api/v1/operations/users/<uuid:user_id>/deactivate")
@operator_required
@doc("Deactivate an account everywhere (operators)", responses={200: UserCutOff}, auth=True)
def deactivate_user(user_id: uuid.UUID) -> Any:
    """The account can no longer sign in and every token it holds is refused."""
    identity.set_account_active(management_db(), user_id, False)
    count = sign_out_everywhere(user_id, "account deactivated by a platform operator")
    return jsonify(UserCutOff(user_id=user_id, active=False, revoked=count).model_dump(mode="json"))


@bp.post("/api/v1/operations/users/<uuid:user_id>/reactivate")
@operator_required
@doc("Reactivate an account (operators)", responses={200: UserCutOff}, auth=True)
def reactivate_user(user_id: uuid.UUID) -> Any:
    """The account may sign in again."""
    identity.set_account_active(management_db(), user_id, True)
    return jsonify(UserCutOff(user_id=user_id, active=True, revoked=0).model_dump(mode="json"))


@bp.post("/api/v1/operations/resellers")
@operator_required
@doc("Create a reseller with its first admin (operators)", body=ResellerBody,
     responses={201: ResellerOut}, auth=True)
def create_reseller() -> Any:
    """Resellers manage the subscriptions of the tenants they sold."""
    body = parse_json(ResellerBody)
    db = management_db()
    admin = identity.user_by_email(db, str(body.admin_email))
    if admin is None:
        raise ApiError(422, "validation_failed", "no account with this email", "admin_email")
    reseller_id = iam.create_reseller(db, body.name, admin.id)
    return jsonify(ResellerOut(id=reseller_id, name=body.name).model_dump(mode="json")), 201


@bp.put("/api/v1/operations/tenants/<uuid:tenant_id>/reseller")
@operator_required
@doc("Record which reseller sold a tenant (operators)", body=TenantResellerBody,
     responses={204: "recorded"}, auth=True)
def set_tenant_reseller(tenant_id: uuid.UUID) -> Any:
    """Its reseller's admins may then manage the tenant's subscription."""
    body = parse_json(TenantResellerBody)
    tenancy.assign_reseller(management_db(), tenant_id, body.reseller_id)
    return "", 204


class MigrationOut(BaseModel):
    """The latest recorded migrate-all outcome of one tenant database."""

    database: str
    status: Literal["upgraded", "skipped", "failed"]
    revision_before: str | None
    revision_after: str | None
    duration_ms: int
    finished_at: datetime
    error: str | None


class MigrationStatusOut(BaseModel):
    """Tenant schema migrations: the head revision, latest outcomes, databases not at head."""

    head: str | None
    latest: list[MigrationOut]
    drifted: list[str]


@bp.get("/api/v1/operations/migrations")
@operator_required
@doc("Latest migration outcome per tenant database, and the drifted ones (operators)",
     responses={200: MigrationStatusOut}, auth=True)
def list_migrations() -> Any:
    """Each tenant database's latest migrate-all outcome and, read now, those not at head."""
    status = migrations.migration_status(provider())
    body = MigrationStatusOut(head=status.head, latest=[MigrationOut(**r.__dict__) for r in status.latest],
                              drifted=status.drifted)
    return jsonify(body.model_dump(mode="json"))


class ExportAccepted(BaseModel):
    """An export or offboarding is recorded and queued; follow the status URL."""

    id: uuid.UUID
    kind: Literal["export", "offboard"]
    status_url: str


class ExportOut(BaseModel):
    """A tenant export or offboarding as operators follow it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: Literal["export", "offboard"]
    status: Literal["pending", "running", "completed", "failed"]
    step: str
    percent: int
    rows: int
    size_bytes: int
    sha256: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None  # signed, expiring; once completed


class OffboardBody(BaseModel):
    """The tenant's slug typed again: its data is deleted after the export."""

    model_config = ConfigDict(extra="forbid")

    confirm_slug: str = Field(min_length=1, max_length=63)


def _queued(export_id: uuid.UUID, kind: str) -> Any:
    """202 with the status URL; the job goes to the tenancy workers once the row is committed."""
    g.setdefault("after_commit", []).append(lambda: send_export(export_id, kind))
    return accepted(url_for("operations.export_status", export_id=export_id), id=str(export_id), kind=kind)


@bp.post("/api/v1/operations/tenants/<uuid:tenant_id>/exports")
@operator_required
@doc("Export a tenant's rows to an archive on the storage (operators)",
     responses={202: ExportAccepted, 404: "no such tenant", 409: "the tenant is being promoted"}, auth=True)
def export_tenant(tenant_id: uuid.UUID) -> Any:
    """Record an export of every row the tenant owns and queue it; answer 202 with its status URL."""
    export_id = export.request_export(management_db(), tenant_id, requested_by=g.caller.user_id)
    return _queued(export_id, "export")


@bp.get("/api/v1/operations/exports/<uuid:export_id>")
@operator_required
@doc("Follow a tenant export or offboarding (operators)", responses={200: ExportOut, 404: "no such export"},
     auth=True)
def export_status(export_id: uuid.UUID) -> Any:
    """Status, step, rows and size of an export, and a signed download link once completed."""
    status = export.export_status(management_db(), export_id, storage())
    return jsonify(ExportOut.model_validate(status, from_attributes=True).model_dump(mode="json"))


@bp.post("/api/v1/operations/tenants/<uuid:tenant_id>/offboard")
@operator_required
@doc("Offboard a tenant: export it, then delete its data (operators)", body=OffboardBody,
     responses={202: ExportAccepted, 404: "no such tenant", 409: "being promoted or offboarded",
                422: "confirm_slug is not the tenant's slug"}, auth=True)
def offboard_tenant(tenant_id: uuid.UUID) -> Any:
    """Record an offboarding confirmed by the tenant's slug and queue it; answer 202."""
    body = parse_json(OffboardBody)
    export_id = export.request_offboard(management_db(), tenant_id, confirm_slug=body.confirm_slug,
                                        requested_by=g.caller.user_id)
    return _queued(export_id, "offboard")


@bp.get("/storage/downloads/<token>")
def download_stored_file(token: str) -> Any:
    """Stream a stored file to whoever holds a valid, unexpired local download link."""
    store = storage()
    if not isinstance(store, LocalStorage):  # S3 links go to the bucket, not here
        raise ApiError(404, "not_found", "this download link is not valid", "token")
    download = store.resolve(token)
    # An explicit type: guessed from ".tar.gz", Werkzeug would add Content-Encoding: gzip and
    # clients would unpack the archive on the way.
    return send_file(store.get(download.key), mimetype="application/octet-stream", as_attachment=True,
                     download_name=download.filename, max_age=0, etag=False)
