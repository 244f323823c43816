"""Images (JPEG, PNG, WebP, GIF) with Pillow: bombs refused, orientation applied, metadata
stripped, renditions made.

The pixel count is read from the header and refused above the limit before a single pixel
is decoded (a decompression bomb is a small file that decodes to gigabytes). A truncated
or corrupt file fails to decode and is refused. The original is rewritten without its
metadata (EXIF with its GPS position, XMP, comments) when it carries any, with the EXIF
orientation applied to the pixels; the ICC colour profile is kept. Renditions are WebP,
their longest edge at each configured size (never enlarged), from the first frame.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from domain.assets.errors import Rejected

RENDITION_TYPE = "image/webp"
RENDITION_EXTENSION = "webp"
RENDITION_QUALITY = 80
# What Pillow reports in ``info`` that is not metadata about the picture's origin.
_HARMLESS_INFO = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "icc_profile", "progressive",
    "progression", "adobe", "adobe_transform", "transparency", "gamma", "srgb", "aspect", "loop",
    "duration", "background", "version", "interlace", "compression", "lossless", "bbox",
    "chromaticity", "extension", "timestamp", "disposal", "blend", "default_image", "mp"})
_SAVE_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


@dataclass(frozen=True)
class Picture:
    """One rendition ready to store."""

    name: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ImageResult:
    """What processing an image found and made."""

    meta: dict[str, Any]
    renditions: list[Picture]
    cleaned_original: bytes | None  # the original without metadata, if it had any


# What Pillow raises for a file it cannot decode (a truncated or corrupt stream, a header
# that lies, a frame past the pixel limit).
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open an image lazily and refuse a decompression bomb from its header alone."""
    try:
        image = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"the image cannot be read: {exc}") from None
    except Image.DecompressionBombError:
        raise Rejected(f"the image decodes to more than {max_pixels:,} pixels "
                       "(a decompression bomb)") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise Rejected(f"the image decodes to {width * height:,} pixels, more than the {max_pixels:,} "
                       "allowed (a decompression bomb)")
    return image


def _has_metadata(image: Image.Image) -> bool:
    return bool(image.getexif()) or any(key not in _HARMLESS_INFO for key in image.info)


def _decoded(image: Image.Image) -> Image.Image:
    """The first frame, decoded, upright (EXIF orientation applied)."""
    image.load()
    upright = ImageOps.exif_transpose(image)
    return upright if upright is not None else image


def _cleaned(upright: Image.Image, mime: str, icc: bytes | None,
             source: Image.Image | None = None) -> bytes | None:
    """The picture re-encoded in its own format without metadata (None for GIF: it has
    no EXIF, and re-encoding would flatten an animation).

    A JPEG keeps the compression it came with (``source``'s quantization tables and chroma
    subsampling): at a fixed quality, a file saved at quality 5 came out up to 18 times its
    size, stored past the quota it was checked against."""
    fmt = _SAVE_FORMAT.get(mime)
    if fmt is None:
        return None
    out = io.BytesIO()
    options: dict[str, Any] = {"icc_profile": icc} if icc else {}
    tables = getattr(source, "quantization", None) if fmt == "JPEG" else None
    if tables:
        options["qtables"] = tables
        sampling = JpegImagePlugin.get_sampling(source)
        if sampling != -1:
            options["subsampling"] = sampling
    elif fmt in {"JPEG", "WEBP"}:
        options["quality"] = 95
    upright.save(out, fmt, **options)
    return out.getvalue()


def _rendition_source(upright: Image.Image) -> Image.Image:
    if upright.mode in ("RGB", "RGBA"):
        return upright
    has_alpha = upright.mode in ("LA", "PA") or "transparency" in upright.info
    return upright.convert("RGBA" if has_alpha else "RGB")


def renditions(upright: Image.Image, sizes: tuple[int, ...],
               progress: Callable[[int], None] | None = None) -> list[Picture]:
    """A WebP rendition per size, largest first, each scaled from the one before."""
    source = _rendition_source(upright)
    pictures: list[Picture] = []
    for index, size in enumerate(sorted(sizes, reverse=True)):
        scaled = source.copy()
        scaled.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        scaled.save(out, "WEBP", quality=RENDITION_QUALITY)
        pictures.append(Picture(str(size), out.getvalue(), scaled.width, scaled.height))
        source = scaled
        if progress is not None:
            progress(int(100 * (index + 1) / len(sizes)))
    return pictures


def process_image(path: Path, mime: str, *, sizes: tuple[int, ...], max_pixels: int,
                  progress: Callable[[int], None] | None = None) -> ImageResult:
    """Check, clean and render an image file; Rejected with the reason if it cannot be.

    Pillow decodes lazily, so a truncated or corrupt file can fail wherever its pixels are
    first needed (reading a PNG's EXIF loads it): every step is behind the same refusal."""
    with open_checked(path, max_pixels) as image:
        try:
            return _processed(image, mime, sizes, progress)
        except _UNREADABLE as exc:
            raise Rejected(f"the image is truncated or corrupt: {exc}") from None


def _processed(image: Image.Image, mime: str, sizes: tuple[int, ...],
               progress: Callable[[int], None] | None) -> ImageResult:
    """``process_image``'s steps on the opened image."""
    header_size = image.size
    frames = getattr(image, "n_frames", 1)
    dirty = _has_metadata(image)
    icc = image.info.get("icc_profile")
    drafted = mime == "image/jpeg" and not dirty
    if drafted:
        # Decode at the smallest DCT scale still as large as the biggest rendition; with
        # no EXIF there is no orientation to apply and no original to rewrite.
        image.draft("RGB", (max(sizes), max(sizes)))
    upright = _decoded(image)
    width, height = header_size if drafted else upright.size
    meta = {"width": width, "height": height, "format": mime, "frames": frames,
            "metadata_removed": dirty}
    cleaned = _cleaned(upright, mime, icc, image) if dirty else None
    return ImageResult(meta, renditions(upright, sizes, progress), cleaned)
