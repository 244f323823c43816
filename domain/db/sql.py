"""SQL helpers the contexts share: single-row INSERTs built once and bound per call, and
which unique constraint an ``IntegrityError`` names."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import CTE, Table, bindparam, insert
from sqlalchemy.exc import IntegrityError


def bound_insert(table: Table, name: str, columns: Iterable[str]) -> CTE:
    """A single-row INSERT of ``columns`` as the CTE ``name``, one bound parameter
    ``<name>_<column>`` per column: a hot path builds its statement once around it."""
    return insert(table).values(
        {c: bindparam(f"{name}_{c}", type_=table.c[c].type) for c in columns}).cte(name)


def bound_params(name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``bound_insert(table, name, row.keys())`` for ``row``."""
    return {f"{name}_{c}": value for c, value in row.items()}


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint the failed statement broke, if PostgreSQL named one."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)
