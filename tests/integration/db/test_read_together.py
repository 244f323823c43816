"""``domain.db.sql.read_together``: reads the contexts hand out, several in one round trip, in
the session's transaction or, on an autocommit connection, as a transaction of their own."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, Integer, String, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from domain.db.sql import Read, Sql, read_one, read_together
from tests.integration.db.conftest import MakeProbeEngine
from tests.support import roundtrips


class Base(DeclarativeBase):
    pass


class Probe(Base):
    __tablename__ = "probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note: Mapped[str] = mapped_column(String)


NOTES = Sql("SELECT id, note FROM probe WHERE id >= :from_id ORDER BY id")
COUNT = Sql("SELECT count(*) FROM probe")


def notes_from(from_id: int) -> Read[dict[int, str]]:
    return Read(NOTES, {"from_id": from_id}, dict)


def count() -> Read[int]:
    return Read(COUNT, {}, lambda rows: int(rows[0][0]))


@pytest.fixture
def engine(make_probe_engine: MakeProbeEngine) -> Engine:
    """An engine with a pool of one connection on a fresh database with the table ``probe``."""
    engine = make_probe_engine("id int PRIMARY KEY, note text", pool_size=1, max_overflow=0)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO probe VALUES (1, 'one'), (2, 'two'), (3, 'three')"))
    return engine


def test_each_read_becomes_what_it_says_in_order_in_one_round_trip(engine: Engine) -> None:
    with roundtrips.counting({"db": engine}) as trips, Session(engine) as session:
        session.execute(text("SELECT 1"))  # the transaction is open: its BEGIN is behind us
        opened = trips.count()["db"]
        assert read_together(session, notes_from(2), count(), notes_from(9)) == [
            {2: "two", 3: "three"}, 3, {}]
        assert trips.count()["db"] == opened + 1


def test_in_a_transaction_they_see_its_writes_and_what_was_only_added(engine: Engine) -> None:
    with Session(engine) as session:
        session.execute(text("INSERT INTO probe VALUES (4, 'written')"))
        session.add(Probe(id=5, note="added"))  # not flushed yet: a query through the session would flush it
        assert read_one(session, notes_from(4)) == {4: "written", 5: "added"}
        session.rollback()
        assert read_one(session, count()) == 3


def test_in_autocommit_they_are_a_transaction_of_their_own_in_one_round_trip(engine: Engine) -> None:
    with roundtrips.counting({"db": engine}) as trips, Session(engine) as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        assert read_together(session, count(), notes_from(3)) == [3, {3: "three"}]
    assert trips.count() == {"db": 1}  # no BEGIN, no COMMIT, no ROLLBACK when it goes back


def test_a_failing_read_is_sqlalchemys_error_and_the_session_goes_on(engine: Engine) -> None:
    broken = Read(Sql("SELECT no_such_column FROM probe"), {}, list)
    with Session(engine) as session:  # in a transaction: the caller rolls back
        with pytest.raises(ProgrammingError, match="no_such_column"):
            read_together(session, count(), broken)
        session.rollback()
        assert read_one(session, count()) == 3
    with Session(engine) as session:  # in autocommit: nothing to roll back
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        with pytest.raises(ProgrammingError, match="no_such_column"):
            read_together(session, broken)
        assert read_one(session, count()) == 3


def test_a_session_scoped_to_a_tenant_is_refused(engine: Engine) -> None:
    # Straight to the driver, no tenant filter would see the reads.
    with Session(engine, info={"tenant_id": uuid.uuid4()}) as session, \
            pytest.raises(PermissionError, match="tenant"):
        read_together(session, count())


def test_a_session_that_does_not_autoflush_is_not_flushed(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Probe(id=6, note="pending"))
        with session.no_autoflush:
            assert read_one(session, notes_from(6)) == {}
        assert read_one(session, notes_from(6)) == {6: "pending"}
