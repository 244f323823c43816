"""What the assets API and pages share: who the caller is to the assets context, the
uploader they act as (tenant, policy, limit), and deleting an asset."""
from __future__ import annotations

import uuid

from flask import current_app, g

from config.settings import Settings
from domain.assets import policies, services
from domain.assets.queries import Viewer
from domain.assets.services import Uploader
from web.auth import Caller
from web.db import management_db, tenant_db
from web.storage import storage

UPLOAD = "assets:upload"
ADMIN = "tenant:admin"


def settings() -> Settings:
    """This app's settings."""
    return current_app.extensions["allotment.settings"]  # type: ignore[no-any-return]


def caller() -> Caller:
    """The authenticated caller of this request."""
    return g.caller  # type: ignore[no-any-return]


def tenant_id() -> uuid.UUID:
    """The caller's tenant (every assets view requires one)."""
    found = caller().tenant_id
    assert found is not None  # requires(..., tenant=True)
    return found


def viewer() -> Viewer:
    """The caller as the assets context sees them: admins see every asset of the tenant."""
    return Viewer(caller().user_id, admin=caller().may(ADMIN))


def policy() -> policies.Policy:
    """The caller's tenant's storage policy."""
    return policies.policy_of(management_db(), tenant_id(), settings().asset_quota_bytes)


def uploader() -> Uploader:
    """The caller as an uploader: their tenant, its policy and the upload limit."""
    return Uploader(tenant_id(), caller().user_id, policy(), settings().asset_max_upload_bytes,
                    g.get("request_id"))


def delete_asset(asset_id: uuid.UUID) -> None:
    """Delete an asset the caller may see; its files (and the download links handed out)
    go once the deletion is committed."""
    tenant = tenant_id()
    services.delete_asset(tenant_db(tenant), asset_id, viewer())
    g.setdefault("after_commit", []).append(
        lambda: services.remove_deleted_files(storage(), tenant, asset_id))
