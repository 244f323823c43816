"""Markdown to safe HTML: cmark-gfm in its safe mode, then nh3 with an allow-list.

cmark-gfm is GitHub's CommonMark parser (C, with the tables and strikethrough of GitHub
Flavored Markdown). It takes time in proportion to its input whatever that input is: a
body of nested or unclosed brackets, emphasis or links costs what prose of the same length
costs, where markdown-it-py spent up to 3.8 s of a web worker's CPU on one such body
(bench/render.py measures it).

Two walls. In its safe mode cmark-gfm leaves out any HTML written in the text (its words
between tags stay, as text) and empties ``javascript:``, ``vbscript:``, ``file:`` and
``data:`` link targets (but an image's ``data:`` picture). nh3 (ammonia) then keeps only the
tags and attributes listed here, links and images only to http, https and mailto (or
relative ones), and no event handler, style (but a table cell's alignment), class or id:
whatever slipped past the first wall is removed by the second. A link whose target was
refused keeps its words and loses its target.

Two shapes cost more than their length, and a body with either is refused
(``TooComplex``) before it costs it:

- a table pads every row to its header's width, so 5 KB of Markdown (a thousand columns,
  six hundred one-cell rows) would become 5 MB of HTML: at most ``MAX_TABLE_CELLS`` cells
  in all, counted on the Markdown before it is parsed;
- an HTML parser (nh3's, as a browser's) spends time in proportion to how deeply the
  element it reads is nested (50,000 block quotes: 11 s): at most ``MAX_DEPTH`` elements
  deep, counted on cmark's HTML before nh3 reads it.

cmark-gfm is driven here rather than through ``cmarkgfm.markdown_to_html_with_extensions``,
which frees neither the document's tree nor the HTML it returns (about 5 MB lost per
100,000 characters: a long-lived web or worker process would only grow), and under one lock:
the library turns its strikethrough rule on and off in a table all parsers share, so two
threads parsing at once can lose each other's ``~~``.
"""
from __future__ import annotations

import re
import threading
from typing import Any

import cffi
import nh3
from cmarkgfm import _cmark
from cmarkgfm.cmark import Options

from domain.text import without_lone_surrogates

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
})
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"},
              "th": {"style"}, "td": {"style"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Tags whose content goes too (not only the tag): nothing of a script is ever text.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template", "noscript"})
EXTENSIONS = (b"table", b"strikethrough")
# Safe mode is cmark's default (no CMARK_OPT_UNSAFE); invalid UTF-8 becomes U+FFFD; a table
# cell's alignment comes as a style (the one style nh3 lets through) instead of ``align``.
_OPTIONS = Options.CMARK_OPT_VALIDATE_UTF8 | Options.CMARK_OPT_TABLE_PREFER_STYLE_ATTRIBUTES
# Deeper than any document needs: a table cell's link in bold, ten lists deep in quotes.
MAX_DEPTH = 40
# A hundred rows of twenty columns, ten times over.
MAX_TABLE_CELLS = 20_000


class TooComplex(ValueError):
    """A body whose HTML would cost far more than its length: too many table cells, or
    elements nested too deep."""


_TOO_MANY_CELLS = f"must not have more than {MAX_TABLE_CELLS:,} table cells in all"


# --- cmark-gfm ---------------------------------------------------------------------------

_LIB: Any = _cmark.lib
_FFI: Any = _cmark.ffi
# What the binding does not declare: freeing a document (exported by the same library) and
# the C library's free, for the HTML cmark allocates with it (its default allocator).
_OWN = cffi.FFI()
_OWN.cdef("void cmark_node_free(void *node); void free(void *ptr);")
_CMARK: Any = _OWN.dlopen(_cmark.__file__)
_LIBC: Any = _OWN.dlopen(None)
_LOCK = threading.Lock()
_LIB.cmark_gfm_core_extensions_ensure_registered()
_EXTENSIONS = [_LIB.cmark_find_syntax_extension(name) for name in EXTENSIONS]
if any(extension == _FFI.NULL for extension in _EXTENSIONS):
    raise ImportError(f"cmark-gfm lacks one of the extensions {EXTENSIONS}")


def _cmark_html(text: str) -> str:
    """cmark-gfm's HTML of ``text``, everything it allocated freed."""
    data = text.encode("utf-8")
    with _LOCK:
        parser = _LIB.cmark_parser_new(_OPTIONS)
        try:
            for extension in _EXTENSIONS:
                _LIB.cmark_parser_attach_syntax_extension(parser, extension)
            _LIB.cmark_parser_feed(parser, data, len(data))
            document = _LIB.cmark_parser_finish(parser)
            try:
                extensions = _LIB.cmark_parser_get_syntax_extensions(parser)
                html = _LIB.cmark_render_html(document, _OPTIONS, extensions)
                try:
                    return str(_FFI.string(html).decode("utf-8"))
                finally:
                    _LIBC.free(html)
            finally:
                _CMARK.cmark_node_free(document)
        finally:
            _LIB.cmark_parser_free(parser)


# --- what a body would cost ----------------------------------------------------------------

# A table's delimiter row ("| --- | :-: |"), after whatever quotes and list markers hold it:
# at least one pipe, every cell dashes with optional colons.
_CONTAINER = re.compile(r"^(?:[ \t]*(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t])))*[ \t]*")
_DELIMITER_ROW = re.compile(r"\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?")
_LINE_END = re.compile(r"\r\n|\r|\n")  # cmark's, not str.splitlines()'s (which also ends at U+2028 ...)


def _table_cells(markdown: str) -> int:
    """At least as many cells as the body's tables would have: each delimiter row's columns
    times its table's lines, a table ending at the first blank line (one pass). Lines and
    blanks as cmark sees them: a line of U+00A0 or U+3000 is not blank to it."""
    cells = columns = 0
    for line in _LINE_END.split(markdown):
        content = line[_CONTAINER.match(line).end():].strip(" \t")  # type: ignore[union-attr]  # matches ""
        if not content:
            columns = 0
        elif _DELIMITER_ROW.fullmatch(content):
            columns = max(columns, content.strip("|").count("|") + 1)
            cells += 2 * columns  # the header row and this one
        else:
            cells += columns
    return cells


# cmark's HTML escapes every "<" of the text, so each match is a tag it wrote (its comments
# start "<!"); an element it leaves open writes "/>" (br, hr, img).
_TAG = re.compile(r"<(/?)[a-z][a-z0-9]*[^>]*?(/?)>")


def _depth_within(html: str, limit: int) -> bool:
    depth = 0
    for tag in _TAG.finditer(html):
        if tag.group(1):
            depth -= 1
        elif not tag.group(2):
            depth += 1
            if depth > limit:
                return False
    return True


def _without_empty_targets(tag: str, attribute: str, value: str) -> str | None:
    # cmark's safe mode refuses a link target by emptying it; an empty href would link to the
    # page itself, so the link goes and its words stay.
    if attribute in ("href", "src") and not value.strip():
        return None
    return value


def to_html(markdown: str) -> str:
    """The sanitised HTML of ``markdown``; ``TooComplex`` if it would cost far more than its length."""
    if _table_cells(markdown) > MAX_TABLE_CELLS:  # refused before cmark pads them
        raise TooComplex(_TOO_MANY_CELLS)
    rendered = _cmark_html(without_lone_surrogates(markdown))  # cmark reads UTF-8
    if rendered.count("</td>") + rendered.count("</th>") > MAX_TABLE_CELLS:  # what the count above missed
        raise TooComplex(_TOO_MANY_CELLS)
    if not _depth_within(rendered, MAX_DEPTH):
        raise TooComplex(f"must not nest quotes, lists or emphasis this deep (at most {MAX_DEPTH} "
                         "levels, its paragraphs and table cells counted)")
    return nh3.clean(rendered, tags=set(TAGS), clean_content_tags=set(DROPPED_WITH_CONTENT),
                     attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
                     attribute_filter=_without_empty_targets,
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow",
                     filter_style_properties={"text-align"}, strip_comments=True).strip()
