"""A video's poster frame: found within a bounded number of decoded frames, whatever the file
says about its frames' times, and every decoded frame held to the pixel limit."""
from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageStat

from domain.assets import video
from domain.assets.errors import Rejected


def _frames_a_microsecond_apart(path: Path, count: int) -> None:
    """An H.264 MP4 of ``count`` grey 64x64 frames, frame i of brightness min(i, 250), each
    shown 1/90000 s after the one before: its first second would hold 90,000 of them."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=Fraction(90_000))
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        for index in range(count):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (min(index, 250),) * 3))
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def test_the_poster_is_looked_for_in_a_bounded_number_of_frames(tmp_path: Path) -> None:
    path = tmp_path / "dense.mp4"
    # 0.033 s long: its poster would be at a tenth of that, the 300th frame.
    _frames_a_microsecond_apart(path, 3000)
    clip = video.process_video(path, poster_edge=64, max_pixels=64 * 64)
    assert clip.meta["duration_seconds"] == pytest.approx(3000 / 90_000, abs=0.001)
    brightness = ImageStat.Stat(Image.open(io.BytesIO(clip.poster.data)).convert("L")).mean[0]
    # The last frame decoded: the 120th (brightness 119), not the 300th (250).
    assert brightness == pytest.approx(video.MAX_POSTER_FRAMES - 1, abs=3)


@dataclass
class FakeFrame:
    width: int
    height: int
    time: float | None
    shade: int

    def to_image(self) -> Image.Image:
        return Image.new("L", (self.width, self.height), self.shade)


class FakeContainer:
    """What ``_poster_frame`` reads of a container: the frames its stream decodes to."""

    def __init__(self, frames: list[FakeFrame]) -> None:
        self.frames = frames
        self.decoded = 0

    def decode(self, stream: object) -> object:
        for frame in self.frames:
            self.decoded += 1
            yield frame


def test_a_frame_larger_than_the_header_said_is_refused() -> None:
    container = FakeContainer([FakeFrame(64, 64, 0.0, 1), FakeFrame(8000, 8000, 0.0, 2)])
    with pytest.raises(Rejected, match="64,000,000 pixels, more than the 4,096 allowed"):
        video._poster_frame(container, None, duration=10.0, max_pixels=64 * 64)


def test_the_first_frame_at_the_poster_time_is_the_poster() -> None:
    container = FakeContainer([FakeFrame(8, 8, t / 10, t) for t in range(20)])
    poster = video._poster_frame(container, None, duration=10.0, max_pixels=64)
    assert poster is not None and poster.getpixel((0, 0)) == 10  # at one second
    assert container.decoded == 11


def test_without_a_frame_far_enough_in_the_last_one_decoded_is_the_poster() -> None:
    container = FakeContainer([FakeFrame(8, 8, t / 100, t) for t in range(5)])
    poster = video._poster_frame(container, None, duration=10.0, max_pixels=64)
    assert poster is not None and poster.getpixel((0, 0)) == 4


def test_frames_past_the_bound_are_never_decoded() -> None:
    container = FakeContainer([FakeFrame(8, 8, 0.0, t % 256) for t in range(10_000)])
    poster = video._poster_frame(container, None, duration=10.0, max_pixels=64)
    assert container.decoded == video.MAX_POSTER_FRAMES
    assert poster is not None and poster.getpixel((0, 0)) == video.MAX_POSTER_FRAMES - 1


def test_a_stream_that_decodes_nothing_has_no_poster() -> None:
    assert video._poster_frame(FakeContainer([]), None, duration=1.0, max_pixels=64) is None
