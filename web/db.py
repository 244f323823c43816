"""The request's unit of work: sessions opened on demand, committed after the view
returns, and the outbox published once the commit is done (EXAMPLES §5)."""
from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, current_app, g

from domain.db.provider import DataProvider, ProviderSession
from domain.identity.services import PasswordSealer
from domain.messaging import outbox
from workers.publisher import publish


def provider() -> DataProvider:
    """This process's data provider."""
    return current_app.extensions["allotment.provider"]  # type: ignore[no-any-return]


def sealer() -> PasswordSealer:
    """Seals passwords for the worker that hashes them."""
    return current_app.extensions["allotment.sealer"]  # type: ignore[no-any-return]


def management_db() -> ProviderSession:
    """The request's management-database session."""
    if "db" not in g:
        g.db = provider().management()
    return g.db  # type: ignore[no-any-return]


def tenant_db(tenant_id: uuid.UUID) -> ProviderSession:
    """The request's session on a tenant's database (tenant-filtered)."""
    sessions = g.setdefault("tenant_dbs", {})
    if tenant_id not in sessions:
        sessions[tenant_id] = provider().tenant(tenant_id)
    return sessions[tenant_id]  # type: ignore[no-any-return]


def _open_sessions() -> list[ProviderSession]:
    sessions = [g.db] if "db" in g else []
    return sessions + list(g.get("tenant_dbs", {}).values())


def init_app(app: Flask) -> None:
    """Commit after a successful view, roll back otherwise, publish after commit."""

    @app.after_request
    def _commit(response: Any) -> Any:
        sessions = _open_sessions()
        if response.status_code >= 400:
            for session in sessions:
                outbox.discard_pending(session)
                session.rollback()
            g.pop("after_commit", None)
            return response
        pending = []
        for session in sessions:
            pending += outbox.take_pending(session)
            session.commit()
        publish(app.extensions["allotment.celery"], pending)
        for callback in g.pop("after_commit", []):
            callback()
        return response

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        for session in _open_sessions():
            session.close()
