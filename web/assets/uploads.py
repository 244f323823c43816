"""Request bodies read as streams: the raw body of an API upload, and the file part of an
HTML form's ``multipart/form-data``, parsed as it arrives.

Flask's ``MAX_CONTENT_LENGTH`` (1 MiB app-wide) stays for every other route; an upload view
raises it for its own request only (``allow_body``), and the domain's ``Metered`` reader
stops at the upload limit exactly. ``StreamedForm`` hands the file part over as a readable
while the rest of the body is still on the wire (Werkzeug's form parser would first spool
the whole file to a temporary file): the fields before the file (the CSRF token) are read
first, so the token is checked before a byte of the file is stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import BadRequest
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from web.errors import ApiError
from web.i18n import gettext

READ_BYTES = 64 * 1024
# Room for the multipart framing and the small fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 4096


def allow_body(limit: int) -> None:
    """Let this request's body be up to ``limit`` bytes (plus framing)."""
    request.max_content_length = limit + FORM_OVERHEAD_BYTES


@dataclass
class FilePart:
    """The file of a form, readable as it arrives."""

    name: str
    filename: str
    content_type: str | None
    form: StreamedForm
    _buffer: bytearray = field(default_factory=bytearray)
    _done: bool = False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the file (all that is left when negative); ``b""`` at its end."""
        while not self._done and (size < 0 or len(self._buffer) < size):
            event = self.form.next_event()
            if not isinstance(event, Data):
                raise BadRequest(gettext("the form ended inside its file"))
            self._buffer += event.data
            self._done = not event.more_data
        take = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data


class StreamedForm:
    """A ``multipart/form-data`` request body, parsed part by part as it is read."""

    def __init__(self) -> None:
        if request.mimetype != "multipart/form-data" or "boundary" not in request.mimetype_params:
            raise ApiError(415, "unsupported_media_type", gettext("expected multipart/form-data"),
                           "Content-Type")
        self._stream = request.stream
        self._ended = False
        # The parser's buffer holds at most a few reads: each read is drained into events.
        self._decoder = MultipartDecoder(request.mimetype_params["boundary"].encode(), 4 * READ_BYTES,
                                         max_parts=50)

    def next_event(self) -> object:
        """The next parser event, reading the body as needed."""
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:
                raise BadRequest(gettext("the form is malformed: %(reason)s", reason=str(exc))) from None
            if not isinstance(event, NeedData):
                return event
            if self._ended:
                raise BadRequest(gettext("the form ended early"))
            chunk = self._stream.read(READ_BYTES)
            self._ended = not chunk
            self._decoder.receive_data(chunk or None)

    def fields_then_file(self, file_field: str) -> tuple[dict[str, str], FilePart | None]:
        """The text fields before the file field ``file_field``, and that file (None if the
        form has none)."""
        fields: dict[str, str] = {}
        while True:
            event = self.next_event()
            if isinstance(event, Epilogue):
                return fields, None
            if isinstance(event, File) and event.name == file_field:
                return fields, FilePart(event.name, event.filename, _content_type(event.headers), self)
            if isinstance(event, Field | File):
                fields[event.name] = self._value()

    def _value(self) -> str:
        value = bytearray()
        while True:
            event = self.next_event()
            if not isinstance(event, Data):
                raise BadRequest(gettext("a form field ended early"))
            value += event.data
            if len(value) > MAX_FIELD_BYTES:
                reason = gettext("a form field holds %(size)s bytes at most", size=MAX_FIELD_BYTES)
                raise ApiError(413, "field_too_large", reason, "body")
            if not event.more_data:
                return value.decode(errors="replace")


def _content_type(headers: Headers) -> str | None:
    return headers.get("Content-Type")
