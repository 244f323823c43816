"""Runs of one import that overlap, driven step by step in this process: a copy of the
``RunImport`` command that read the import while it was pending, and takes the run's lock
only after another run completed it, leaves it completed."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from sqlalchemy import select

from domain.db.provider import DataProvider
from domain.employment import imports
from domain.employment.imports import RunOutcome
from domain.employment.models import Employee
from domain.messaging import handling, outbox
from tests.integration.employment.conftest import Org, Plane
from tests.integration.employment.importing import import_job


def record(provider: DataProvider, org: Org, data: bytes) -> uuid.UUID:
    """Record an import and confirm its command at once, so no worker or relay runs it:
    the test runs it."""
    with provider.tenant(org.id) as db:
        pending = imports.record_import(db, org.id, "runs.csv", data, created_by=None, correlation_id=None)
        queued = outbox.take_pending(db)
        db.commit()
    for envelope in queued:
        handling.confirm_delivery(provider, envelope)
    return pending.id


def test_a_late_copy_of_the_command_leaves_a_completed_import_completed(
        plane: Plane, make_org: Callable[[], Org], monkeypatch: pytest.MonkeyPatch) -> None:
    org = make_org()
    import_id = record(plane.provider, org, b"name,work_email\nAda,ada@runs.example.com\n")
    late = threading.Event()
    go = threading.Event()
    exclusive = imports._exclusive

    def held_back(*args: object) -> AbstractContextManager[bool]:
        if threading.current_thread().name == "late-copy":  # past the status check, before the lock
            late.set()
            assert go.wait(30)
        return exclusive(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(imports, "_exclusive", held_back)
    outcomes: list[RunOutcome] = []
    copy = threading.Thread(target=lambda: outcomes.append(imports.run(plane.provider, org.id, import_id)),
                            name="late-copy")
    copy.start()
    assert late.wait(30)
    assert imports.run(plane.provider, org.id, import_id).status == "completed"
    done = import_job(plane.provider, org, str(import_id))
    go.set()
    copy.join(30)
    assert [o.status for o in outcomes] == ["completed"]
    after = import_job(plane.provider, org, str(import_id))
    assert (after.status, after.phase, after.finished_at, after.updated_at, after.created) == (
        "completed", "done", done.finished_at, done.updated_at, 1)
    with plane.provider.tenant(org.id) as db:
        assert list(db.scalars(select(Employee.work_email))) == ["ada@runs.example.com"]
