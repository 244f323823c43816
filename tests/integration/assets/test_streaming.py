"""Uploads through a real gunicorn web process stream: a 64 MiB chunked body is stored
without the process ever holding it (its peak resident memory, VmHWM, hardly moves), and
one past the limit is refused with 413 while nothing of it is kept. Every other route keeps
Flask's 1 MiB body limit. (The workers keep the package's 3 MiB limit: they refuse the big
file on their own, which shows their check as well.)"""
from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from domain.assets import policies
from tests.integration.assets.conftest import World
from tests.support import processes
from tests.support.tenants import TenantWithMembers

FILE_BYTES = 64 * 1024 * 1024
LIMIT_BYTES = 96 * 1024 * 1024
CHUNK = b"".join(hashlib.sha512(i.to_bytes(4, "big")).digest() for i in range(1024))  # 64 KiB


@dataclass(frozen=True)
class Server:
    """A gunicorn web process and its base URL."""

    process: processes.Process
    url: str

    def peak_rss(self) -> int:
        """VmHWM (peak resident set) of its one worker, in bytes."""
        (worker,) = psutil.Process(self.process.pid).children()
        for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def server(local_world: World, log_dir: Path) -> Iterator[Server]:
    """gunicorn serving the world's app (one sync worker) with a 96 MiB upload limit."""
    env = {**local_world.env, "ASSET_MAX_UPLOAD_BYTES": str(LIMIT_BYTES)}
    process, url = processes.gunicorn("assets-web", env, log_dir, workers=1)
    yield Server(process, url)
    process.stop()


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = CHUNK[: min(len(CHUNK), total - sent)]
        sent += len(piece)
        yield piece


def _post(server: Server, path: str, token: str, body: Iterator[bytes] | bytes,
          content_type: str) -> tuple[int, dict[str, str]]:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        chunked = not isinstance(body, bytes)
        connection.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def tenant(local_world: World) -> TenantWithMembers:
    """A tenant with room for the big files."""
    tenant = local_world.tenant("owner")
    with local_world.provider.management() as session:
        policies.set_quota(session, tenant.id, 10 * LIMIT_BYTES, changed_by=None)
        session.commit()
    return tenant


def test_a_big_upload_streams_through_gunicorn(local_world: World, server: Server,
                                               tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    assert _post(server, "/api/v1/assets?filename=warmup.txt", token, b"warm up\n", "text/plain")[0] == 202
    before = server.peak_rss()
    status, body = _post(server, "/api/v1/assets?filename=big.bin", token, _chunks(FILE_BYTES),
                         "application/octet-stream")
    assert status == 202, body
    grown = server.peak_rss() - before
    assert grown < FILE_BYTES // 4, f"the worker's peak memory grew by {grown:,} bytes"
    expected = hashlib.sha256(b"".join(_chunks(FILE_BYTES))).hexdigest()
    doc = local_world.processed(token, body["id"], timeout=120)
    assert (doc["size"], doc["sha256"]) == (FILE_BYTES, expected)  # what arrived, whole
    # This web process allows 96 MiB; the package's workers keep their own 3 MiB limit and
    # refuse the file themselves (as they would an oversized presigned upload).
    assert doc["status"] == "rejected" and "limit of one upload" in doc["reason"]


def test_past_the_limit_is_refused_and_nothing_kept(local_world: World, server: Server,
                                                    tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    before = local_world.files(tenant.id)
    status, body = _post(server, "/api/v1/assets?filename=huge.bin", token, _chunks(LIMIT_BYTES + 1),
                         "application/octet-stream")
    assert (status, body["field"], body["error"]) == (413, "file", "file_too_large")
    assert local_world.files(tenant.id) == before


def test_other_routes_keep_the_small_body_limit(local_world: World, server: Server,
                                                tenant: TenantWithMembers) -> None:
    token = local_world.token(tenant)
    big_json = json.dumps({"filename": "x" * (2 * 1024 * 1024), "content_type": "a/b", "size": 1}).encode()
    status, body = _post(server, "/api/v1/assets/uploads", token, big_json, "application/json")
    assert status == 413 and body["field"] == "body"
