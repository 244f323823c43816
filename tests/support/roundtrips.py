"""Counting round trips to PostgreSQL, from the wire: libpq's protocol trace of every
connection an engine hands out while counting.

Each round trip ends with the server's ReadyForQuery (after a simple query, or after the
Sync that closes a pipeline), so the count of those messages is the count of round trips.
For code running in the test's thread: every traced connection writes into its engine's one
file, so a count taken while another thread's statement is being traced could read half a
line.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import IO, Any

from psycopg import pq
from sqlalchemy import Engine, event

FLAGS = pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE


class RoundTrips:
    """Round trips per engine name since counting began: ``count()`` while counting, and
    after it ended, the final figures."""

    def __init__(self, traces: Mapping[str, IO[str]]) -> None:
        self._traces = traces
        self._traced: dict[int, tuple[Any, IO[str]]] = {}  # connections being traced, by id
        self._final: dict[str, int] | None = None

    def count(self) -> dict[str, int]:
        """Round trips so far, per name."""
        if self._final is not None:
            return dict(self._final)
        # libpq writes the trace through a stdio stream of its own, flushed when untraced.
        for dbapi_connection, trace in list(self._traced.values()):
            if not dbapi_connection.closed:
                dbapi_connection.pgconn.untrace()
                self._trace(dbapi_connection, trace)
        counts = {}
        for name, trace in self._traces.items():
            trace.seek(0)
            counts[name] = sum(1 for line in trace if line.split("\t")[2:3] == ["ReadyForQuery"])
            trace.seek(0, 2)
        return counts

    def _trace(self, dbapi_connection: Any, trace: IO[str]) -> None:
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(FLAGS)
        self._traced[id(dbapi_connection)] = (dbapi_connection, trace)

    def _untrace(self, dbapi_connection: Any) -> None:
        if self._traced.pop(id(dbapi_connection), None) is not None and not dbapi_connection.closed:
            dbapi_connection.pgconn.untrace()

    def _finish(self) -> None:
        for dbapi_connection, _ in list(self._traced.values()):
            self._untrace(dbapi_connection)
        self._final = self.count()

    def listen(self, stack: ExitStack, engine: Engine, name: str) -> None:
        """Trace the connections ``engine`` hands out into ``name``'s count until ``stack`` closes."""
        trace = self._traces[name]

        def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            self._trace(dbapi_connection, trace)

        def checkin(dbapi_connection: Any, record: Any) -> None:
            if dbapi_connection is not None:
                self._untrace(dbapi_connection)

        event.listen(engine, "checkout", checkout)
        event.listen(engine, "checkin", checkin)
        stack.callback(event.remove, engine, "checkout", checkout)
        stack.callback(event.remove, engine, "checkin", checkin)


@contextmanager
def counting(engines: Mapping[str, Engine]) -> Iterator[RoundTrips]:
    """Trace each connection ``engines`` hand out (checked out) while the block runs.

    Connections checked out before the block are not traced: take none across it. A
    connection still out when the block ends stops being traced then, before its trace file
    is closed (libpq would go on writing to the file descriptor).
    """
    with ExitStack() as stack:
        traces = {name: stack.enter_context(tempfile.TemporaryFile(mode="w+")) for name in engines}
        trips = RoundTrips(traces)
        stack.callback(trips._finish)
        for name, engine in engines.items():
            trips.listen(stack, engine, name)
        yield trips
