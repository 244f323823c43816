"""Real sample files made in the tests: Pillow images (with EXIF and GPS), a short video made
with PyAV, an executable's header, a crafted decompression bomb, a truncated JPEG."""
from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import av
from PIL import Image, ImageDraw

EXIF_ORIENTATION = 0x0112
EXIF_GPS_IFD = 0x8825
EXIF_MAKE = 0x010F


def picture(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A picture with content (a gradient and a mark in the top-left corner), not a flat colour."""
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    ImageDraw.Draw(image).rectangle((0, 0, width // 4, height // 8), fill="red" if mode != "L" else 255)
    return image


def jpeg(width: int = 400, height: int = 300, *, orientation: int | None = None, gps: bool = False,
         quality: int = 90) -> bytes:
    """A JPEG; with ``orientation`` (EXIF 1-8) and ``gps`` (a position in its EXIF)."""
    exif = Image.Exif()
    exif[EXIF_MAKE] = "Allotment Test Camera"
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    if gps:
        exif.get_ifd(EXIF_GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    out = io.BytesIO()
    extra = {"exif": exif} if orientation or gps else {}
    picture(width, height).save(out, "JPEG", quality=quality, **extra)
    return out.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    """A PNG with an alpha channel."""
    out = io.BytesIO()
    picture(width, height, "RGBA").save(out, "PNG")
    return out.getvalue()


def webp(width: int = 320, height: int = 240) -> bytes:
    """A lossy WebP."""
    out = io.BytesIO()
    picture(width, height).save(out, "WEBP", quality=80)
    return out.getvalue()


def gif(width: int = 120, height: int = 90, frames: int = 3) -> bytes:
    """An animated GIF."""
    images = [picture(width, height).rotate(i * 30).convert("P") for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def flat_png(width: int, height: int) -> bytes:
    """A one-colour PNG: many pixels in a tiny file."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG", optimize=True)
    return out.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header promises ``width x height`` pixels over a few bytes of data: what
    a decompression bomb looks like before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    """The first half of a JPEG: its signature is right, its data stops."""
    whole = jpeg(640, 480)
    return whole[: len(whole) // 2]


def truncated_png() -> bytes:
    """The first half of a PNG (Pillow fails on it as soon as anything decodes it, its EXIF
    included)."""
    whole = png(640, 480)
    return whole[: len(whole) // 2]


def windows_executable() -> bytes:
    """The start of a Windows PE executable (MZ header, PE signature)."""
    dos = bytearray(b"MZ" + b"\x90\x00" + b"\x00" * 56)
    dos[0x3C:0x40] = struct.pack("<I", 0x40)
    return bytes(dos) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 400


def elf_executable() -> bytes:
    """The start of a Linux ELF executable."""
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00\x3e\x00" + b"\x00" * 300


def video(container: str = "mp4", *, seconds: float = 1.0, width: int = 160, height: int = 120,
          rate: int = 10) -> bytes:
    """A short video made with PyAV: H.264 in MP4/MOV, VP8 in WebM."""
    codec = "libvpx" if container == "webm" else "libx264"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"clip.{container}"
        with av.open(str(path), "w") as output:
            stream = output.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index in range(int(seconds * rate)):
                frame = av.VideoFrame.from_image(picture(width, height).rotate(index * 12))
                for packet in stream.encode(frame):
                    output.mux(packet)
            for packet in stream.encode():
                output.mux(packet)
        return path.read_bytes()
