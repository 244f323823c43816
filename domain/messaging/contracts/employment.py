"""Messages of the employment context."""
from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from domain.messaging.contracts import Contract


class EmployeeDeletedV1(Contract):
    """Event: an employee was deleted; their edges in the relation graph go too."""

    message_type: ClassVar[str] = "employment.EmployeeDeleted"

    tenant_id: uuid.UUID
    employee_id: uuid.UUID


class RunImportV1(Contract):
    """Command: validate and apply a recorded import of employees (or resume it)."""

    message_type: ClassVar[str] = "employment.RunImport"
    kind: ClassVar[Literal["command", "event"]] = "command"

    import_id: uuid.UUID
    tenant_id: uuid.UUID
