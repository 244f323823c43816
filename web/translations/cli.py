"""``flask translations check``: product strings a locale's catalogue does not translate.

The strings are extracted from the code as Babel does (``babel.cfg``: Python calls of ``_``,
``_l`` and ``N_``, Jinja2 templates of pages and emails) and compared with each locale's compiled
catalogue; any missing string makes the command exit 1. Catalogues are maintained with
Babel's own tool (README, Notifications).
"""
from __future__ import annotations

from pathlib import Path

import click
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from flask import current_app

from domain.translations import checks
from web.translations import bp

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "_l": None}
SOURCES = ("domain", "web")  # babel.cfg's patterns live under these; nothing else is walked


def extract_keys(root: Path = ROOT) -> set[str]:
    """Every product string the code uses (babel.cfg's mapping)."""
    with (root / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    def walked(path: str) -> bool:
        relative = Path(path).resolve().relative_to(root.resolve()).parts
        return not relative or (relative[0] in SOURCES and not relative[-1].startswith((".", "_")))

    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(root), method_map, options_map, keywords=KEYWORDS, directory_filter=walked):
        key = message[0] if isinstance(message, tuple) else message
        if key:
            found.add(key)
    return found


@bp.cli.command("check")
def check() -> None:
    """Report the product strings each locale's catalogue lacks (exit 1 if any)."""
    catalogues = current_app.extensions["allotment.catalogues"]
    keys = extract_keys()
    missing = checks.missing_keys(catalogues, keys)
    stale = checks.stale_template(catalogues, keys)
    for locale, absent in missing.items():
        click.echo(f"{locale}: {len(absent)} missing of {len(keys)}")
        for key in absent:
            click.echo(f"  {key!r}")
    if stale:
        click.echo(f"messages.pot: {len(stale)} not extracted yet")
        for key in stale:
            click.echo(f"  {key!r}")
    if stale or any(missing.values()):
        raise SystemExit(1)
