"""What a file is, by content; what a file name may be; the assets settings (no I/O)."""
from __future__ import annotations

import pytest

from config.settings import SettingsError, load_settings
from domain.assets import kinds, names
from domain.assets.errors import InvalidUpload
from tests.integration.assets import samples

BASE = {"DATABASE_URL": "postgresql://db/x", "BROKER_URL": "redis://r"}

SNIFFED = {
    "jpeg": (samples.jpeg, "image/jpeg", "image"),
    "png": (samples.png, "image/png", "image"),
    "webp": (samples.webp, "image/webp", "image"),
    "gif": (samples.gif, "image/gif", "image"),
    "mp4": (lambda: samples.video("mp4"), "video/mp4", "video"),
    "webm": (lambda: samples.video("webm"), "video/webm", "video"),
    "pe": (samples.windows_executable, "application/x-msdownload", "executable"),
    "elf": (samples.elf_executable, "application/x-executable", "executable"),
    "mach-o": (lambda: b"\xcf\xfa\xed\xfe" + b"\x00" * 60, "application/x-mach-binary", "executable"),
    "script": (lambda: b"#!/usr/bin/env python\nprint(1)\n", "text/x-script", "executable"),
    "pdf": (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "application/pdf", "document"),
    "zip": (lambda: b"PK\x03\x04" + b"\x00" * 60, "application/zip", "archive"),
    "text": ("naïve café, ümlaut\n".encode, "text/plain", "text"),
    "binary": (lambda: bytes(range(256)) * 4, "application/octet-stream", "other"),
}


@pytest.mark.parametrize("case", list(SNIFFED.values()), ids=list(SNIFFED))
def test_the_type_comes_from_the_content(case: tuple[object, str, str]) -> None:
    make, mime, kind = case
    found = kinds.sniff(make()[: kinds.HEAD_BYTES])  # type: ignore[operator]
    assert (found.mime, found.kind) == (mime, kind)


MATCHES = {
    "jpeg-as-jpeg": ("image/jpeg", "a.jpg", samples.jpeg, None),
    "jpg-alias": ("image/jpg", "a.jpeg", samples.jpeg, None),
    "generic-declared": ("application/octet-stream", "a", samples.png, None),
    "mov-in-mp4": ("video/quicktime", "clip.mov", lambda: samples.video("mp4"), None),
    "csv-text": ("text/csv", "people.csv", lambda: b"a,b\n1,2\n", None),
    "png-named-jpg": ("image/png", "a.jpg", samples.png, "not image/jpeg as the file name says"),
    "png-declared-jpeg": ("image/jpeg", "a.png", samples.png, "not image/jpeg as the upload declared"),
    "text-declared-png": ("image/png", "a.png", lambda: b"hello", "the content is not image/png"),
    "exe-declared-png": ("image/png", "cat.png", samples.windows_executable, "application/x-msdownload"),
}


@pytest.mark.parametrize("case", list(MATCHES.values()), ids=list(MATCHES))
def test_declared_type_and_name_must_match_the_content(case: tuple[str, str, object, str | None]) -> None:
    declared, filename, make, problem = case
    found = kinds.mismatch(declared, filename, kinds.sniff(make()[: kinds.HEAD_BYTES]))  # type: ignore[operator]
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_an_executable_name_makes_an_executable_whatever_the_content() -> None:
    text = kinds.sniff(b"@echo off\r\ndel *.*\r\n")
    assert text.kind == "text" and kinds.kind_for(text, "setup.bat") == "executable"
    assert kinds.kind_for(text, "notes.txt") == "text"


@pytest.mark.parametrize("raw", ["photo.jpg", "  Résumé 2024 (final).pdf ", ".hidden", "a..b.txt"],
                         ids=["plain", "unicode-spaces", "dotfile", "double-dot-in-name"])
def test_plain_names_are_kept(raw: str) -> None:
    assert names.checked_filename(raw) == raw.strip()


def test_rendition_names_follow_the_original() -> None:
    assert names.rendition_filename("holiday.photo.jpg", "640", "webp") == "holiday.photo-640.webp"
    assert names.rendition_filename(".hidden", "poster", "jpg") == ".hidden-poster.jpg"
    with pytest.raises(InvalidUpload):
        names.checked_filename("x/y")


def test_assets_settings_are_validated() -> None:
    settings = load_settings({**BASE, "ASSET_RENDITION_SIZES": "640,160,1280",
                              "FAIRNESS_LIMITS": "assets=3, purchases=10"})
    assert settings.asset_rendition_sizes == (160, 640, 1280)
    assert settings.fairness_limits == {"assets": 3, "purchases": 10}
    assert load_settings(BASE).fairness_limits == {"assets": 4}
    for name, value in [("ASSET_RENDITION_SIZES", "8"), ("ASSET_RENDITION_SIZES", "160,160"),
                        ("ASSET_RENDITION_SIZES", "big"), ("FAIRNESS_LIMITS", "assets"),
                        ("FAIRNESS_LIMITS", "assets=0"), ("FAIRNESS_LIMITS", "Assets=2"),
                        ("ASSET_MAX_UPLOAD_BYTES", "0"), ("ASSET_LINK_SECONDS", "604801"),
                        ("ASSET_QUOTA_BYTES", "-1"), ("ASSET_MAX_IMAGE_PIXELS", "0")]:
        with pytest.raises(SettingsError, match=name):
            load_settings({**BASE, name: value})
