"""The storage port at the web edge, and sending tenant exports to the tenancy workers.

The storage is built once per app from its settings (the same choice the workers make,
``domain.assets.storage.build_storage``); the download route for local links is in
``web/operations/api.py``.
"""
from __future__ import annotations

import logging
import uuid

from flask import current_app

from config.celery import queue_for_task
from domain.assets.storage import Storage, build_storage

log = logging.getLogger(__name__)

EXPORT_TASKS = {"export": "tasks.tenancy.export_tenant", "offboard": "tasks.tenancy.offboard_tenant"}


def storage() -> Storage:
    """This app's storage (local folder or S3, as configured)."""
    extensions = current_app.extensions
    if "allotment.storage" not in extensions:
        extensions["allotment.storage"] = build_storage(extensions["allotment.settings"])
    return extensions["allotment.storage"]  # type: ignore[no-any-return]


def send_export(export_id: uuid.UUID, kind: str) -> None:
    """Send a recorded (committed) export or offboarding to the tenancy workers.

    Best effort, like publishing the outbox: if the broker does not take it, beat's
    ``resume_exports`` sends it again within a couple of minutes.
    """
    name = EXPORT_TASKS[kind]
    try:
        current_app.extensions["allotment.celery"].send_task(
            name, args=[str(export_id)], task_id=str(export_id), queue=queue_for_task(name))
    except Exception:  # the row is recorded; beat re-sends it
        log.warning("could not send %s %s; beat will send it again", name, export_id, exc_info=True)
