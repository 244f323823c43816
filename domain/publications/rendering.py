"""Markdown to safe HTML: markdown-it-py with raw HTML off, then nh3 with an allow-list.

Two walls. markdown-it-py (CommonMark, tables, strikethrough) escapes any HTML written in
the text instead of passing it through, and refuses ``javascript:``, ``vbscript:``,
``file:`` and ``data:`` link targets. nh3 (ammonia) then keeps only the tags and
attributes listed here, links and images only to http, https and mailto (or relative
ones), and no event handler, style (but a table cell's alignment), class or id: whatever
slipped past the first wall is removed by the second.
"""
from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
})
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"},
              "th": {"style"}, "td": {"style"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Tags whose content goes too (not only the tag): nothing of a script is ever text.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template", "noscript"})


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def to_html(markdown: str) -> str:
    """The sanitised HTML of ``markdown``."""
    rendered = _parser().render(markdown)
    return nh3.clean(rendered, tags=set(TAGS), clean_content_tags=set(DROPPED_WITH_CONTENT),
                     attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow",
                     filter_style_properties={"text-align"}, strip_comments=True).strip()
