"""What a file is: sniffed from its first bytes (magic numbers), never taken from its name.

``sniff`` reads the signature with ``filetype`` (pure Python) plus the executable formats
it does not know (Mach-O, scripts with a ``#!`` line). ``mismatch`` compares the result
with what the uploader declared (the Content-Type) and what the file name's extension
says: a PNG named ``.jpg``, or an executable renamed ``.png``, is refused by content.
"""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass

import filetype

KINDS = ("image", "video", "audio", "document", "archive", "text", "executable", "other")
DEFAULT_BLOCKED: tuple[str, ...] = ("executable",)
GENERIC = "application/octet-stream"
# How many leading bytes sniffing needs (filetype reads at most 8 KiB).
HEAD_BYTES = 8192
# The formats the assets pool processes (renditions, poster frames).
IMAGES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
VIDEOS = frozenset({"video/mp4", "video/webm", "video/quicktime"})

_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
            "image/apng": "image/png", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav",
            "application/x-zip-compressed": "application/zip"}
# Formats that share one container: a declared member of a family matches any other.
_FAMILIES = (
    frozenset({"video/mp4", "video/quicktime", "video/x-m4v", "video/3gpp", "audio/mp4"}),
    frozenset({"application/zip", "application/epub+zip", "application/java-archive",
               "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               "application/vnd.openxmlformats-officedocument.presentationml.presentation",
               "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
               "application/vnd.oasis.opendocument.presentation"}),
)
_EXECUTABLE_TYPES = frozenset({"application/x-msdownload", "application/x-executable",
                               "application/x-mach-binary", "application/x-sh",
                               "application/x-shellscript", "application/wasm",
                               "application/x-msi", "application/java-archive",
                               "application/vnd.android.package-archive", "text/x-script"})
_EXECUTABLE_EXTENSIONS = frozenset({
    "exe", "dll", "com", "bat", "cmd", "msi", "scr", "sh", "bash", "ps1", "vbs", "jar", "apk",
    "app", "elf", "so", "dylib", "wasm", "pif", "cpl", "gadget", "reg"})
_MACH_O = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
           b"\xca\xfe\xba\xbe")
_ARCHIVES = frozenset({"application/zip", "application/x-tar", "application/x-rar-compressed",
                       "application/gzip", "application/x-bzip2", "application/x-7z-compressed",
                       "application/x-xz", "application/zstd", "application/x-lz4", "application/x-lzip",
                       "application/x-lzop", "application/x-compress", "application/x-brotli",
                       "application/vnd.ms-cab-compressed", "application/x-rpm", "application/x-deb",
                       "application/x-unix-archive"})
_DOCUMENTS = ("application/pdf", "application/msword", "application/vnd.ms-", "application/vnd.openxml",
              "application/vnd.oasis", "application/rtf", "application/epub+zip", "application/postscript")
_TEXTS = frozenset({"application/json", "application/xml", "text/csv"})
# The built-in table only (not the machine's /etc/mime.types), so every machine agrees.
_NAMES = mimetypes.MimeTypes()
for _type, _ext in (("image/webp", ".webp"), ("video/x-m4v", ".m4v"), ("video/webm", ".webm"),
                    ("application/x-msdownload", ".exe"), ("application/x-msdownload", ".dll")):
    _NAMES.add_type(_type, _ext)
# Types ``filetype`` recognises by signature: declaring one promises that signature.
_SIGNED = frozenset(_ALIASES.get(t.mime, t.mime) for t in filetype.types) - {GENERIC}


@dataclass(frozen=True)
class Sniffed:
    """What the content is: its type, its kind, and whether a signature said so."""

    mime: str
    kind: str
    signature: bool


def normalise(content_type: str | None) -> str:
    """A content type without parameters, lower-case, aliases folded (``image/jpg``)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(mime, mime) or GENERIC


def kind_of(mime: str) -> str:
    """The kind of a content type (one of ``KINDS``)."""
    mime = normalise(mime)
    if mime in _EXECUTABLE_TYPES:
        return "executable"
    if mime in _ARCHIVES:
        return "archive"
    if mime.startswith(_DOCUMENTS):
        return "document"
    for kind in ("image", "video", "audio", "text"):
        if mime.startswith(kind + "/"):
            return kind
    return "text" if mime in _TEXTS else "other"


def sniff(head: bytes) -> Sniffed:
    """The type of a file from its first bytes (``HEAD_BYTES`` are enough)."""
    if head.startswith(_MACH_O):
        return Sniffed("application/x-mach-binary", "executable", True)
    if head.startswith(b"#!"):
        return Sniffed("text/x-script", "executable", True)
    found = filetype.guess(head) if head else None
    if found is not None:
        mime = normalise(found.mime)
        return Sniffed(mime, kind_of(mime), True)
    if _looks_like_text(head):
        return Sniffed("text/plain", "text", False)
    return Sniffed(GENERIC, "other", False)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the head is fine
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def type_of_name(filename: str) -> str | None:
    """The content type a file name's extension stands for, if it names one."""
    guessed, _ = _NAMES.guess_type(filename, strict=False)
    return normalise(guessed) if guessed else None


def named_executable(filename: str) -> bool:
    """True if the file name's extension is one of an executable or a script."""
    return filename.rpartition(".")[2].lower() in _EXECUTABLE_EXTENSIONS if "." in filename else False


def _same(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in _FAMILIES)


def mismatch(declared: str, filename: str, sniffed: Sniffed) -> str | None:
    """Why the content does not match the declared type or the name's extension, or None."""
    claims = [("declared", normalise(declared))]
    by_name = type_of_name(filename)
    if by_name is not None:
        claims.append(("name", by_name))
    for source, claimed in claims:
        if claimed == GENERIC:
            continue
        if sniffed.signature and not _same(claimed, sniffed.mime) and not (
                sniffed.kind == "text" and kind_of(claimed) == "text"):
            return f"the content is {sniffed.mime}, not {claimed} as the {_SAYS[source]}"
        if not sniffed.signature and claimed in _SIGNED:
            return f"the content is not {claimed} as the {_SAYS[source]}"
    return None


_SAYS = {"declared": "upload declared", "name": "file name says"}


def kind_for(sniffed: Sniffed, filename: str) -> str:
    """The kind policy decides on: the content's, or executable when the name is one."""
    if sniffed.kind == "executable" or named_executable(filename):
        return "executable"
    return sniffed.kind
