"""An S3-compatible server for the tests: moto in server mode, over real HTTP on 127.0.0.1.

``start_moto_s3()`` starts ``moto.server.ThreadedMotoServer`` on a free port; boto3 reaches
it through the endpoint URL (``S3_ENDPOINT_URL``), as it would any S3-compatible service.
``env()`` is what a worker process needs to use it; ``settings_env()`` the same for a
``Settings`` built in the test process (credentials stay in the environment, where boto3
reads them).

Moto does not check presigned URLs: a tampered or expired one still answers 200 there
(real S3 refuses both), so the expiry of S3 links is asserted on the URL itself.
"""
from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from workers.embedded import free_port

ACCESS_KEY = "moto-test-access-key"
SECRET_KEY = "moto-test-secret-key"
REGION = "us-east-1"


@dataclass(frozen=True)
class MotoS3:
    """A running moto server and the bucket made for the tests."""

    endpoint_url: str
    bucket: str

    def credentials_env(self) -> dict[str, str]:
        """boto3's usual variables, pointing at nothing real."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION}

    def settings_env(self) -> dict[str, str]:
        """The settings that select this server as the storage."""
        return {"STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": self.endpoint_url,
                "S3_BUCKET": self.bucket, "S3_REGION": REGION}

    def env(self) -> dict[str, str]:
        """Everything a worker process needs to store on this server."""
        return {**self.settings_env(), **self.credentials_env()}

    def client(self) -> Any:
        """A boto3 S3 client of this server (path-style, SigV4)."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@contextlib.contextmanager
def start_moto_s3() -> Iterator[MotoS3]:
    """A moto server on 127.0.0.1 and a free port, with a fresh bucket; stopped on exit."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = MotoS3(f"http://127.0.0.1:{port}", f"allotment-test-{secrets.token_hex(4)}")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()
