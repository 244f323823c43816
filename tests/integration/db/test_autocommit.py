"""``domain.db.sql.autocommit`` and ``atomic``, statements sent straight to the driver outside
a caller's transaction: one statement committed as it runs, or several as one transaction of
their own; parameters converted as SQLAlchemy converts them, errors as SQLAlchemy's, and the
pooled connection handed back as the pool hands connections out."""
from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    Select,
    Table,
    bindparam,
    create_engine,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from domain.db.provider import ProviderSession, StatementWriter
from domain.db.sql import Sql, atomic, autocommit, pipelined
from tests.integration.db.conftest import MakeProbeEngine, wait_until_someone_waits_for

probe = Table("probe", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSONB))
INSERT = Sql(insert(probe).values(id=bindparam("id"), doc=bindparam("doc", type_=JSONB)))
INSERT_RETURNING = Sql("INSERT INTO probe (id) VALUES (:id) RETURNING id")


@pytest.fixture
def engine(make_probe_engine: MakeProbeEngine) -> Engine:
    """An engine with a pool of one connection on a fresh database with the table ``probe``."""
    return make_probe_engine("id int PRIMARY KEY, doc jsonb", pool_size=1, max_overflow=0)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM probe")))


def pooled_in_transaction_mode(engine: Engine) -> bool:
    """The pool's one connection is handed out in transaction mode, as every caller expects:
    a statement opens a transaction on the server."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        driver = conn.connection.driver_connection
        assert driver is not None
        return bool(driver.info.transaction_status == pq.TransactionStatus.INTRANS)


def test_the_statement_commits_as_it_runs_and_gives_its_rows(engine: Engine) -> None:
    assert autocommit(engine, INSERT_RETURNING, {"id": 7}) == [(7,)]
    assert autocommit(engine, INSERT, {"id": 8, "doc": {"a": 1}}) == []
    # A connection of its own sees both: nothing waits for a COMMIT.
    other = create_engine(engine.url, poolclass=None)
    try:
        with other.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM probe")) == 2
    finally:
        other.dispose()
    assert pooled_in_transaction_mode(engine)


def test_a_core_statements_parameters_are_converted_as_sqlalchemy_converts_them(engine: Engine) -> None:
    # A dict for a JSONB column is sent as JSONB, by autocommit and by pipelined alike.
    autocommit(engine, INSERT, {"id": 1, "doc": {"name": "Ada", "tags": ["x"]}})
    with engine.connect() as conn:
        pipelined(conn, (INSERT, {"id": 2, "doc": {"name": "Grace"}}))
        conn.commit()
        rows = conn.execute(text("SELECT id, jsonb_typeof(doc), doc->>'name' FROM probe ORDER BY id")).all()
    assert rows == [(1, "object", "Ada"), (2, "object", "Grace")]


@pytest.mark.parametrize("statement", [
    pytest.param(select(literal(1)), id="a literal"),
    pytest.param(select(bindparam("x", None, type_=Integer)), id="a parameter whose value is None"),
])
def test_a_statement_carrying_a_value_of_its_own_is_refused_when_made(statement: Select[Any]) -> None:
    # Such a value would be left out of the parameters sent: refused when the Sql is made
    # (at import, for a module's statements), not on its first run.
    with pytest.raises(ValueError, match="literal_column"):
        Sql(statement)


@pytest.mark.parametrize("statement", [
    pytest.param(select(probe.c.id).where(probe.c.id.in_(bindparam("ids", expanding=True))),
                 id="expanding IN"),
    pytest.param(select(bindparam("a.b", type_=Integer)), id="a name SQLAlchemy renames"),
])
def test_a_statement_the_driver_cannot_take_as_written_is_refused_when_made(statement: Select[Any]) -> None:
    with pytest.raises(ValueError, match="Sql"):
        Sql(statement)


def test_an_error_is_sqlalchemys_writes_nothing_and_returns_the_connection(engine: Engine) -> None:
    autocommit(engine, INSERT, {"id": 1, "doc": None})
    with pytest.raises(IntegrityError) as raised:
        autocommit(engine, INSERT, {"id": 1, "doc": {"again": True}})
    assert raised.value.orig.diag.constraint_name == "probe_pkey"  # type: ignore[union-attr]
    assert count(engine) == 1
    assert pooled_in_transaction_mode(engine)


def test_a_lost_connection_is_invalidated_and_the_next_statement_gets_a_new_one(engine: Engine) -> None:
    with engine.connect() as conn:
        pid = conn.scalar(text("SELECT pg_backend_pid()"))
        conn.rollback()
    other = create_engine(engine.url, poolclass=None)
    try:
        with other.begin() as conn:
            # Waits (up to 5 s) until the backend is gone.
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    finally:
        other.dispose()
    with pytest.raises(OperationalError) as raised:
        autocommit(engine, INSERT_RETURNING, {"id": 1})
    assert raised.value.connection_invalidated
    assert autocommit(engine, INSERT_RETURNING, {"id": 2}) == [(2,)]
    assert pooled_in_transaction_mode(engine)


def test_a_writer_commits_each_statement_and_keeps_a_sessions_info(engine: Engine) -> None:
    writer = StatementWriter(engine, {"db_key": "management"})
    writer.info["outbox_pending"] = ["kept"]
    assert writer.execute_sql(INSERT_RETURNING, {"id": 3}) == [(3,)]
    assert count(engine) == 1
    assert writer.info == {"db_key": "management", "outbox_pending": ["kept"]}


def test_a_sessions_statement_belongs_to_its_transaction(engine: Engine) -> None:
    with ProviderSession(bind=engine, info={"db_key": "management"}) as session:
        assert session.execute_sql(INSERT_RETURNING, {"id": 4}) == [(4,)]
        session.rollback()
    assert count(engine) == 0


@pytest.mark.parametrize("info", [
    pytest.param({"db_key": "trial", "tenant_id": uuid.uuid4()}, id="a tenant session"),
    pytest.param({"db_key": "trial"}, id="an unscoped tenant database session"),
])
def test_only_a_management_session_takes_statements_the_tenant_filter_would_not_see(
        engine: Engine, info: dict[str, Any]) -> None:
    with ProviderSession(bind=engine, info=info) as session, pytest.raises(PermissionError):
        session.execute_sql(INSERT_RETURNING, {"id": 5})
    assert count(engine) == 0


# --- atomic: several statements, one transaction of their own, one round trip -------------------

LOCK_KEY = 4343
LOCK = Sql("SELECT pg_advisory_xact_lock(:key)")
COUNT = Sql("SELECT count(*) FROM probe")


def test_atomic_statements_commit_together_or_not_at_all(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        with pytest.raises(IntegrityError):
            atomic(conn, (INSERT_RETURNING, {"id": 1}), (INSERT_RETURNING, {"id": 1}))
        assert conn.scalar(text("SELECT count(*) FROM probe")) == 0  # the first went with the second
        assert atomic(conn, (INSERT_RETURNING, {"id": 1}), (INSERT_RETURNING, {"id": 2}), (COUNT, {})) == [
            [(1,)], [(2,)], [(2,)]]
    other = create_engine(engine.url, poolclass=None)
    try:
        with other.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM probe")) == 2  # committed when it returned
    finally:
        other.dispose()


def test_atomic_holds_a_lock_to_the_end_and_counts_what_the_holder_committed(engine: Engine) -> None:
    """The rate's promise: the count after the lock sees every row committed before it was granted."""
    holder = create_engine(engine.url, poolclass=None)
    seen: list[object] = []

    def count_under_lock() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            seen.append(atomic(conn, (LOCK, {"key": LOCK_KEY}), (COUNT, {}))[1][0][0])

    try:
        with holder.connect() as held:
            held.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            held.execute(text("INSERT INTO probe (id) VALUES (1)"))
            counter = threading.Thread(target=count_under_lock)
            counter.start()
            wait_until_someone_waits_for(holder, LOCK_KEY, "the atomic statements")
            assert seen == []
            held.commit()
        counter.join(timeout=10)
        assert seen == [1]
        with holder.connect() as conn:  # the implicit transaction ended: its lock is free again
            assert conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    finally:
        holder.dispose()


def test_atomic_statements_failing_before_they_are_sent_commit_nothing(engine: Engine) -> None:
    # The pipeline's closing Sync would commit what was already sent: a value psycopg cannot
    # send in the second statement must take the first one back too.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, pytest.raises(DBAPIError):
        atomic(conn, (INSERT_RETURNING, {"id": 1}), (INSERT_RETURNING, {"id": object()}))
    assert count(engine) == 0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, pytest.raises(TypeError):
        atomic(conn, (INSERT_RETURNING, {"id": 1}), (INSERT, {"id": 2, "doc": {"not JSON": object()}}))
    assert count(engine) == 0
    assert pooled_in_transaction_mode(engine)


def test_atomic_is_refused_inside_a_transaction(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(ValueError, match="autocommit"):
        atomic(conn, (INSERT_RETURNING, {"id": 1}))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN")  # a transaction opened by hand on an autocommit connection
        with pytest.raises(ValueError, match="autocommit"):
            atomic(conn, (INSERT_RETURNING, {"id": 1}))
        conn.exec_driver_sql("ROLLBACK")
    assert count(engine) == 0
