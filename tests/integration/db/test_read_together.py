"""``domain.db.sql.read_together``: reads the contexts hand out, several in one round trip, in
the session's transaction or, on an autocommit connection, as a transaction of their own."""
from __future__ import annotations

import pytest
from psycopg import pq
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
        connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        assert read_together(session, count(), notes_from(3)) == [3, {3: "three"}]
        assert trips.count() == {"db": 1}  # no BEGIN, no COMMIT
        driver = connection.connection.driver_connection
        assert driver is not None and driver.info.transaction_status == pq.TransactionStatus.IDLE


def test_a_failing_read_is_sqlalchemys_error_and_the_transaction_is_left_to_roll_back(engine: Engine) -> None:
    broken = Read(Sql("SELECT no_such_column FROM probe"), {}, list)
    with Session(engine) as session:
        with pytest.raises(ProgrammingError, match="no_such_column"):
            read_together(session, count(), broken)
        session.rollback()
        assert read_one(session, count()) == 3
