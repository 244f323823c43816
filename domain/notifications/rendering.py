"""The email renderer port: Jinja2 templates (``templates/<name>.txt`` and ``.html``) turned
into the two parts of an email.

Jinja2 stays out of the domain (an import-linter contract); the adapter lives in
``workers/mail_rendering.py`` and reaches handlers as ``ctx.ports["renderer"]``. Templates
call ``_("...")`` for product strings: the renderer passes the recipient's translator.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Where the email templates are: base.{txt,html} (branding, layout) and one pair per kind.
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Rendered:
    """The two parts of an email."""

    text: str
    html: str


class EmailRenderer(Protocol):
    """Renders ``<template>.txt`` and ``<template>.html`` with ``context`` and ``_``."""

    def render(self, template: str, context: Mapping[str, Any], gettext: Callable[..., str]) -> Rendered:
        """Both parts of the email ``template`` for ``context``."""
