"""The storage port's contract, held by both adapters: the local folder and S3 (moto over HTTP).

Each test runs against ``LocalStorage`` (its links fetched through the web app's download
route with the Flask test client) and ``S3Storage`` on a moto server (its presigned links
fetched with ``urllib``, a plain HTTP client).
"""
from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from flask import Flask

from config.settings import Settings
from domain.assets.storage import (
    CHUNK_BYTES,
    InvalidKey,
    LocalStorage,
    ObjectMissing,
    S3Storage,
    Storage,
    build_storage,
)
from tests.support.apps import web_app
from tests.support.s3 import MotoS3, start_moto_s3

BIG_BYTES = 20 * CHUNK_BYTES + 12345  # past the 1 MiB copy chunk and S3's 8 MiB multipart parts


@dataclass(frozen=True)
class Fetched:
    """What a download link answered."""

    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Backend:
    """One adapter under test and how a plain client follows its links."""

    name: str
    store: Storage
    fetch: Callable[[str], Fetched]
    stored_keys: Callable[[], list[str]]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """A moto S3 server for this module."""
    with start_moto_s3() as server:
        yield server


@pytest.fixture(scope="module")
def local_app(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The web app with local storage in a folder of its own."""
    local = settings.model_copy(update={"var_dir": tmp_path_factory.mktemp("storage-var"),
                                        "storage_backend": "local"})
    with web_app(local) as app:
        yield app


def _local(app: Flask) -> Backend:
    store = build_storage(app.extensions["allotment.settings"])
    assert isinstance(store, LocalStorage)
    client = app.test_client()

    def fetch(url: str) -> Fetched:
        response = client.get(urlsplit(url).path)
        try:
            return Fetched(response.status_code, response.get_data(), dict(response.headers))
        finally:
            response.close()  # closes the streamed file

    def stored() -> list[str]:
        root = store.root
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Backend("local", store, fetch, stored)


def _s3(moto: MotoS3, settings: Settings) -> Backend:
    store = build_storage(settings.model_copy(update={
        "storage_backend": "s3", "s3_endpoint_url": moto.endpoint_url, "s3_bucket": moto.bucket}))
    assert isinstance(store, S3Storage)

    def fetch(url: str) -> Fetched:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own moto server
                return Fetched(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Fetched(exc.code, exc.read(), dict(exc.headers))

    return Backend("s3", store, fetch, lambda: sorted(moto.keys()))


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, settings: Settings, local_app: Flask,
            monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Each adapter in turn (S3 credentials from boto3's usual environment variables)."""
    if request.param == "local":
        return _local(local_app)
    moto: MotoS3 = request.getfixturevalue("moto")
    for name, value in moto.credentials_env().items():
        monkeypatch.setenv(name, value)
    return _s3(moto, settings)


def _key(name: str) -> str:
    return f"tenants/{os.urandom(6).hex()}/exports/{name}"


class Pattern:
    """A deterministic stream of ``size`` bytes, produced a chunk at a time (never held whole)."""

    # 1021 SHA-512 blocks: a period that divides none of the chunk sizes in play.
    BLOCK = b"".join(hashlib.sha512(i.to_bytes(4, "big")).digest() for i in range(1021))

    def __init__(self, size: int) -> None:
        self.size, self.position = size, 0
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """The next ``size`` bytes (all that is left when ``size`` is negative)."""
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        out = bytearray()
        while self.position < end:
            offset = self.position % len(self.BLOCK)
            take = min(len(self.BLOCK) - offset, end - self.position)
            out += self.BLOCK[offset:offset + take]
            self.position += take
        self.digest.update(out)
        return bytes(out)


def _sha256_of_stream(read: Callable[[int], bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: read(CHUNK_BYTES // 2), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def test_put_get_exists_size_and_delete(backend: Backend) -> None:
    store, key = backend.store, _key("a.jsonl")
    assert not store.exists(key)
    assert store.put(key, io.BytesIO(b"first version\n")) == 14
    assert store.exists(key) and store.size(key) == 14
    assert store.put(key, io.BytesIO(b"second\n")) == 7  # replaced, not appended
    with store.get(key) as stream:
        assert stream.read() == b"second\n"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting what is gone is harmless
    with pytest.raises(ObjectMissing):
        store.get(key)
    with pytest.raises(ObjectMissing):
        store.size(key)
    assert not [k for k in backend.stored_keys() if k.startswith(key.rsplit("/", 1)[0])]


def test_a_file_bigger_than_the_chunks_streams_in_and_out(backend: Backend) -> None:
    store, key = backend.store, _key("big.tar.gz")
    source = Pattern(BIG_BYTES)
    assert store.put(key, source) == BIG_BYTES  # type: ignore[arg-type] - a readable, not a file
    expected = source.digest.hexdigest()
    assert store.size(key) == BIG_BYTES
    with store.get(key) as stream:
        assert _sha256_of_stream(stream.read) == (expected, BIG_BYTES)
    fetched = backend.fetch(store.download_url(key, expires_in=120))
    assert fetched.status == 200
    assert (hashlib.sha256(fetched.body).hexdigest(), len(fetched.body)) == (expected, BIG_BYTES)


BAD_KEYS = {
    "empty": "",
    "absolute": "/etc/passwd",
    "parent": "tenants/../../etc/passwd",
    "dots-inside": "tenants/a..b",
    "dot-segment": "tenants/./a",
    "empty-segment": "tenants//a",
    "trailing-slash": "tenants/a/",
    "backslash": "tenants\\..\\a",
    "nul": "tenants/a\x00b",
    "newline": "tenants/a\nb",
    "delete-char": "tenants/a\x7fb",
    "too-long": "k/" + "x" * 1100,
}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_bad_keys_are_refused_before_any_io(backend: Backend, key: str) -> None:
    before = backend.stored_keys()
    store = backend.store
    calls: list[Callable[[], object]] = [
        lambda: store.put(key, io.BytesIO(b"x")), lambda: store.get(key), lambda: store.delete(key),
        lambda: store.exists(key), lambda: store.size(key),
        lambda: store.download_url(key, expires_in=60)]
    for call in calls:
        with pytest.raises(InvalidKey) as refused:
            call()
        assert refused.value.field == "key" and refused.value.status == 422
    assert backend.stored_keys() == before


def test_a_signed_link_downloads_with_a_plain_http_client(backend: Backend) -> None:
    store, key = backend.store, _key("export.tar.gz")
    store.put(key, io.BytesIO(b"archive bytes"), content_type="application/gzip")
    fetched = backend.fetch(store.download_url(key, expires_in=300, filename="acme-export.tar.gz"))
    assert fetched.status == 200 and fetched.body == b"archive bytes"
    disposition = {k.lower(): v for k, v in fetched.headers.items()}["content-disposition"]
    assert disposition.startswith("attachment") and "acme-export.tar.gz" in disposition


def test_a_name_beyond_latin_1_downloads_under_its_own_name(backend: Backend) -> None:
    # A header is ISO-8859-1 at most: AWS S3 refuses a link whose content disposition is not.
    store, key = backend.store, _key("capture.png")
    store.put(key, io.BytesIO(b"png bytes"), content_type="image/png")
    name = "Capture d\u2019\u00e9cran \u2014 \u622a\u56fe.png"
    fetched = backend.fetch(store.download_url(key, expires_in=300, filename=name))
    assert fetched.status == 200 and fetched.body == b"png bytes"
    disposition = {k.lower(): v for k, v in fetched.headers.items()}["content-disposition"]
    assert disposition.isascii() and disposition.startswith("attachment")
    fallback, _, encoded = disposition.partition("filename*=UTF-8''")
    assert 'filename="Capture decran  .png"' in fallback
    assert unquote(encoded.strip()) == name


def test_link_lifetimes_are_bounded(backend: Backend) -> None:
    key = _key("a.txt")
    backend.store.put(key, io.BytesIO(b"x"))
    for seconds in (0, -5, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="seconds"):
            backend.store.download_url(key, expires_in=seconds)


# -- what only the local links can show here ------------------------------------------------
# (moto does not check presigned URLs: a tampered or expired one still answers 200 there)

@pytest.fixture
def local(local_app: Flask) -> Backend:
    """The local adapter alone."""
    return _local(local_app)


def _clocked(app: Flask, at: float, secret: str | None = None) -> LocalStorage:
    """The app's storage folder with a clock of its own (and, if given, another signing secret)."""
    settings: Settings = app.extensions["allotment.settings"]
    return LocalStorage(settings.var_dir / "storage", secret or settings.secret_key, settings.public_url,
                        clock=lambda: at)


def test_a_local_link_stops_working_after_its_expiry(local: Backend, local_app: Flask) -> None:
    store = local.store
    assert isinstance(store, LocalStorage)
    key = _key("late.txt")
    store.put(key, io.BytesIO(b"on time"))
    issued_an_hour_ago = _clocked(local_app, time.time() - 3600)
    assert local.fetch(issued_an_hour_ago.download_url(key, expires_in=3599)).status == 410
    assert local.fetch(issued_an_hour_ago.download_url(key, expires_in=3700)).body == b"on time"


@pytest.mark.parametrize("tamper", ["flip-a-character", "truncate", "another-secret", "garbage"])
def test_a_tampered_local_link_is_not_found(local: Backend, local_app: Flask, tamper: str) -> None:
    store = local.store
    assert isinstance(store, LocalStorage)
    key = _key("secret.txt")
    store.put(key, io.BytesIO(b"for the holder of the link only"))
    url = store.download_url(key, expires_in=300)
    token = url.rsplit("/", 1)[1]
    forged = {
        "flip-a-character": token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:],
        "truncate": token[:-6],
        "another-secret": _clocked(local_app, time.time(), "not our secret key at all").download_url(
            key, expires_in=300).rsplit("/", 1)[1],
        "garbage": "not-a-token",
    }[tamper]
    fetched = local.fetch(url.rsplit("/", 1)[0] + "/" + forged)
    assert fetched.status == 404 and b"for the holder" not in fetched.body
    assert local.fetch(url).status == 200  # the genuine link still works


def test_a_local_link_to_a_deleted_file_is_not_found(local: Backend) -> None:
    store = local.store
    key = _key("gone.txt")
    store.put(key, io.BytesIO(b"soon gone"))
    url = store.download_url(key, expires_in=300)
    store.delete(key)
    assert local.fetch(url).status == 404


def test_an_s3_link_carries_its_key_expiry_and_signature(moto: MotoS3, settings: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in moto.credentials_env().items():
        monkeypatch.setenv(name, value)
    backend = _s3(moto, settings)
    key = _key("x.tar.gz")
    backend.store.put(key, io.BytesIO(b"x"))
    url = urlsplit(backend.store.download_url(key, expires_in=900))
    query = parse_qs(url.query)
    assert url.path == f"/{moto.bucket}/{key}"
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert len(query["X-Amz-Signature"][0]) == 64


