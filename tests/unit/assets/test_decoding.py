"""A file whose decoder fails, however it fails, is rejected with a reason: never a delivery
re-sent for hours while its asset stays "processing"."""
from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.exc import OperationalError

from domain.assets import images, processing
from domain.assets.errors import Rejected
from domain.errors import Transient
from tests.integration.assets import samples

JOB = processing.Job(uuid.uuid4(), uuid.uuid4(), "x.png", "image/png", "direct", None, ())


def test_a_truncated_png_is_rejected_wherever_pillow_first_decodes_it(tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    path.write_bytes(samples.truncated_png())
    with pytest.raises(Rejected, match="truncated or corrupt"):
        images.process_image(path, "image/png", sizes=(320,), max_pixels=10**8)


def test_a_decoder_failing_in_a_way_it_does_not_name_rejects_the_file() -> None:
    def decode() -> None:
        raise RuntimeError("a C library gave up")

    with pytest.raises(Rejected, match=r"could not be processed \(RuntimeError\)"):
        processing._decoding(JOB, decode)


def test_a_decoders_own_refusal_keeps_its_reason() -> None:
    def decode() -> None:
        raise Rejected("the video has no video stream")

    with pytest.raises(Rejected, match="no video stream"):
        processing._decoding(JOB, decode)


def test_a_jpeg_cleaned_of_its_metadata_keeps_its_compression(tmp_path: Path) -> None:
    # Re-encoded at a fixed quality, a JPEG saved at quality 5 came out up to 18 times its
    # size: stored past the quota its upload was checked against.
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned
    out = io.BytesIO()
    Image.merge("RGB", [Image.effect_noise((1000, 1000), 64)] * 3).save(out, "JPEG", quality=5, exif=exif)
    data = out.getvalue()  # detail throughout: what compression, high or low, shows most in
    path = tmp_path / "low.jpg"
    path.write_bytes(data)
    result = images.process_image(path, "image/jpeg", sizes=(320,), max_pixels=10**8)
    assert result.meta["metadata_removed"] is True and result.cleaned_original is not None
    assert len(result.cleaned_original) <= 1.1 * len(data)
    with Image.open(io.BytesIO(result.cleaned_original)) as cleaned:
        assert not cleaned.getexif() and cleaned.size == (1000, 1000)  # upright, with no EXIF


@pytest.mark.parametrize("error", [OperationalError("UPDATE assets", {}, Exception("server closed")),
                                   Transient("the storage did not answer")], ids=["database", "transient"])
def test_an_error_on_the_way_not_of_the_files_making_is_raised_not_rejected(tmp_path: Path,
                                                                            error: Exception) -> None:
    # The progress is written to the database while the renditions are made: its failure is
    # retried with the delivery, never a reason to reject (and delete) the upload.
    path = tmp_path / "fine.png"
    path.write_bytes(samples.png(640, 480))

    def progress(percent: int) -> None:
        raise error

    with pytest.raises(type(error)):
        processing._decoding(JOB, lambda: images.process_image(path, "image/png", sizes=(320,),
                                                              max_pixels=10**8, progress=progress))
