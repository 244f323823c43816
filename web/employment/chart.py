"""Laying out an org chart as SVG, left to right: each person a box, their reports in the
next column, every leaf on a row of its own and each manager centred on their reports.

A chart of 500 people stays readable: boxes never overlap or shrink, the drawing grows
down (a row per leaf) and right (a column per level), and the page scrolls.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.employment.reporting import ReportLine

BOX_W, BOX_H = 220, 40
COL_GAP, ROW_H, MARGIN = 48, 50, 12
NAME_CHARS, DETAIL_CHARS = 28, 32


@dataclass(frozen=True)
class Box:
    """One person's box: where it is and what it says."""

    id: uuid.UUID
    manager_id: uuid.UUID | None
    x: int
    y: int
    name: str
    title: str  # the whole name and email, shown on hover
    detail: str


@dataclass(frozen=True)
class Layout:
    """The drawing: its size, the boxes and the connector paths."""

    width: int
    height: int
    boxes: list[Box]
    links: list[str]  # SVG path data, manager to report


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def layout(lines: list[ReportLine]) -> Layout:
    """Place ``lines`` (roots first, each person followed by their reports, depth 0 at the
    roots) on a grid and draw an elbow from each manager to each of their reports."""
    shown = {line.person.id for line in lines}
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for line in lines:
        if line.manager_id in shown:
            children.setdefault(line.manager_id, []).append(line.person.id)  # type: ignore[arg-type]
    row_y: dict[uuid.UUID, float] = {}
    rows = 0
    for line in lines:  # leaves take the next row, in reading order
        if line.person.id not in children:
            row_y[line.person.id] = rows * ROW_H
            rows += 1
    for line in reversed(lines):  # then each manager sits between their first and last report
        kids = children.get(line.person.id)
        if kids:
            row_y[line.person.id] = (row_y[kids[0]] + row_y[kids[-1]]) / 2
    depth = {line.person.id: line.depth for line in lines}
    top = min(depth.values(), default=0)
    boxes = [Box(line.person.id, line.manager_id if line.manager_id in shown else None,
                 MARGIN + (line.depth - top) * (BOX_W + COL_GAP), MARGIN + round(row_y[line.person.id]),
                 _cut(line.person.name, NAME_CHARS), f"{line.person.name} <{line.person.work_email}>",
                 _cut(line.person.job_type or line.person.work_email, DETAIL_CHARS)) for line in lines]
    at = {box.id: box for box in boxes}
    links = []
    for box in boxes:
        if box.manager_id is not None:
            manager = at[box.manager_id]
            mid = manager.x + BOX_W + COL_GAP // 2
            links.append(f"M{manager.x + BOX_W} {manager.y + BOX_H // 2} H{mid} "
                         f"V{box.y + BOX_H // 2} H{box.x}")
    width = MARGIN * 2 + (max(depth.values(), default=top) - top + 1) * (BOX_W + COL_GAP) - COL_GAP
    height = MARGIN * 2 + max(rows, 1) * ROW_H - (ROW_H - BOX_H)
    return Layout(width, height, boxes, links)
