"""A readable that counts and hashes what passes through it and stops past a limit."""
from __future__ import annotations

import hashlib
from typing import Protocol

from domain.assets.errors import FileTooLarge


class Readable(Protocol):
    """Anything with ``read(size)`` (a request body, a multipart part, a file)."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""


class Metered:
    """Reads from ``source`` while counting and hashing; FileTooLarge once more than
    ``limit`` bytes have come, before they are handed on."""

    def __init__(self, source: Readable, limit: int) -> None:
        self._source = source
        self.limit = limit
        self.size = 0
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """The next chunk (at most ``limit + 1`` bytes are ever read in all)."""
        room = self.limit + 1 - self.size
        data = self._source.read(room if size is None or size < 0 else min(size, room))
        self.size += len(data)
        if self.size > self.limit:
            raise FileTooLarge(self.limit)
        self._digest.update(data)
        return data

    @property
    def sha256(self) -> str:
        """The SHA-256 of what was read so far (hex)."""
        return self._digest.hexdigest()
