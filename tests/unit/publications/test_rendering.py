"""Markdown is rendered to HTML that cannot run script: a list of XSS payloads, each checked
on what a browser would act on (every tag, attribute and URL of the output), not on strings."""
from __future__ import annotations

import re
import threading
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from domain.publications import rendering
from domain.publications.rendering import (
    ATTRIBUTES,
    MAX_DEPTH,
    MAX_TABLE_CELLS,
    TAGS,
    URL_SCHEMES,
    TooComplex,
    to_html,
)

PAYLOADS: dict[str, str] = {
    "script-tag": "<script>alert(1)</script>",
    "script-split": "<<script>script>alert(1)<</script>/script>",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "svg-onload": "<svg onload=alert(1)><circle r=1></svg>",
    "body-onload": "<body onload=alert(1)>",
    "details-ontoggle": "<details open ontoggle=alert(1)>x</details>",
    "input-onfocus": "<input autofocus onfocus=alert(1)>",
    "iframe-js": '<iframe src="javascript:alert(1)"></iframe>',
    "object-data": '<object data="javascript:alert(1)"></object>',
    "embed-src": '<embed src="javascript:alert(1)">',
    "form-action": '<form action="javascript:alert(1)"><button>go</button></form>',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base-href": '<base href="javascript:alert(1)//">',
    "style-url": '<div style="background:url(javascript:alert(1))">x</div>',
    "html-anchor-js": '<a href="javascript:alert(1)">x</a>',
    "mathml-confusion": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "md-link-js": "[click](javascript:alert(1))",
    "md-link-js-upper": "[click](JAVASCRIPT:alert(1))",
    "md-link-js-entity-colon": "[click](javascript&#58;alert(1))",
    "md-link-js-entity-letter": "[click](&#106;avascript:alert(1))",
    "md-link-js-hex-entity": "[click](&#x6A;avascript:alert(1))",
    "md-link-js-angle": "[click](<javascript:alert(1)>)",
    "md-link-js-spaces": "[click](   javascript:alert(1)   )",
    "md-link-js-newline-entity": "[click](java&#10;script:alert(1))",
    "md-link-js-tab-entity": "[click](java&#9;script:alert(1))",
    "md-link-vbscript": "[click](vbscript:msgbox(1))",
    "md-link-data-html": "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "md-link-file": "[click](file:///etc/passwd)",
    "md-link-attribute-break": '[click](https://example.com/" onmouseover="alert(1))',
    "md-link-title-break": '[click](https://example.com/ "t\\" onmouseover=\\"alert(1)")',
    "md-reference-js": "[click][evil]\n\n[evil]: javascript:alert(1)",
    "md-autolink-js": "<javascript:alert(1)>",
    "md-autolink-break": '<https://example.com/" onclick="alert(1)>',
    "md-image-js": "![x](javascript:alert(1))",
    "md-image-data-svg": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "md-image-data-png": "![x](data:image/png;base64,iVBORw0KGgo=)",
    "md-image-alt-break": '![x" onerror="alert(1)](https://example.com/a.png)',
    "md-html-block": "<div>\n<script>alert(1)</script>\n</div>",
    "md-fenced-html": "```html\n<script>alert(1)</script>\n```",
    "md-inline-code": "`<img src=x onerror=alert(1)>`",
    "md-table-cell": "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "md-emphasis-wrap": "**<svg/onload=alert(1)>**",
    "nul-and-controls": "[x](java\x00script:alert(1)) \x00<script>alert(1)</script>",
}

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


class _Elements(HTMLParser):
    """Every element start tag of a fragment with its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The start tags of ``html``."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def scheme_of(url: str) -> str:
    """The scheme a browser would use for ``url`` (after dropping the characters it ignores)."""
    return urlsplit(_CONTROL_OR_SPACE.sub("", url)).scheme.lower()


def assert_inert(html: str) -> None:
    """No tag off the allow-list, no event handler, no style but alignment, only safe URLs."""
    for tag, attrs in elements(html):
        assert tag in TAGS, f"tag <{tag}> in {html!r}"
        allowed = ATTRIBUTES.get(tag, set()) | ({"rel"} if tag == "a" else set())
        for name, value in attrs:
            assert name in allowed, f"attribute {name} on <{tag}> in {html!r}"
            if name in ("href", "src"):
                assert scheme_of(value or "") in {*URL_SCHEMES, ""}, f"{name}={value!r} in {html!r}"
            if name == "style":
                assert re.fullmatch(r"text-align:\s*(left|right|center)", value or ""), html


@pytest.mark.parametrize("markdown", PAYLOADS.values(), ids=list(PAYLOADS))
def test_an_xss_payload_renders_inert(markdown: str) -> None:
    assert_inert(to_html(markdown))


def test_html_written_in_the_text_is_left_out_and_its_words_kept() -> None:
    html = to_html("Say <script>alert(1)</script> <b>please</b>, 5 < 6")
    assert html == "<p>Say alert(1) please, 5 &lt; 6</p>"
    assert to_html("<div>\n<script>alert(1)</script>\n</div>\n\nafter") == "<p>after</p>"


def test_markdown_still_renders() -> None:
    html = to_html("# Title\n\n**bold** *it* ~~gone~~ [site](https://example.com) "
                   "[mail](mailto:hr@example.com) [rel](/publications)\n\n"
                   "- one\n- two\n\n| a | b |\n|--:|---|\n| 1 | 2 |\n\n![logo](https://example.com/l.png)")
    tags = [tag for tag, _ in elements(html)]
    for expected in ("h1", "strong", "em", "s", "a", "ul", "li", "table", "th", "td", "img"):
        assert expected in tags or (expected == "s" and "del" in tags), expected
    hrefs = [dict(attrs)["href"] for tag, attrs in elements(html) if tag == "a"]
    assert hrefs == ["https://example.com", "mailto:hr@example.com", "/publications"]
    assert all(dict(attrs).get("rel") == "noopener noreferrer nofollow"
               for tag, attrs in elements(html) if tag == "a")
    assert_inert(html)


def test_a_refused_link_keeps_its_words_and_loses_its_target() -> None:
    for markdown in ("[read this](javascript:alert(1))", "[read this](<javascript:alert(1)>)",
                     "[read this][x]\n\n[x]: vbscript:msgbox(1)"):
        html = to_html(markdown)
        assert "read this" in html
        assert all(not {"href", "src"} & dict(attrs).keys() for _, attrs in elements(html)), html


def test_an_image_keeps_its_alt_text_when_its_source_is_refused() -> None:
    assert to_html("![our logo](javascript:alert(1))") == '<p><img alt="our logo"></p>'


def test_a_lone_surrogate_or_invalid_text_does_not_stop_the_rendering() -> None:
    assert to_html("a\ud800b") == "<p>a?b</p>"


PATHOLOGICAL = {  # inputs that made a backtracking parser take seconds for 100,000 characters
    "unclosed images": "![" * 50_000,
    "unclosed links": "[a](b" * 20_000,
    "nested brackets": "[" * 50_000 + "a" + "]" * 50_000,
    "link openers and emphasis closers": "[ a_" * 25_000,
    "star underscore": "_*" * 50_000,
    "reference definitions": "[a]: b\n" * 10_000 + "[a]" * 10_000,
}


@pytest.mark.parametrize("markdown", PATHOLOGICAL.values(), ids=list(PATHOLOGICAL))
def test_a_pathological_body_renders_to_inert_html(markdown: str) -> None:
    # What it costs is measured in bench/render.py; here, that it renders, and safely.
    html = to_html(markdown)
    assert_inert(html)
    assert html.startswith("<p>")


NESTED = {  # the HTML parser behind nh3 takes seconds on these (its time grows with the depth)
    "block quotes": "> " * 50_000 + "a",
    "emphasis": "*a **a " * 7_000 + "b" + " a** a*" * 7_000,
    "lists": "".join("  " * i + "* a\n" for i in range(200)),
}


@pytest.mark.parametrize("markdown", NESTED.values(), ids=list(NESTED))
def test_a_body_nested_too_deep_is_refused(markdown: str) -> None:
    with pytest.raises(TooComplex, match=f"at most {MAX_DEPTH} levels"):
        to_html(markdown)


def test_the_nesting_limit_counts_elements() -> None:
    quoted = to_html("> " * (MAX_DEPTH - 1) + "a")  # the quotes and the paragraph inside them
    assert quoted.count("<blockquote>") == MAX_DEPTH - 1 and "<p>a</p>" in quoted
    with pytest.raises(TooComplex):
        to_html("> " * MAX_DEPTH + "a")
    # Elements that close themselves, side by side, nest nothing.
    flat = to_html("a  \nb  \nc\n\n***\n\n" * 100 + "![x](https://example.com/x.png) " * 100)
    assert (flat.count("<br>"), flat.count("<hr>"), flat.count("<img")) == (200, 100, 100)


def _table(columns: int, rows: int, row: str = "|x|", prefix: str = "") -> str:
    return "".join(f"{prefix}{line}\n" for line in
                   ["|" + "h|" * columns, "|" + ":-:|" * columns, *[row] * rows])


@pytest.mark.parametrize("prefix", ["", "> ", "- ", "1. ", "> - "],
                         ids=["top", "quote", "list", "ordered", "quoted-list"])
def test_a_table_is_padded_to_its_header_so_its_cells_are_counted_before_parsing(prefix: str) -> None:
    # One short row per line, each padded to the header's thousand columns: 5-11 KB of
    # Markdown would be 5-20 MB of HTML. Counted on the Markdown, wherever the table stands.
    wide = _table(1_000, 600, prefix=prefix)
    assert len(wide) < 12_000
    with pytest.raises(TooComplex, match=f"{MAX_TABLE_CELLS:,} table cells"):
        to_html(wide)


@pytest.mark.parametrize("line", ["\u00a0", "\u3000", "x\u2028", "\u2028x", "\x85"],
                         ids=["no-break-space", "ideographic-space", "line-separator-after",
                              "line-separator-before", "next-line"])
def test_a_line_blank_to_python_but_not_to_cmark_does_not_end_the_count(line: str) -> None:
    # cmark ends lines at CR and LF only, and a blank line holds spaces and tabs only: for
    # it, the table goes on past such a line, padding every row after it.
    body = _table(1_000, 520).replace("|x|\n", f"{line}\n", 1)
    assert rendering._table_cells(body) > MAX_TABLE_CELLS  # counted before cmark pads them
    with pytest.raises(TooComplex, match="table cells"):
        to_html(body)


def test_cells_the_markdown_count_misses_are_counted_in_the_html(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendering, "_table_cells", lambda markdown: 0)
    with pytest.raises(TooComplex, match="table cells"):
        to_html(_table(1_000, 30))
    assert to_html(_table(10, 30)).count("</td>") == 300


def test_tables_within_the_cell_budget_render_whole() -> None:
    columns, rows = 20, MAX_TABLE_CELLS // 20 - 2  # with the header and delimiter rows: the budget
    html = to_html(_table(columns, rows, row="|" + "1|" * columns))
    assert html.count("</td>") == columns * rows and html.count("</th>") == columns
    # A blank line ends a table: what follows is not its rows.
    assert to_html(_table(3, 1) + "\n" + "text\n" * (MAX_TABLE_CELLS // 2)).count("</td>") == 3
    with pytest.raises(TooComplex):  # the budget is for the body's tables together
        to_html("\n".join([_table(20, MAX_TABLE_CELLS // 40)] * 2))


def test_rendering_returns_what_it_allocates() -> None:
    # cmarkgfm's own helper keeps each document's tree and HTML (about 5 MB per 100,000
    # characters); the process must not grow with every body it renders.
    body = ("Join **us** at [the garden](https://example.com) *on Friday* ~~or not~~.\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n" * 2_000)[:100_000]
    to_html(body)

    def resident_mib() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    before = resident_mib()
    for _ in range(60):
        to_html(body)
    assert resident_mib() - before < 64  # kept: about 300 MiB


def test_threads_rendering_at_once_each_get_their_own_document() -> None:
    # cmark-gfm switches its strikethrough rule on and off in a table every parser shares.
    body = "word ~~gone~~ *kept* " * 200
    expected = to_html(body)
    results: list[str] = []

    def render() -> None:
        results.extend(to_html(body) for _ in range(100))

    threads = [threading.Thread(target=render) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert expected.count("<del>") == 200
    assert results == [expected] * 400
