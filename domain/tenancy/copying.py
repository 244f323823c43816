"""Moving one tenant's rows between tenant databases with PostgreSQL ``COPY``.

Used by promotion (trial -> dedicated). Rows stream from ``COPY ... TO STDOUT`` straight
into ``COPY ... FROM STDIN`` in binary chunks, so memory stays bounded whatever the
tenant's size. The source is read in one REPEATABLE READ snapshot: the copy and the
source's checksums describe the same instant. A table's checksum is its row count and the
sum of a 64-bit hash of each row (``hash_record_extended``: the hash functions of the
column types, which PostgreSQL keeps stable across versions since hash partitioning
depends on them), so it does not depend on row order and a row copied wrong, twice or
not at all changes it.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy import Table
from sqlalchemy.engine import make_url

# The same text rendering of every value on both servers, whatever their defaults.
_SESSION = "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1"
PURGE_BATCH = 5_000


@dataclass(frozen=True)
class TableSum:
    """How many rows of the tenant a table holds, and their order-free checksum."""

    rows: int
    checksum: str

    def as_dict(self) -> dict[str, object]:
        """JSON-safe form (kept on the promotion row)."""
        return {"rows": self.rows, "checksum": self.checksum}


def libpq_dsn(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def connect(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg connection with a fixed text rendering (see ``_SESSION``)."""
    with psycopg.connect(libpq_dsn(url), autocommit=autocommit, options=_SESSION) as conn:
        yield conn


def _where_tenant(tenant_id: uuid.UUID) -> sql.Composable:
    return sql.SQL("tenant_id = {}::uuid").format(sql.Literal(str(tenant_id)))


def _columns(table: Table) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in table.c)


def checksum(conn: psycopg.Connection, table: Table, tenant_id: uuid.UUID) -> TableSum:
    """Row count and order-free checksum of the tenant's rows in ``table``."""
    row = conn.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text "
        "FROM {} AS t WHERE {}").format(sql.Identifier(table.name), _where_tenant(tenant_id))).fetchone()
    assert row is not None
    return TableSum(int(row[0]), str(row[1]))


def copy_table(source: psycopg.Connection, target: psycopg.Connection, table: Table,
               tenant_id: uuid.UUID) -> None:
    """Stream the tenant's rows of ``table`` from ``source`` into ``target`` (binary COPY)."""
    columns = _columns(table)
    out = sql.SQL("COPY (SELECT {} FROM {} WHERE {}) TO STDOUT (FORMAT BINARY)").format(
        columns, sql.Identifier(table.name), _where_tenant(tenant_id))
    into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table.name), columns)
    with source.cursor().copy(out) as reader, target.cursor().copy(into) as writer:
        for chunk in reader:
            writer.write(chunk)


def delete_rows(conn: psycopg.Connection, tables: list[Table], tenant_id: uuid.UUID, *,
                batch: int = PURGE_BATCH, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete the tenant's rows, children first, ``batch`` rows per statement; return how many.

    On an autocommit connection each batch commits on its own, so a big purge never holds
    long locks and a crash leaves a purge that the next run simply continues. Each table is
    done when a batch finds nothing left, not when a batch comes up short: a row updated
    while its batch waited for it (by a writer the write gate does not hold back: the
    relay, a delivery's completion at its origin) has moved, and that batch passes it by.
    """
    deleted = 0
    for table in reversed(tables):
        statement = sql.SQL(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {w} LIMIT {n}))").format(
            t=sql.Identifier(table.name), w=_where_tenant(tenant_id), n=sql.Literal(batch))
        while True:
            count = conn.execute(statement).rowcount
            deleted += count
            if on_batch is not None and count:
                on_batch(count)
            if count == 0:
                break
    return deleted
