"""Markdown to safe HTML: cmark-gfm in its safe mode, then nh3 with an allow-list.

cmark-gfm is GitHub's CommonMark parser (C, with the tables and strikethrough of GitHub
Flavored Markdown). It is built to take time in proportion to its input whatever that input
is: a body of nested or unclosed brackets, emphasis or links costs what prose of the same
length costs, where a Python parser spent seconds of a web worker's CPU on one such body
(bench/render.py measures it).

Two walls. In its safe mode cmark-gfm leaves out any HTML written in the text (its words
between tags stay, as text) and empties ``javascript:``, ``vbscript:``, ``file:`` and
``data:`` link targets (but an image's ``data:`` picture). nh3 (ammonia) then keeps only the
tags and attributes listed here, links and images only to http, https and mailto (or
relative ones), and no event handler, style (but a table cell's alignment), class or id:
whatever slipped past the first wall is removed by the second. A link whose target was
refused keeps its words and loses its target.

An HTML parser (nh3's, as a browser's) spends time in proportion to how deeply the element
it reads is nested: text nested 50,000 block quotes deep took it 11 s. A body whose HTML
nests deeper than ``MAX_DEPTH`` elements is refused (``NestedTooDeep``) before it reaches nh3.
"""
from __future__ import annotations

import re

import cmarkgfm
import nh3
from cmarkgfm.cmark import Options

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
})
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"},
              "th": {"style"}, "td": {"style"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Tags whose content goes too (not only the tag): nothing of a script is ever text.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template", "noscript"})
EXTENSIONS = ("table", "strikethrough")
# Safe mode is cmark's default (no CMARK_OPT_UNSAFE); invalid UTF-8 becomes U+FFFD; a table
# cell's alignment comes as a style (the one style nh3 lets through) instead of ``align``.
_OPTIONS = Options.CMARK_OPT_VALIDATE_UTF8 | Options.CMARK_OPT_TABLE_PREFER_STYLE_ATTRIBUTES
# Deeper than any document needs: a table cell's link in bold, ten lists deep in quotes.
MAX_DEPTH = 40
# cmark's HTML escapes every "<" of the text, so each match is a tag it wrote (its comments
# start "<!"); an element it leaves open writes "/>" (br, hr, img).
_TAG = re.compile(r"<(/?)[a-z][a-z0-9]*[^>]*?(/?)>")


class NestedTooDeep(ValueError):
    """The body's elements nest deeper than ``MAX_DEPTH``."""

    def __init__(self) -> None:
        super().__init__(f"must not nest quotes, lists or emphasis this deep (at most {MAX_DEPTH} "
                         "levels, its paragraphs and table cells counted)")


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
    """The sanitised HTML of ``markdown``; ``NestedTooDeep`` if it nests too deep."""
    # cmark reads UTF-8: a lone surrogate (which JSON can carry) would not encode.
    text = markdown.encode("utf-8", "replace").decode("utf-8")
    rendered = cmarkgfm.markdown_to_html_with_extensions(text, options=_OPTIONS, extensions=list(EXTENSIONS))
    if not _depth_within(rendered, MAX_DEPTH):
        raise NestedTooDeep()
    return nh3.clean(rendered, tags=set(TAGS), clean_content_tags=set(DROPPED_WITH_CONTENT),
                     attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
                     attribute_filter=_without_empty_targets,
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow",
                     filter_style_properties={"text-align"}, strip_comments=True).strip()
