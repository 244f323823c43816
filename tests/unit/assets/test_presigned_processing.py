"""Processing a presigned upload checks the very bytes it keeps, whatever is sent to the
upload link meanwhile (the link works until it expires, and the upload stays until the
clean-up)."""
from __future__ import annotations

import io
import uuid
from pathlib import Path

from domain.assets import keys, processing
from domain.assets.processing import Job, Limits
from domain.assets.storage import LocalStorage

SCRIPT = b"#!/bin/sh\nrm -rf ~/important\n"  # confirmed as "notes.txt", text/plain
HARMLESS = b"Just some notes, really.\n".ljust(len(SCRIPT), b".")  # the same size, sent after


class UploadReplacedAfterCopy(LocalStorage):
    """The real folder storage, with a second upload through the link landing right after
    processing copied the first one to the original."""

    def copy(self, source: str, target: str) -> None:
        super().copy(source, target)
        self.put(source, io.BytesIO(HARMLESS))


def test_what_is_checked_is_what_is_kept(tmp_path: Path) -> None:
    storage = UploadReplacedAfterCopy(tmp_path, "a-secret-key", "http://localhost")
    tenant_id, asset_id = uuid.uuid4(), uuid.uuid4()
    storage.put(keys.upload(tenant_id, asset_id), io.BytesIO(SCRIPT))
    job = Job(tenant_id, asset_id, "notes.txt", "text/plain", "presigned", len(SCRIPT), ())
    outcome = processing.process(storage, job, Limits((64,), 10**6, 10**6), progress=lambda percent: None)
    with storage.get(keys.original(tenant_id, asset_id)) as kept:
        assert kept.read() == SCRIPT
    # The script kept as the original is the file checked: refused, not passed on the
    # strength of the harmless file sent to the link afterwards.
    assert outcome.reason is not None and "text/x-script" in outcome.reason
