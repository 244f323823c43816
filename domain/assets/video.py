"""Videos (MP4, WebM, MOV) with PyAV, whose wheels carry FFmpeg: duration, codec and
dimensions read from the container, and a poster frame.

The frame size is checked before anything is decoded (the same pixel limit as images);
the poster is the first frame at or after a tenth of the duration (at most one second in),
scaled to the largest rendition size and saved as JPEG.

The time a frame is shown at is the file's to say, and so is how close together the frames
are: at a microsecond apart, the first second holds a million of them. So the poster is
looked for in at most ``MAX_POSTER_FRAMES`` decoded frames (two seconds at 60 frames a
second, any real video's first second), the last of them when none is far enough in, and
every decoded frame is held to the pixel limit (a stream may change its size midway, past
the size its header gave).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from domain.assets.errors import Rejected
from domain.assets.images import Picture

POSTER_NAME = "poster"
POSTER_TYPE = "image/jpeg"
POSTER_EXTENSION = "jpg"
MAX_POSTER_FRAMES = 120


@dataclass(frozen=True)
class VideoResult:
    """What reading a video found, and its poster frame (a JPEG)."""

    meta: dict[str, Any]
    poster: Picture


def process_video(path: Path, *, poster_edge: int, max_pixels: int) -> VideoResult:
    """Read a video's facts and make its poster; Rejected with the reason if it cannot be."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise Rejected("the file has no video stream")
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > max_pixels:
                raise Rejected(f"the video's frames have {width * height:,} pixels, more than the "
                               f"{max_pixels:,} allowed")
            duration = _duration(container, stream)
            meta = {"width": width, "height": height, "codec": stream.codec_context.name,
                    "duration_seconds": round(duration, 3) if duration is not None else None,
                    "frame_rate": _rate(stream), "container": container.format.name}
            frame = _poster_frame(container, stream, duration, max_pixels)
    except av.FFmpegError as exc:
        raise Rejected(f"the video cannot be read: {exc}") from None
    if frame is None:
        raise Rejected("the video has no frame that can be decoded")
    frame.thumbnail((poster_edge, poster_edge), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    frame.convert("RGB").save(out, "JPEG", quality=85)
    return VideoResult(meta, Picture(POSTER_NAME, out.getvalue(), frame.width, frame.height))


def _duration(container: Any, stream: Any) -> float | None:
    if container.duration is not None:
        return float(container.duration / av.time_base)
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    return round(float(Fraction(rate)), 3) if rate else None


def _poster_frame(container: Any, stream: Any, duration: float | None, max_pixels: int) -> Image.Image | None:
    """The poster: the first frame at or after ``at``, else the last one decoded (within
    ``MAX_POSTER_FRAMES``); None when no frame decodes."""
    at = min(duration / 10, 1.0) if duration else 0.0
    last = None
    for count, frame in enumerate(container.decode(stream), start=1):
        if frame.width * frame.height > max_pixels:
            raise Rejected(f"a frame of the video has {frame.width * frame.height:,} pixels, more "
                           f"than the {max_pixels:,} allowed")
        last = frame
        if frame.time is None or frame.time >= at or count >= MAX_POSTER_FRAMES:
            break
    return last.to_image() if last is not None else None  # type: ignore[no-any-return]
