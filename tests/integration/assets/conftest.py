"""Fixtures of the assets tests: a stack of their own (so no other suite's worker takes
their messages), the app with small limits, and real ``assets`` + ``notifications`` workers.

The limits are small so every bad input is cheap to make: 3 MiB an upload, renditions of
32, 64 and 128 px, 4 MP an image. Storage is the local folder (VAR_DIR/storage) unless a
test module asks for S3 on moto (``s3_world``).
"""
from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config.settings import Settings, load_settings
from domain.assets.storage import Storage, build_storage
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider
from tests.support import processes, tenants
from tests.support.apps import web_app
from tests.support.s3 import MotoS3, start_moto_s3
from tests.support.services import Services, Stack, create_stack, drop_stack
from tests.support.tenants import TenantWithMembers, bearer
from tests.support.waiting import wait_for
from workers import embedded

# Broker and result databases of this package's two stacks, one per storage, so a worker of
# one never takes the other's messages; on a Redis server of the package's own, so no other
# suite's worker (nor a parallel run's) takes them either.
REDIS_DB_ASSETS = 0
REDIS_DB_ASSETS_S3 = 2
MAX_UPLOAD_BYTES = 3 * 1024 * 1024
LIMITS = {
    "ASSET_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "ASSET_RENDITION_SIZES": "32,64,128",
    "ASSET_MAX_IMAGE_PIXELS": "4000000",
    "ASSET_QUOTA_BYTES": str(50 * 1024 * 1024),
    "FAIRNESS_LIMITS": "assets=4",
}


@dataclass
class World:
    """An app, its settings and storage, and workers processing what it records."""

    settings: Settings
    app: Flask
    provider: DataProvider
    storage: Storage
    env: dict[str, str]
    workers: list[processes.Process] = field(default_factory=list)

    @property
    def client(self) -> FlaskClient:
        """A fresh test client."""
        return self.app.test_client()

    def tenant(self, *roles: str) -> TenantWithMembers:
        """A new trial tenant with a member per role (every built-in role by default)."""
        return tenants.create_tenant(self.provider, roles or tenants.BUILTIN_ROLES)

    def token(self, tenant: TenantWithMembers, role: str = "owner") -> str:
        """An access token of the tenant's member holding ``role``."""
        return tenants.access_token(self.client, tenant.member(role), tenant.slug)

    def upload(self, token: str, data: bytes, filename: str, content_type: str = "application/octet-stream",
               **headers: str) -> TestResponse:
        """Stream ``data`` as the body of ``POST /api/v1/assets``."""
        return self.client.post("/api/v1/assets", query_string={"filename": filename}, data=data,
                                headers={**bearer(token), "Content-Type": content_type, **headers})

    def upload_unsized(self, token: str, data: bytes, filename: str,
                       content_type: str = "application/octet-stream") -> TestResponse:
        """``upload`` without a Content-Length (a chunked body: its size is learnt by reading)."""
        return self.client.post("/api/v1/assets", query_string={"filename": filename},
                                input_stream=io.BytesIO(data), environ_base={"wsgi.input_terminated": True},
                                headers={**bearer(token), "Content-Type": content_type})

    def asset(self, token: str, asset_id: str) -> dict[str, Any]:
        """The asset's status document."""
        response = self.client.get(f"/api/v1/assets/{asset_id}", headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json  # type: ignore[no-any-return]

    def processed(self, token: str, asset_id: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the asset is ready or rejected; its status document."""
        return wait_for(lambda: (doc := self.asset(token, asset_id))["final"] and doc, timeout=timeout,
                        message=f"asset {asset_id} to be processed")

    def files(self, tenant_id: uuid.UUID, asset_id: str | uuid.UUID | None = None) -> list[str]:
        """Keys stored for a tenant's assets (or one asset)."""
        prefix = f"tenants/{tenant_id}/assets/" + (f"{asset_id}/" if asset_id else "")
        return sorted(o.key for o in self.storage.listing(prefix))


@pytest.fixture(scope="package")
def own_services(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The suite's PostgreSQL server, and a Redis server started for this package alone."""
    redis_server = embedded.start_redis(tmp_path_factory.mktemp("assets-redis"), embedded.free_port())
    yield Services(services.server_url, redis_server.url(0).rsplit("/", 1)[0])
    redis_server.stop()


@pytest.fixture(scope="package")
def assets_stack(own_services: Services) -> Iterator[Stack]:
    """Management and trial databases and Redis databases for the assets tests alone."""
    created = create_stack(own_services, redis_db=REDIS_DB_ASSETS)
    yield created
    drop_stack(created)


@contextlib.contextmanager
def world(stack: Stack, var_dir: Path, log_dir: Path, name: str, **extra: str) -> Iterator[World]:
    """An app and real workers on ``stack`` with the test limits and ``extra`` settings."""
    env = stack.env(VAR_DIR=str(var_dir), **{**LIMITS, **extra})
    settings = load_settings(env)
    provider = build_provider(settings)
    with web_app(settings) as app:
        built = World(settings, app, provider, build_storage(settings), env)
        try:
            built.workers.append(processes.celery_worker(f"{name}-assets", "assets", env, log_dir,
                                                         concurrency=2))
            built.workers.append(processes.celery_worker(f"{name}-notices", "notifications", env, log_dir))
            yield built
        finally:
            processes.stop_all(built.workers)
            provider.dispose()


@pytest.fixture(scope="package")
def local_world(assets_stack: Stack, tmp_path_factory: pytest.TempPathFactory,
                log_dir: Path) -> Iterator[World]:
    """The app and workers on the local storage folder."""
    with world(assets_stack, tmp_path_factory.mktemp("assets-var"), log_dir, "local") as built:
        yield built


@pytest.fixture(scope="package")
def moto() -> Iterator[MotoS3]:
    """A moto S3 server over real HTTP on 127.0.0.1."""
    with start_moto_s3() as server:
        yield server


@pytest.fixture(scope="package")
def s3_stack(own_services: Services) -> Iterator[Stack]:
    """The stack of the S3 world (its own databases and broker)."""
    created = create_stack(own_services, redis_db=REDIS_DB_ASSETS_S3)
    yield created
    drop_stack(created)


@pytest.fixture(scope="package")
def s3_world(s3_stack: Stack, moto: MotoS3, tmp_path_factory: pytest.TempPathFactory,
             log_dir: Path) -> Iterator[World]:
    """The app and workers storing in moto's bucket (credentials from boto3's variables)."""
    patch = pytest.MonkeyPatch()
    for name, value in moto.credentials_env().items():
        patch.setenv(name, value)
    try:
        with world(s3_stack, tmp_path_factory.mktemp("assets-s3-var"), log_dir, "s3",
                   **moto.env()) as built:
            yield built
    finally:
        patch.undo()
