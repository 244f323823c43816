"""Structured (JSON) logs carrying request, tenant, message and correlation ids."""
from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)
message_id: ContextVar[str | None] = ContextVar("message_id", default=None)
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_CONTEXT = {"request_id": request_id, "tenant_id": tenant_id,
            "message_id": message_id, "correlation_id": correlation_id}


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the ids bound in the current context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, var in _CONTEXT.items():
            value = var.get()
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send JSON logs to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
