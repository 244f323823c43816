"""The web app in the test process, built from a test's own settings and disposed afterwards."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import Flask

from config.settings import Settings
from web import create_app


@contextlib.contextmanager
def web_app(settings: Settings, **config: Any) -> Iterator[Flask]:
    """``create_app(settings)`` with Flask ``config`` (``TESTING`` on unless told otherwise);
    its database engines are disposed on the way out."""
    app = create_app(settings)
    app.config.update({"TESTING": True, **config})
    try:
        yield app
    finally:
        app.extensions["allotment.provider"].dispose()
