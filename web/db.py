"""The request's unit of work: sessions opened on demand, committed after the view
returns, and the outbox published once the commit is done (EXAMPLES §5).

A tenant being promoted makes its writes wait (the data provider's write gate); a view
whose tenant moved meanwhile gets ``TenantMoved``. ``App`` then rolls the whole unit of
work back and runs the view again on the new route, so the caller sees a slower answer,
never an error, and nothing is written twice (nothing was committed before the retry:
a request with a one-statement writer, whose statement commits as it runs, is never run
again; it cannot open a tenant session anyway).

A view whose whole write is one statement may take ``management_writer()`` instead of a
session (the sign-up, the web tier's hot path): the statement commits as it runs, one
round trip instead of three and none of a session's machinery, and its outbox messages
are published after the view like everyone's.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Flask, current_app, g
from werkzeug.exceptions import ServiceUnavailable

from domain.db.provider import DataProvider, ProviderSession, StatementWriter, TenantMoved
from domain.db.sql import timed_out
from domain.identity.services import PasswordSealer
from domain.messaging import outbox
from web.errors import timeout_response
from workers.publisher import publish


def provider() -> DataProvider:
    """This process's data provider."""
    return current_app.extensions["allotment.provider"]  # type: ignore[no-any-return]


def sealer() -> PasswordSealer:
    """Seals passwords for the worker that hashes them."""
    return current_app.extensions["allotment.sealer"]  # type: ignore[no-any-return]


def management_db() -> ProviderSession:
    """The request's management-database session (committed after the view)."""
    _refuse_beside_writer()
    if "db" not in g:
        g.db = provider().management()
    return g.db  # type: ignore[no-any-return]


def management_writer() -> StatementWriter:
    """For a view whose whole write is one statement on the management database (atomic on
    its own, as every PostgreSQL statement is): the statement commits as it runs, which
    spares the BEGIN and COMMIT round trips and the session; what it recorded in the outbox
    is published after the view all the same. Such a request writes nothing else:
    ``management_db`` and ``tenant_db`` refuse after it, and it refuses after them.
    """
    if "db" in g or "tenant_dbs" in g:
        raise RuntimeError("this request has a transactional unit of work; a one-statement "
                           "writer would commit outside it")
    if "writer" not in g:
        g.writer = provider().management_writer()
    return g.writer  # type: ignore[no-any-return]


def tenant_db(tenant_id: uuid.UUID) -> ProviderSession:
    """The request's session on a tenant's database (tenant-filtered)."""
    _refuse_beside_writer()
    sessions = g.setdefault("tenant_dbs", {})
    if tenant_id not in sessions:
        sessions[tenant_id] = provider().tenant(tenant_id)
    return sessions[tenant_id]  # type: ignore[no-any-return]


def _refuse_beside_writer() -> None:
    if "writer" in g:
        raise RuntimeError("a request whose management write commits on its own writes nothing else")


# How long a view keeps going again while its tenant is found moved but not yet routed
# anew (a promotion that died between its fence and its switch, until it is resumed).
MOVED_RETRY_SECONDS = 10.0


class App(Flask):
    """Flask whose views run again, from a clean unit of work, when their tenant moved."""

    def dispatch_request(self) -> Any:
        """Run the view; its tenant writes pass the write gate here, inside the retry."""
        deadline = time.monotonic() + MOVED_RETRY_SECONDS
        while True:
            try:
                answer = super().dispatch_request()
                for session in _open_sessions():  # what fails at the database fails in the view
                    session.flush()
                return answer
            except TenantMoved:
                if "writer" in g:  # its statement may have committed: running it again would repeat it
                    raise ServiceUnavailable("the tenant moved during the request; retry",
                                             retry_after=1) from None
                _abandon_unit_of_work()
                if time.monotonic() > deadline:
                    raise ServiceUnavailable("the tenant is moving to its own database; retry shortly",
                                             retry_after=5) from None
                time.sleep(0.05)  # back-off before the next try; the route is read afresh


def _abandon_unit_of_work() -> None:
    """Roll back and forget every session and callback of this request."""
    for session in _open_sessions():
        outbox.discard_pending(session)
        session.rollback()
        session.close()
    g.pop("db", None)
    g.pop("tenant_dbs", None)
    g.pop("after_commit", None)


def _open_sessions() -> list[ProviderSession]:
    sessions = [g.db] if "db" in g else []
    return sessions + list(g.get("tenant_dbs", {}).values())


def init_app(app: Flask) -> None:
    """Commit after a successful view, roll back otherwise, publish after commit."""

    @app.after_request
    def _commit(response: Any) -> Any:
        failed = response.status_code >= 400
        # A one-statement writer's statement committed as it ran, whatever the answer.
        pending = outbox.take_pending(g.writer) if "writer" in g else []
        try:
            for session in _open_sessions():
                if failed:
                    outbox.discard_pending(session)
                    session.rollback()
                else:
                    pending += outbox.take_pending(session)
                    session.commit()
        except Exception as exc:
            # A COMMIT is a statement too: deferred constraint checks wait for locks there.
            # What committed before it stays (its outbox rows are sent by the relay); the rest
            # is rolled back. Errors raised here never reach the app's error handlers.
            if not timed_out(exc):
                raise
            for session in _open_sessions():
                session.rollback()
            g.pop("after_commit", None)
            return timeout_response(exc)
        publish(app.extensions["allotment.celery"], pending)
        callbacks = g.pop("after_commit", [])
        if not failed:
            for callback in callbacks:
                callback()
        return response

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        for session in _open_sessions():
            session.close()
