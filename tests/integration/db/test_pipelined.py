"""``domain.db.sql.pipelined``: statements sent together keep the meaning they have one by one."""
from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from domain.db.sql import Sql, pipelined
from tests.integration.db.conftest import MakeProbeEngine, wait_until_someone_waits_for
from tests.support.waiting import wait_for

LOCK_KEY = 4242
INSERT = Sql("INSERT INTO probe (id, note) VALUES (:id, :note)")
COUNT = Sql("SELECT count(*) FROM probe")
NOTES = Sql("SELECT id, note FROM probe WHERE id >= :from_id ORDER BY id")


@pytest.fixture
def engine(make_probe_engine: MakeProbeEngine) -> Engine:
    """An engine on a fresh database with one table, ``probe``."""
    return make_probe_engine("id int PRIMARY KEY, note text")


def test_each_statement_gives_its_rows_in_order(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = pipelined(conn, (INSERT, {"id": 1, "note": "a"}), (INSERT, {"id": 2, "note": "b"}),
                         (NOTES, {"from_id": 2}), (COUNT, {}))
        assert rows == [[], [], [(2, "b")], [(2,)]]
        conn.commit()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM probe")) == 2


def test_the_statements_belong_to_the_callers_transaction(engine: Engine) -> None:
    with engine.connect() as conn:
        pipelined(conn, (INSERT, {"id": 1, "note": "rolled back"}))
        assert conn.scalar(text("SELECT count(*) FROM probe")) == 1  # same transaction, not committed
        conn.rollback()
        pipelined(conn, (Sql("SELECT set_config('app.probe', :value, true)"), {"value": "kept"}))
        # SET LOCAL lasts until the transaction ends: the pipeline opened the transaction.
        assert conn.scalar(text("SELECT current_setting('app.probe')")) == "kept"
        conn.commit()
        assert conn.scalar(text("SELECT current_setting('app.probe', true)")) in ("", None)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM probe")) == 0


def test_a_check_after_a_lock_sees_what_the_lock_holder_committed(engine: Engine) -> None:
    """The write gate's promise: the check's snapshot is taken once the lock is granted."""
    holder = engine.connect()
    holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    holder.execute(text("INSERT INTO probe (id, note) VALUES (1, 'fence')"))
    seen: list[object] = []

    def check() -> None:
        with engine.connect() as conn:
            _, count = pipelined(conn, (Sql("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": LOCK_KEY}),
                                 (COUNT, {}))
            seen.append(count[0][0])
            conn.rollback()

    checker = threading.Thread(target=check)
    checker.start()
    try:
        wait_until_someone_waits_for(engine, LOCK_KEY, "the check")
        assert seen == []
        holder.commit()  # the row and the release of the lock, together
    finally:
        holder.close()
        checker.join(timeout=10)
    assert seen == [1]


def test_an_error_is_sqlalchemys_and_leaves_nothing_written(engine: Engine) -> None:
    with engine.connect() as conn:
        pipelined(conn, (INSERT, {"id": 1, "note": "first"}))
        conn.commit()
        with pytest.raises(IntegrityError) as raised:
            pipelined(conn, (INSERT, {"id": 2, "note": "second"}), (INSERT, {"id": 1, "note": "again"}))
        assert "probe_pkey" in str(raised.value)
        conn.rollback()
        with pytest.raises(ProgrammingError):
            pipelined(conn, (Sql("SELECT nothing FROM nowhere"), {}))
        conn.rollback()
        assert pipelined(conn, (NOTES, {"from_id": 0})) == [[(1, "first")]]  # usable again


def test_an_autocommit_connection_is_refused(engine: Engine) -> None:
    """There PostgreSQL would run the pipeline as one implicit transaction, not one by one."""
    with (engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
          pytest.raises(ValueError, match="autocommits")):
        pipelined(conn, (INSERT, {"id": 1, "note": "never"}))
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM probe")) == 0


def test_a_lost_connection_has_the_pool_replace_every_connection_opened_before_it(
        make_probe_engine: MakeProbeEngine) -> None:
    """As SQLAlchemy does for its own statements: after the server dropped every connection
    (a restart, a failover), one unit of work fails, not one per pooled connection."""
    engine = make_probe_engine("id int PRIMARY KEY, note text", pool_size=3, max_overflow=0)
    held = [engine.connect() for _ in range(3)]
    pids = [conn.scalar(text("SELECT pg_backend_pid()")) for conn in held]
    for conn in held:
        conn.close()  # back to the pool, where the server drops them
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        wait_for(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                                       (pids,)).fetchone() == (0,),
                 timeout=10, message="the pooled connections' backends to be gone")
    failed = 0
    for _ in range(3):
        with engine.connect() as conn:
            try:
                assert pipelined(conn, (COUNT, {})) == [[(0,)]]
            except OperationalError as exc:
                assert exc.connection_invalidated
                failed += 1
    assert failed == 1
