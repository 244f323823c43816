"""Benchmark: what rendering a publication's Markdown costs on the worst bodies an author can
send, against ordinary prose of the same length, in one run.

    .venv/bin/python -m bench.render [--chars 100000] [--rounds 5]   # a few seconds

A draft's body (at most 100,000 characters, ``domain.publications.values.MAX_BODY``) is
rendered by the web worker that saves it, so its cost is a request's. Ours is
``domain.publications.rendering.to_html`` (cmark-gfm, the nesting check, nh3) on:

- prose: headings, paragraphs with emphasis, links and code, lists, a table: the baseline;
- the inputs that make Markdown parsers backtrack (cmark's own pathological tests and the
  ones that cost markdown-it-py seconds): unclosed and nested brackets, images, emphasis,
  links, reference definitions, block quotes and lists nested deep (refused when their HTML
  would nest past ``MAX_DEPTH``: the time until that refusal), and tables whose rows are
  padded to a header a thousand columns wide (refused past ``MAX_TABLE_CELLS``).

Each is rendered ``--rounds`` times, alternating, and the median CPU time kept. The
previous renderer (markdown-it-py, still installed by the test tools) is shown beside it
when importable, for reference only. Final line: ``render: prose_ms=.. worst_ms=..
ratio=..`` where ``ratio`` = the worst body / prose; target ``ratio <= 5`` (no body costs
much more than prose of its length does).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import time
from collections.abc import Callable

from bench.common import Target, final_line, table, targets_line
from domain.publications.rendering import TooComplex, to_html

PROSE_BLOCK = """## Summer party

Join us **on Friday** in the *garden* behind [building B](https://example.com/map) from
5 pm. Bring a friend, and `sunscreen`; the [menu](/publications/menu) is ~~final~~ almost final.

- drinks at the bar
- a band from 7 pm
  1. first set
  2. second set

> Last year we were 120; this year we expect more.

| what | where | when |
|:-----|:-----:|-----:|
| food | tent  | 6 pm |

"""

PATHOLOGICAL: dict[str, Callable[[int], str]] = {
    "unclosed images": lambda n: "![" * (n // 2),
    "unclosed links": lambda n: "[a](b" * (n // 5),
    "unclosed links <": lambda n: "[a](<b" * (n // 6),
    "nested brackets": lambda n: "[" * (n // 2) + "]" * (n // 2),
    "link openers": lambda n: "[a" * (n // 2),
    "link closers": lambda n: "a]" * (n // 2),
    "link in link": lambda n: "[[a](b)" * (n // 7),
    "link openers and emphasis closers": lambda n: "[ a_" * (n // 4),
    "emphasis openers": lambda n: "_a " * (n // 3),
    "emphasis closers": lambda n: "a_ " * (n // 3),
    "mismatched emphasis": lambda n: "*a_ " * (n // 4),
    "star underscore": lambda n: "_*" * (n // 2),
    "nested emphasis (refused)": lambda n: "*a **a " * (n // 14) + "b" + " a** a*" * (n // 14),
    "reference definitions": lambda n: "[a]: b\n" * (n // 10) + "[a]" * (n // 10),
    "autolinks": lambda n: "<" * n,
    "entities": lambda n: "&#" * (n // 2),
    "backticks": lambda n: "".join("e" + "`" * i for i in range(1, int((2 * n) ** 0.5))),
    "nested quotes (refused)": lambda n: "> " * (n // 2) + "a",
    "nested lists (refused)": lambda n: "".join("  " * i + "* a\n" for i in range(int((n / 2) ** 0.5))),
    "table cells": lambda n: "|a|\n|-|\n" + "|x" * (n // 2),
    "padded table rows (refused)": lambda n: "|" + "h|" * 1000 + "\n|" + "-|" * 1000 + "\n" + "|x|\n" * n,
    "padded rows, widest allowed": lambda n: "|" + "h|" * 1000 + "\n|" + "-|" * 1000 + "\n" + "|x|\n" * 18,
}


def _ours(markdown: str) -> None:
    with contextlib.suppress(TooComplex):  # refused: what it cost to find out is the figure
        to_html(markdown)


def _previous() -> Callable[[str], object] | None:
    try:
        markdown_it = importlib.import_module("markdown_it")
    except ImportError:
        return None
    parser = markdown_it.MarkdownIt("commonmark", {"html": False, "linkify": False})
    return parser.enable(["table", "strikethrough"]).render


def _cpu_ms(render: Callable[[str], object], text: str) -> float:
    start = time.process_time()
    render(text)
    return (time.process_time() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=100_000, help="length of each body (100000)")
    parser.add_argument("--rounds", type=int, default=5, help="renderings of each body (5)")
    parser.add_argument("--no-previous", action="store_true", help="do not time markdown-it-py")
    args = parser.parse_args(argv)

    bodies = {"prose (baseline)": (PROSE_BLOCK * (args.chars // len(PROSE_BLOCK) + 1))[:args.chars]}
    bodies |= {name: make(args.chars)[:args.chars] for name, make in PATHOLOGICAL.items()}
    previous = None if args.no_previous else _previous()
    ours: dict[str, list[float]] = {name: [] for name in bodies}
    theirs: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, text in bodies.items():
            ours[name].append(_cpu_ms(_ours, text))
    if previous is not None:  # once each: it takes seconds on several of them
        theirs = {name: _cpu_ms(previous, text) for name, text in bodies.items()}
    medians = {name: statistics.median(times) for name, times in ours.items()}
    prose = medians["prose (baseline)"]
    rows = [[name, len(bodies[name]), f"{ms:.1f}", f"{ms / prose:.2f}",
             f"{theirs[name]:.1f}" if name in theirs else "-"] for name, ms in medians.items()]
    print(table(["body", "chars", "ours cpu ms", "x prose", "markdown-it-py cpu ms"], rows))
    worst_name = max(medians, key=lambda name: medians[name])
    worst = medians[worst_name]
    ratio = worst / prose
    print(f"worst: {worst_name}")
    print(targets_line([Target("ratio", ratio, "<=", 5.0)]))
    print(final_line("render", {"prose_ms": prose, "worst_ms": worst, "ratio": ratio}, {"ratio": 2}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
