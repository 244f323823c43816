"""SQL helpers the contexts share: single-row INSERTs built once and bound per call,
statements sent straight to the driver (``pipelined`` in the caller's transaction,
``atomic`` as one transaction of their own, ``autocommit`` one committing as it runs, and
``read_together``: reads the contexts hand out, several in one round trip), and which
unique constraint an ``IntegrityError`` names."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

import psycopg
from sqlalchemy import CTE, ClauseElement, Connection, Engine, Table, bindparam, insert, text
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, PoolProxiedConnection

_DIALECT = psycopg_dialect.dialect()
IDLE = psycopg.pq.TransactionStatus.IDLE
TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
T = TypeVar("T")


def bound_insert(table: Table, name: str, columns: Iterable[str]) -> CTE:
    """A single-row INSERT of ``columns`` as the CTE ``name``, one bound parameter
    ``<name>_<column>`` per column: a hot path builds its statement once around it."""
    return insert(table).values(
        {c: bindparam(f"{name}_{c}", type_=table.c[c].type) for c in columns}).cte(name)


def bound_params(name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``bound_insert(table, name, row.keys())`` for ``row``."""
    return {f"{name}_{c}": value for c, value in row.items()}


def timed_out(exc: BaseException) -> bool:
    """True if PostgreSQL cancelled the statement behind ``exc`` because it waited for a lock
    longer than ``lock_timeout`` or ran longer than ``statement_timeout`` (or an operator
    cancelled it): nothing it did was kept, and the same request may succeed later."""
    found = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(found, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled)


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint the failed statement broke, if PostgreSQL named one."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


@dataclass(frozen=True, eq=False)
class Sql:
    """A statement sent straight to the driver (``pipelined``, ``atomic``, ``autocommit``):
    SQL written as for ``sqlalchemy.text`` (``:name`` parameters), or a Core statement whose
    parameters are named ``bindparam``s (so the schema stays the tables' to say).

    A Core statement's parameters are converted as SQLAlchemy would convert them (a JSONB
    column's dict is sent as JSONB): the conversions are looked up once, with the SQL, when
    the statement is made. So is what the driver could not be sent as written: a parameter
    with a value of its own, a name SQLAlchemy would rename, a list expanded at run time."""

    source: str | ClauseElement

    def __post_init__(self) -> None:
        _ = self._prepared  # compiled and checked now, at import, not on a first request

    @cached_property
    def _prepared(self) -> tuple[str, dict[str, Callable[[Any], Any]]]:
        statement = text(self.source) if isinstance(self.source, str) else self.source
        compiled = statement.compile(dialect=_DIALECT)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("Sql cannot send a parameter rendered at run time (expanding IN, "
                             "literal_execute): write = ANY(:name) with a list")
        if compiled.escaped_bind_names:
            raise ValueError(f"Sql parameters must be plain names: {sorted(compiled.escaped_bind_names)}")
        converters = {}
        for name, parameter in compiled.binds.items():
            if not parameter.required:  # a value of its own (None included) would never be sent
                raise ValueError(f"Sql takes named parameters only; {compiled.bind_names[parameter]!r} "
                                 "carries a value of its own (write literal_column, not literal)")
            convert = parameter.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if convert is not None:
                converters[name] = convert
        return str(compiled), converters

    @property
    def compiled(self) -> str:
        """The statement in psycopg's parameter style (compiled once)."""
        return self._prepared[0]

    def bind(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` as the driver takes them."""
        converters = self._prepared[1]
        if not converters:
            return params
        return {name: converters[name](value) if name in converters else value
                for name, value in params.items()}


def _psycopg(raw: Any) -> psycopg.Connection[Any]:
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(f"this needs a psycopg connection, not {type(raw).__name__}")
    return raw


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    return _psycopg(connection.connection.driver_connection)


def _rows(cursor: psycopg.Cursor[Any]) -> list[Any]:
    """The statement's rows; none for one that returns none. (Read from the result's status:
    ``cursor.description`` would build a Column for every field of the result first.)"""
    result = cursor.pgresult
    return cursor.fetchall() if result is not None and result.status == TUPLES_OK else []


def _send_together(raw: psycopg.Connection[Any], bound: Sequence[tuple[str, Mapping[str, Any]]],
                   on_failure: Callable[[BaseException], None] | None = None) -> list[Sequence[Any]]:
    """``bound`` statements in one round trip (psycopg's pipeline); the rows of each.
    ``on_failure`` sees a failure raised while they were being sent, before the Sync."""
    cursors: list[psycopg.Cursor[Any]] = []
    with raw.pipeline():
        try:
            for sql, params in bound:
                cursors.append(raw.execute(sql, params))
        except BaseException as exc:
            if on_failure is not None:
                on_failure(exc)
            raise
    return [_rows(cursor) for cursor in cursors]


def _bound(statements: Sequence[tuple[Sql, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every statement's SQL and converted parameters, before anything is sent."""
    return [(statement.compiled, statement.bind(params)) for statement, params in statements]


def _lost(pool: Pool, pooled: PoolProxiedConnection,
          invalidate: Callable[[BaseException], None]) -> Callable[[BaseException], None]:
    """What SQLAlchemy does when a statement finds its connection lost, for one sent straight to
    the driver: every connection the pool opened before this one is replaced at its next
    checkout (the server probably restarted: they are lost too), and this one is invalidated
    (``invalidate``: the Connection's, or the pooled connection's own)."""

    def lost(exc: BaseException) -> None:
        if pooled.is_valid:
            pool._invalidate(pooled, exc, _checkin=False)  # private: what Connection does on a disconnect
            invalidate(exc)

    return lost


def _as_sqlalchemy_error(exc: psycopg.Error, dialect: Dialect, raw: psycopg.Connection[Any],
                         statements: Sequence[tuple[Sql, Mapping[str, Any]]],
                         invalidate: Callable[[BaseException], None]) -> DBAPIError:
    """The error SQLAlchemy would raise for ``exc``; a lost connection is invalidated (with
    ``_lost``, its pool's older connections too)."""
    lost = dialect.is_disconnect(exc, raw, None)
    if lost:
        invalidate(exc)
    return DBAPIError.instance("; ".join(statement.compiled for statement, _ in statements),
                               [dict(params) for _, params in statements], exc, psycopg.Error,
                               connection_invalidated=lost, dialect=dialect)


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
    pooled = connection.connection
    raw = _psycopg(pooled.driver_connection)
    if raw.autocommit:
        raise ValueError("pipelined() runs inside a transaction; this connection autocommits")
    bound = _bound(statements)
    try:
        return _send_together(raw, bound)
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(exc, connection.dialect, raw, statements,
                                   _lost(connection.engine.pool, pooled, connection.invalidate)) from exc


def in_autocommit(connection: Connection) -> bool:
    """Whether ``connection``'s statements commit as they run (the driver is in autocommit)."""
    return bool(_driver(connection).autocommit)


def atomic(connection: Connection, *statements: tuple[Sql, Mapping[str, Any]]) -> list[Sequence[Any]]:
    """Run ``statements`` as one transaction of their own, sent together in one round trip;
    the rows (tuples) of each.

    On an autocommit connection, psycopg's pipeline sends no BEGIN and one Sync at the end:
    PostgreSQL runs the statements as one implicit transaction, committed once the last one
    ran, or rolled back whole when one fails (the ones after it do not run). They still
    run one after the other, each on a snapshot of its own at READ COMMITTED, and a
    transaction-level lock taken by one is held until that commit: a lock, then a write
    that counts what the lock guards, cost one round trip instead of four (BEGIN, the two,
    COMMIT). Straight to the driver, as ``pipelined``: the management database only.
    """
    pooled = connection.connection
    raw = _psycopg(pooled.driver_connection)
    if not raw.autocommit or raw.info.transaction_status != IDLE:
        raise ValueError("atomic() runs its own transaction; take an autocommit connection")
    bound = _bound(statements)

    def roll_back_what_was_sent(exc: BaseException) -> None:
        if not (isinstance(exc, psycopg.Error) and exc.sqlstate):
            # Failed in this process (a value psycopg cannot send, an interruption): the
            # pipeline's closing Sync would commit the statements already sent. Closing the
            # connection first makes PostgreSQL roll them back.
            connection.invalidate(exc)

    try:
        return _send_together(raw, bound, roll_back_what_was_sent)
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(exc, connection.dialect, raw, statements,
                                   _lost(connection.engine.pool, pooled, connection.invalidate)) from exc


def autocommit(engine: Engine, statement: Sql, params: Mapping[str, Any]) -> Sequence[Any]:
    """Run one statement on its own, committed as it runs; its rows (tuples).

    For a unit of work whose whole write is one statement (atomic on its own, as every
    PostgreSQL statement is): a pooled connection, switched to autocommit for the
    statement and back before it returns to the pool. No BEGIN and COMMIT round trips, and
    none of a session's machinery, which cost a one-statement request more CPU than the
    statement (the sign-up, the web tier's hot path). Straight to the driver, as
    ``pipelined``: no session hooks (tenant filter, write gate) see it, so the management
    database only. Errors come out as SQLAlchemy's, a lost connection is invalidated.
    """
    pooled = engine.raw_connection()
    try:
        raw = _psycopg(pooled.driver_connection)
        raw.autocommit = True
        try:
            cursor = raw.execute(statement.compiled, statement.bind(params))
            return _rows(cursor)
        except psycopg.Error as exc:
            raise _as_sqlalchemy_error(exc, engine.dialect, raw, [(statement, params)],
                                       _lost(engine.pool, pooled, pooled.invalidate)) from exc
        finally:
            if raw.closed:
                pass  # lost, and invalidated above
            elif raw.info.transaction_status == IDLE:
                raw.autocommit = False  # the pool hands out connections in transaction mode
            else:  # interrupted while the statement ran: the connection's state is unknown
                pooled.invalidate()
    finally:
        pooled.close()


@dataclass(frozen=True, eq=False)
class Read(Generic[T]):
    """A read sent straight to the driver, and what its rows (tuples) become. A context hands
    out its reads this way so that a caller needing several, from several contexts, makes
    them in one round trip (``read_together``) without writing their SQL itself."""

    sql: Sql
    params: Mapping[str, Any]
    parse: Callable[[Sequence[Any]], T]


def read_together(session: Session, *reads: Read[Any]) -> list[Any]:
    """``reads`` on ``session``'s connection in one round trip; what each one's rows
    become, in order.

    In the session's transaction (``pipelined``), or, on a connection in autocommit, as one
    implicit transaction of their own (``atomic``: no BEGIN, no COMMIT). Objects added to
    the session are flushed first, as a query through it would (unless it does not
    autoflush). Straight to the driver, as both: no tenant filter sees them, so a session
    scoped to a tenant is refused.
    """
    if session.info.get("tenant_id") is not None:
        raise PermissionError("read_together bypasses the tenant filter: not on a tenant's session")
    if session.autoflush:
        session.flush()
    connection = session.connection()
    run = atomic if in_autocommit(connection) else pipelined
    results = run(connection, *((read.sql, read.params) for read in reads))
    return [read.parse(rows) for read, rows in zip(reads, results, strict=True)]


def read_one(session: Session, read: Read[T]) -> T:
    """One read (``read_together``): what its rows become."""
    value: T = read_together(session, read)[0]
    return value
