"""Tasks of the employment context (queue ``employment``)."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from domain.employment import handlers, imports, integrity
from domain.messaging import handling
from domain.messaging.contracts.employment import EmployeeDeletedV1, RunImportV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from workers import redelivery
from workers.base import domain_task


@domain_task(contract=EmployeeDeletedV1)
def remove_edges(ctx: HandlerContext, msg: EmployeeDeletedV1) -> None:
    """Remove a deleted employee's edges from the relation graph."""
    handlers.remove_edges(ctx, msg)


# Its own task, not a domain_task: an import outlives one transaction and keeps its own
# record (the import row and its checkpoints) instead of the inbox.
@shared_task(name="tasks.employment.run_import", bind=True)
def run_import(self: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    """Validate and apply an import in batches (or resume it after its last batch)."""
    message = Envelope.from_dict(envelope)
    if redelivery.looping(self, message):  # its runs kill their worker: stop the loop
        return {"status": "given up", "busy": False}
    command = handling.accept(self.app.provider, message, RunImportV1)  # its own tenant's only
    try:
        outcome = imports.run(self.app.provider, command.tenant_id, command.import_id)
    except Exception as exc:
        # The relay sends it again after the lease; the next run resumes at the checkpoint.
        handling.note_failure(self.app.provider, message, f"{type(exc).__name__}: {exc}")
        raise
    if outcome.finished:
        handling.confirm_delivery(self.app.provider, message)
    # Busy: the run holding the import confirms it when done; if that run dies, the relay
    # sends this command again and the next delivery resumes it.
    return {"status": outcome.status, "busy": outcome.busy}


@shared_task(name="tasks.employment.report_dangling_edges", bind=True)
def report_dangling_edges(self: Any) -> dict[str, object]:
    """Beat: report relation-graph GUIDs whose employees no longer exist."""
    return integrity.dangling_edges(self.app.provider).as_dict()
