"""SQL helpers the contexts share: single-row INSERTs built once and bound per call,
statements sent together in one round trip, and which unique constraint an
``IntegrityError`` names."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import psycopg
from sqlalchemy import CTE, ClauseElement, Connection, Table, bindparam, insert, text
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError

_DIALECT = psycopg_dialect.dialect()


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


@dataclass(frozen=True, eq=False)
class Sql:
    """A statement for ``pipelined``: SQL written as for ``sqlalchemy.text`` (``:name``
    parameters), or a Core statement whose parameters are named ``bindparam``s (so the
    schema stays the tables' to say)."""

    source: str | ClauseElement

    @cached_property
    def compiled(self) -> str:
        """The statement in psycopg's parameter style (compiled once)."""
        statement = text(self.source) if isinstance(self.source, str) else self.source
        return str(statement.compile(dialect=_DIALECT))


def pipelined(connection: Connection, *statements: tuple[Sql, Mapping[str, Any]]) -> list[Sequence[Any]]:
    """Run ``statements`` in order, sent together in one round trip; the rows (tuples) of each.

    psycopg's pipeline mode, inside the caller's transaction: PostgreSQL still runs them one
    after the other, and at READ COMMITTED each takes a snapshot of its own once the one
    before it is done (so a check placed after a lock sees what the lock waited for). For a
    run of statements on a hot path whose later ones need no answer from the earlier ones.
    A transaction not yet begun costs its BEGIN round trip first (psycopg sends it, and
    waits for it, before the pipeline). Refused on an autocommit connection, where
    PostgreSQL would run the whole pipeline as one implicit transaction instead.

    An error comes out as SQLAlchemy's (``OperationalError``, ``IntegrityError``, ...), and
    a lost connection is invalidated, as ``Connection.execute`` would do; the statements
    after the failing one do not run, and the caller rolls back.

    The statements go straight to the driver: a session's hooks (the data provider's
    tenant filter and write gate, SQLAlchemy's cursor events) never see them. So: the
    management database, or the data provider's own statements (``gated_writes``).
    """
    if not connection.in_transaction():
        connection.begin()  # as execute() would: the caller's commit or rollback ends it
    raw = connection.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(f"pipelined() needs a psycopg connection, not {type(raw).__name__}")
    if raw.autocommit:
        raise ValueError("pipelined() runs inside a transaction; this connection autocommits")
    cursors: list[psycopg.Cursor[Any]] = []
    try:
        with raw.pipeline():
            for statement, params in statements:
                cursors.append(raw.execute(statement.compiled, params))
        return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]
    except psycopg.Error as exc:
        lost = connection.dialect.is_disconnect(exc, raw, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance("; ".join(statement.compiled for statement, _ in statements),
                                  [dict(params) for _, params in statements], exc, psycopg.Error,
                                  connection_invalidated=lost, dialect=connection.dialect) from exc
