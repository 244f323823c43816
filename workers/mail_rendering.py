"""The email renderer: Jinja2 templates of the notifications context, turned into the plain
text and HTML parts of an email (``domain.notifications.rendering.EmailRenderer``).

It lives here because the domain does not import Jinja2. The HTML templates are
autoescaped; the text templates are not (a plain-text part has nothing to escape). A
missing variable is an error, not an empty string.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from domain.notifications.rendering import TEMPLATES, Rendered


class JinjaEmailRenderer:
    """Renders ``<name>.txt`` and ``<name>.html`` from the templates folder."""

    def __init__(self, folder: Path = TEMPLATES) -> None:
        self._env = Environment(loader=FileSystemLoader(str(folder)), undefined=StrictUndefined,
                                autoescape=select_autoescape(enabled_extensions=("html",),
                                                             default_for_string=False),
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                # The templates ship with the code: no stat() of both files per email.
                                auto_reload=False)

    def render(self, template: str, context: Mapping[str, Any], gettext: Callable[..., str]) -> Rendered:
        """Both parts of ``template`` for ``context``; ``_`` translates product strings."""
        values = {**context, "_": gettext}
        return Rendered(self._env.get_template(f"{template}.txt").render(values),
                        self._env.get_template(f"{template}.html").render(values))
